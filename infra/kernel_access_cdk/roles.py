"""``KernelAccessRoles``: the kernel-account roles partners assume, sized independently of how many
partners there are.

* ``kernel-access`` — every partner inside the AWS Organization, through ONE trust statement:
  ``Principal: {"AWS": "*"}`` conditioned on ``aws:PrincipalOrgID`` (the organization) and
  ``aws:PrincipalAccount`` not being the kernel account, with ``sts:RoleSessionName`` required to
  match ``${aws:PrincipalAccount}.*``. IAM substitutes the calling account into the pattern, so
  the session-name prefix is the partner's account *as IAM verified it*; the Lambdas map that
  account to the one partner bound to it. The statement is the same for 1 partner or 5,000.
* ``kernel-access-external-<partner>`` — one role per partner outside the organization (AWS's
  guidance for third parties: a role per third party, each with its own external ID). Its one
  statement trusts exactly that account with exactly its ``sts:ExternalId``; the partner is read
  from the role name. A role per partner is the one thing here that grows with partners: it is
  what keeps every trust policy one statement (a shared role would hold one statement per partner
  and pass IAM's 2,048-character quota at a handful of partners with long external IDs).

External partners' roles do not live in the kernel stack's own template: they are spread over
``ExternalPartnerRoles-<nn>`` nested stacks (see :func:`external_role_shard`), so the top-level
template stays the same size for 1 external partner or 5,000 and no template nears CloudFormation's
500 resources.

Every statement also allows ``sts:SetSourceIdentity`` only for a SourceIdentity under the same
``<account>.`` prefix (``StringLikeIfExists``: absent is fine, present must match) and
``sts:TagSession`` only for the keys in ``PARTNER_SESSION_TAG_KEYS`` (``ForAllValues:StringEquals``
on ``aws:TagKeys``). What every role may call is one shared customer-managed policy
(``invoke_policy``), so adding an API adds one statement, not one per role.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from aws_cdk import Duration, NestedStack, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct
from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE
from kernel_access.validation import (
    PARTNER_SESSION_TAG_KEYS,
    PRINCIPAL_ACCOUNT_PATTERN,
    external_role_name,
)

from .config import PartnerConfig

#: What a partner's trust statement allows: the session, its SourceIdentity and its tags.
TRUST_ACTIONS: Final = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")
#: Role chaining caps sessions at one hour anyway; the cap makes that explicit.
MAX_SESSION: Final = Duration.hours(1)

#: Nested stacks external partners' roles are spread over. Fixed forever: changing it moves roles
#: between stacks (see :func:`external_role_shard`). Sized from the most external partners one
#: kernel account can hold, IAM's "Roles per account" quota at its maximum (5,000), at one resource
#: per role (an ``AWS::IAM::Role``; the shared invoke policy is attached by ARN, no extra resource):
#: 5,000 / 32 = 156 roles per nested stack on average; a hash spreads names binomially, so the
#: fullest of 32 stacks holds about 200 (3 standard deviations above: 193), under half of
#: CloudFormation's 500 resources per template, and at the longest external IDs (1,224 characters)
#: about 0.5 MB of template, half the 1 MB limit. Empty shards create no nested stack.
EXTERNAL_ROLE_SHARDS: Final = 32
#: Construct id (and, through it, the nested template's file name) of shard ``n``.
EXTERNAL_ROLE_STACK_ID: Final = "ExternalPartnerRoles-{shard:02d}"


def set_trust_statements(role: iam.Role, statements: Sequence[iam.PolicyStatement]) -> None:
    """Replace ``role``'s trust policy with exactly ``statements``.

    ``iam.Role(assumed_by=...)`` always emits an ``sts:AssumeRole``-only statement and extra
    actions land in separate statements (merged or not depending on a feature flag). Writing the
    L1 property gives exactly the statements wanted whatever the app's flags are.
    """
    cfn_role = cast(iam.CfnRole, role.node.default_child)
    cfn_role.assume_role_policy_document = iam.PolicyDocument(statements=list(statements))


def _session_conditions(binding: Mapping[str, Any]) -> dict[str, Any]:
    """The conditions every partner-facing statement carries besides its binding."""
    return {
        **binding,
        "StringLike": {"sts:RoleSessionName": PRINCIPAL_ACCOUNT_PATTERN},
        "StringLikeIfExists": {"sts:SourceIdentity": PRINCIPAL_ACCOUNT_PATTERN},
        "ForAllValues:StringEquals": {"aws:TagKeys": list(PARTNER_SESSION_TAG_KEYS)},
    }


def in_organization_trust_statement(organization_id: str, kernel_account: str) -> iam.PolicyStatement:
    """The single statement of ``kernel-access``: any account of the organization but the kernel's."""
    return iam.PolicyStatement(
        sid="OrganizationPartners",
        actions=list(TRUST_ACTIONS),
        principals=[iam.AnyPrincipal()],
        conditions=_session_conditions(
            {
                "StringEquals": {"aws:PrincipalOrgID": organization_id},
                "StringNotEquals": {"aws:PrincipalAccount": kernel_account},
            }
        ),
    )


