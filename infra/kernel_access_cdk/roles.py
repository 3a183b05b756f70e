"""``KernelAccessRoles``: the two kernel-account roles partners assume.

* ``kernel-access`` — for partners inside the AWS Organization: one trust statement per partner
  account, conditioned on ``aws:PrincipalOrgID`` (``aws:SourceAccount`` does not apply to IAM
  principals).
* ``kernel-access-external`` — for partners outside it: one statement per partner binding exactly
  that account to exactly its ``sts:ExternalId``.

Every statement also requires ``sts:RoleSessionName`` to start with ``"<partner>."``: the HTTP
API's IAM authorizer reports the session ARN, and the session name is how the vending Lambda knows
which partner is calling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct
from kernel_access.validation import partner_session_prefix

from .config import PartnerConfig

IN_ORG_ROLE_NAME: Final = "kernel-access"
EXTERNAL_ROLE_NAME: Final = "kernel-access-external"
#: What a partner's trust statement allows: the session, its SourceIdentity and its tags.
TRUST_ACTIONS: Final = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")
#: Role chaining caps sessions at one hour anyway; the cap makes that explicit.
MAX_SESSION: Final = Duration.hours(1)


def set_trust_statements(role: iam.Role, statements: Sequence[iam.PolicyStatement]) -> None:
    """Replace ``role``'s trust policy with exactly ``statements``.

    ``iam.Role(assumed_by=...)`` always emits an ``sts:AssumeRole``-only statement and extra
    actions land in separate statements (merged or not depending on a feature flag). Writing the
    L1 property gives one statement per partner whatever the app's flags are.
    """
    cfn_role = cast(iam.CfnRole, role.node.default_child)
    cfn_role.assume_role_policy_document = iam.PolicyDocument(statements=list(statements))


def partner_trust_statement(partner: PartnerConfig, organization_id: str | None) -> iam.PolicyStatement:
    """The one trust statement of ``partner`` (in-org: PrincipalOrgID; external: ExternalId)."""
    if partner.in_organization:
        if not organization_id:
            raise ValueError(f"partner {partner.name!r} is in the organization: organization_id is required")
        binding = {"aws:PrincipalOrgID": organization_id}
    else:
        if not partner.external_id:
            raise ValueError(f"partner {partner.name!r} is external: it needs an external_id")
        binding = {"sts:ExternalId": partner.external_id}
    return iam.PolicyStatement(
        sid=_sid(partner.name),
        actions=list(TRUST_ACTIONS),
        principals=[iam.AccountPrincipal(partner.account_id)],
        conditions={
            "StringEquals": binding,
            "StringLike": {"sts:RoleSessionName": f"{partner_session_prefix(partner.name)}*"},
        },
    )


def _sid(name: str) -> str:
    return "Partner" + "".join(part.capitalize() for part in name.split("-"))


class KernelAccessRoles(Construct):
    """The kernel-access roles.

    Props (keyword-only):
        partners: the partner accounts (``config.PartnerConfig``); at least one.
        organization_id: the AWS Organization id in-org partners must belong to. Default: None
            (allowed only when every partner is external).
        name_suffix: appended to both role names so two environments can share an account.
            Default: "".
        permissions_boundary: managed policy set as both roles' permissions boundary. Default: none.
        in_org_role_name / external_role_name: base role names. Default: "kernel-access" /
            "kernel-access-external".

    Attributes: ``in_org_role`` / ``external_role`` (``iam.Role`` or ``None`` when no partner of
    that kind is configured), ``roles`` (the roles that exist), ``in_org_role_name``,
    ``external_role_name``.
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
        in_org_role_name: str = IN_ORG_ROLE_NAME,
        external_role_name: str = EXTERNAL_ROLE_NAME,
    ) -> None:
        super().__init__(scope, construct_id)
        if not partners:
            raise ValueError("KernelAccessRoles: partners must not be empty")
        self.in_org_role_name = in_org_role_name + name_suffix
        self.external_role_name = external_role_name + name_suffix
        in_org = [p for p in partners if p.in_organization]
        external = [p for p in partners if not p.in_organization]
        self.in_org_role = self._role(
            "InOrganization",
            role_name=self.in_org_role_name,
            partners=in_org,
            organization_id=organization_id,
            boundary=permissions_boundary,
            description="Assumed by partner accounts inside the AWS Organization to call kernel APIs",
        )
        self.external_role = self._role(
            "External",
            role_name=self.external_role_name,
            partners=external,
            organization_id=organization_id,
            boundary=permissions_boundary,
            description="Assumed by partner accounts outside the AWS Organization (with an external ID)",
        )

    @property
    def roles(self) -> tuple[iam.Role, ...]:
        return tuple(r for r in (self.in_org_role, self.external_role) if r is not None)

    def role_for(self, partner: PartnerConfig) -> iam.Role:
        role = self.in_org_role if partner.in_organization else self.external_role
        if role is None:  # pragma: no cover - partners are the ones the roles were built from
            raise ValueError(f"no kernel-access role for partner {partner.name!r}")
        return role

    def _role(
        self,
        construct_id: str,
        *,
        role_name: str,
        partners: Sequence[PartnerConfig],
        organization_id: str | None,
        boundary: iam.IManagedPolicy | None,
        description: str,
    ) -> iam.Role | None:
        if not partners:
            return None
        role = iam.Role(
            self,
            construct_id,
            role_name=role_name,
            description=description,
            # Replaced below by one statement per partner (set_trust_statements).
            assumed_by=iam.AccountPrincipal(partners[0].account_id),
            max_session_duration=MAX_SESSION,
            permissions_boundary=boundary,
        )
        set_trust_statements(role, [partner_trust_statement(p, organization_id) for p in partners])
        return role