def external_trust_statement(partner: PartnerConfig) -> iam.PolicyStatement:
    """The single statement of an external partner's role: its account, its external ID."""
    if not partner.external_id:
        raise ValueError(f"partner {partner.name!r} is external: it needs an external_id")
    return iam.PolicyStatement(
        sid="ExternalPartner",
        actions=list(TRUST_ACTIONS),
        principals=[iam.AccountPrincipal(partner.account_id)],
        conditions=_session_conditions({"StringEquals": {"sts:ExternalId": partner.external_id}}),
    )


class KernelAccessRoles(Construct):
    """The kernel-access roles.

    Props (keyword-only):
        partners: the partner accounts (``config.PartnerConfig``); at least one.
        organization_id: the AWS Organization id in-org partners must belong to. Default: None
            (allowed only when every partner is external).
        name_suffix: appended to the base role names so two environments can share an account.
            Default: "".
        permissions_boundary: managed policy set as every role's permissions boundary. Default: none.
        in_org_role_name / external_role_name: base role names. Default: "kernel-access" /
            "kernel-access-external" (external partners' roles are ``<external_role_name>-<partner>``).
        kernel_account: the account no partner may come from. Default: the stack's account.

    Attributes: ``in_org_role`` (``iam.Role`` or ``None`` without in-org partners),
    ``external_roles`` (partner name -> ``iam.Role``, each in the nested stack
    :func:`external_role_shard` picks), ``external_role_stacks`` (shard -> ``NestedStack``, only
    shards with a partner), ``roles`` (every role), ``in_org_role_name``,
    ``external_role_name`` (the base name), ``invoke_policy`` (the managed policy every role carries;
    APIs add their ``execute-api:Invoke`` statements to it).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        partners: Sequence[PartnerConfig],
        organization_id: str | None = None,
        name_suffix: str = "",
        permissions_boundary: iam.IManagedPolicy | None = None,
        in_org_role_name: str = KERNEL_ACCESS_ROLE,
        external_role_name: str = KERNEL_ACCESS_EXTERNAL_ROLE,
        kernel_account: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not partners:
            raise ValueError("KernelAccessRoles: partners must not be empty")
        self.in_org_role_name = in_org_role_name + name_suffix
        self.external_role_name = external_role_name + name_suffix
        self._invoke_policy: iam.ManagedPolicy | None = None
        account = kernel_account or Stack.of(self).account
        self.in_org_role: iam.Role | None = None
        if any(p.in_organization for p in partners):
            if not organization_id:
                raise ValueError("in-organization partners need organization_id (aws:PrincipalOrgID)")
            self.in_org_role = self._role(
                "InOrganization",
                role_name=self.in_org_role_name,
                statement=in_organization_trust_statement(organization_id, account),
                boundary=permissions_boundary,
                description="Assumed by partner accounts inside the AWS Organization to call kernel APIs",
            )
        self.external_roles: dict[str, iam.Role] = {}
        #: Shard number -> the nested stack holding those external partners' roles.
        self.external_role_stacks: dict[int, NestedStack] = {}
        for partner in partners:
            if partner.in_organization:
                continue
            self.external_roles[partner.name] = self._role(
                f"External-{partner.name}",
                scope=self._external_role_stack(partner),
                role_name=external_role_name_for(self.external_role_name, partner),
                statement=external_trust_statement(partner),
                boundary=permissions_boundary,
                description=f"Assumed by external partner {partner.name} (one account, one external ID)",
            )

    @property
    def roles(self) -> tuple[iam.Role, ...]:
        in_org = (self.in_org_role,) if self.in_org_role is not None else ()
        return in_org + tuple(self.external_roles.values())

    @property
    def invoke_policy(self) -> iam.ManagedPolicy:
        """The customer-managed policy every kernel-access role carries (created on first use, so
        roles that no API was granted to synthesise without an empty policy)."""
        if self._invoke_policy is None:
            self._invoke_policy = iam.ManagedPolicy(
                self,
                "InvokePolicy",
                description="execute-api:Invoke on the kernel APIs, shared by every kernel-access role",
            )
            for role in self.roles:
                role.add_managed_policy(self._invoke_policy)
        return self._invoke_policy

    def role_for(self, partner: PartnerConfig) -> iam.Role:
        role = self.in_org_role if partner.in_organization else self.external_roles.get(partner.name)
        if role is None:  # pragma: no cover - partners are the ones the roles were built from
            raise ValueError(f"no kernel-access role for partner {partner.name!r}")
        return role

    def _external_role_stack(self, partner: PartnerConfig) -> NestedStack:
        shard = external_role_shard(partner.name)
        stack = self.external_role_stacks.get(shard)
        if stack is None:
            stack = NestedStack(
                self,
                EXTERNAL_ROLE_STACK_ID.format(shard=shard),
                description=f"kernel-access: external partners' roles, shard {shard} of "
                f"{EXTERNAL_ROLE_SHARDS} (by a hash of the partner name)",
            )
            self.external_role_stacks[shard] = stack
        return stack

    def _role(
        self,
        construct_id: str,
        *,
        scope: Construct | None = None,
        role_name: str,
        statement: iam.PolicyStatement,
        boundary: iam.IManagedPolicy | None,
        description: str,
    ) -> iam.Role:
        role = iam.Role(
            scope or self,
            construct_id,
            role_name=role_name,
            description=description,
            # Replaced below by the one trust statement (set_trust_statements).
            assumed_by=iam.AccountRootPrincipal(),
            max_session_duration=MAX_SESSION,
            permissions_boundary=boundary,
        )
        set_trust_statements(role, [statement])
        return role


def external_role_name_for(external_role_base: str, partner: PartnerConfig) -> str:
    """The role name of an external partner (see :func:`kernel_access.validation.external_role_name`)."""
    return external_role_name(external_role_base, partner.name)


def external_role_shard(partner_name: str) -> int:
    """The nested stack (0 .. ``EXTERNAL_ROLE_SHARDS - 1``) that holds ``partner_name``'s role.

    Why a hash of the name into a fixed number of stacks: a resource that moves to another stack is
    a new resource to CloudFormation. The new stack would create a role whose name the old stack's
    role still holds (creation fails, the update rolls back), or, in the other order, delete the
    partner's role and create it again: its role id changes and every session issued under it
    stops working. So a partner's stack must depend on the partner alone, never on who else is
    configured. Filling stacks in configuration order ("the first 200, the next 200, ...") breaks
    that whenever a partner is removed or the list is reordered; a hash of the name does not, and
    needs no state kept beside the configuration. SHA-256, not Python's ``hash()``, which is salted
    per process. The price is uneven stacks, sized for in :data:`EXTERNAL_ROLE_SHARDS`.
    """
    digest = hashlib.sha256(partner_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % EXTERNAL_ROLE_SHARDS
