"""``CodeArtifactRegistry``: a KMS-encrypted domain, an internal repository for publishing, upstream
repositories connected to public registries, and the two roles the vending Lambda assumes to mint
authorization tokens (reader, publisher).

CodeArtifact has no L2 in aws-cdk-lib, so the domain and repositories are L1 resources; the grants
are written here. ``GetAuthorizationToken`` also needs ``sts:GetServiceBearerToken`` in the caller's
*identity* policy (it has no effect in a resource policy), conditioned on the service name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_codeartifact as codeartifact
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct
from kernel_access.vending.codeartifact import PARTNER_TAG

from .config import KNOWN_UPSTREAMS
from .nag import IAM5, acknowledge_resource
from .roles import set_trust_statements

READ_ACTIONS: Final = (
    "codeartifact:DescribePackageVersion",
    "codeartifact:DescribeRepository",
    "codeartifact:GetPackageVersionReadme",
    "codeartifact:GetRepositoryEndpoint",
    "codeartifact:ListPackageVersionAssets",
    "codeartifact:ListPackageVersionDependencies",
    "codeartifact:ListPackageVersions",
    "codeartifact:ListPackages",
    "codeartifact:ReadFromRepository",
)
PUBLISH_ACTIONS: Final = ("codeartifact:PublishPackageVersion", "codeartifact:PutPackageMetadata")
BEARER_TOKEN_CONDITION: Final = {"StringEquals": {"sts:AWSServiceName": "codeartifact.amazonaws.com"}}


class CodeArtifactRegistry(Construct):
    """CodeArtifact domain + repositories + token-minting roles.

    Props (keyword-only):
        domain_name: the domain.
        organization_id: principals of this AWS Organization may use the domain (domain policy).
        repository_name: the internal (publishing) repository. Default: "internal".
        upstreams: public registries to connect, from ``"pypi"``, ``"npmjs"``.
            Default: both. Each becomes a repository ``<name>-store`` with the external connection.
        encryption_key: customer-managed KMS key for the domain. Default: a new key with rotation.
        minting_principal: role allowed to assume the reader/publisher minting roles (the vending
            Lambda's role). Default: none, and then no minting roles are created.
        name_suffix: suffix of the minting role names. Default: "".

    Attributes: ``domain`` (id "Resource"), ``repository`` (internal), ``upstream_repositories``,
    ``encryption_key``, ``reader_role`` / ``publisher_role`` (or None), ``domain_name``,
    ``domain_owner``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_name: str,
        organization_id: str,
        repository_name: str = "internal",
        upstreams: Sequence[str] = ("pypi", "npmjs"),
        encryption_key: kms.IKey | None = None,
        minting_principal: iam.IRole | None = None,
        name_suffix: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.domain_name = domain_name
        self.repository_name = repository_name
        self.domain_owner = stack.account
        self.encryption_key: kms.IKey = encryption_key or kms.Key(
            self,
            "Key",
            description=f"Encrypts the assets of CodeArtifact domain {domain_name}",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        domain_policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="OrganizationPrincipalsMayUseTheDomain",
                    principals=[iam.AnyPrincipal()],
                    actions=[
                        "codeartifact:DescribeDomain",
                        "codeartifact:GetAuthorizationToken",
                        "codeartifact:GetDomainPermissionsPolicy",
                        "codeartifact:ListRepositoriesInDomain",
                    ],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:PrincipalOrgID": organization_id}},
                )
            ]
        )
        self.domain = codeartifact.CfnDomain(
            self,
            "Resource",
            domain_name=domain_name,
            encryption_key=self.encryption_key.key_arn,
            permissions_policy_document=domain_policy,
        )
        self.upstream_repositories: dict[str, codeartifact.CfnRepository] = {}
        for upstream in upstreams:
            connection = KNOWN_UPSTREAMS.get(upstream)
            if connection is None:
                raise ValueError(f"CodeArtifactRegistry: unknown upstream {upstream!r}")
            repo = codeartifact.CfnRepository(
                self,
                f"Upstream{upstream.capitalize()}",
                domain_name=domain_name,
                repository_name=f"{upstream}-store",
                description=f"Proxy of {connection}",
                external_connections=[connection],
            )
            repo.node.add_dependency(self.domain)
            self.upstream_repositories[upstream] = repo
        self.repository = codeartifact.CfnRepository(
            self,
            "Repository",
            domain_name=domain_name,
            repository_name=repository_name,
            description="Internal packages published by kernel-access partners",
            upstreams=[r.repository_name for r in self.upstream_repositories.values()],
        )
        self.repository.node.add_dependency(self.domain)
        for repo in self.upstream_repositories.values():
            self.repository.node.add_dependency(repo)

        self.reader_role: iam.Role | None = None
        self.publisher_role: iam.Role | None = None
        self._name_suffix = name_suffix
        if minting_principal is not None:
            self.enable_minting(minting_principal)

    def enable_minting(self, principal: iam.IRole) -> tuple[iam.Role, iam.Role]:
        """Create the reader and publisher minting roles, trusted by ``principal`` only.

        Separate from the constructor because the vending service's role usually exists only
        after the registry does (the service needs the registry's role ARNs for its environment).
        """
        if self.reader_role is not None or self.publisher_role is not None:
            raise ValueError("CodeArtifactRegistry: minting roles already exist")
        self.reader_role = self._minting_role("ReaderRole", "reader", principal, self._name_suffix)
        self.grant_read(self.reader_role)
        self.publisher_role = self._minting_role("PublisherRole", "publisher", principal, self._name_suffix)
        self.grant_publish(self.publisher_role)
        return self.reader_role, self.publisher_role

    @property
    def domain_arn(self) -> str:
        return self.domain.attr_arn

    def _arn(self, resource: str, name: str) -> str:
        return Stack.of(self).format_arn(service="codeartifact", resource=resource, resource_name=name)

    def _minting_role(self, construct_id: str, kind: str, principal: iam.IRole, suffix: str) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            role_name=f"kernel-access-codeartifact-{kind}{suffix}",
            description=f"Assumed by the kernel-access vending service to mint CodeArtifact {kind} tokens",
            assumed_by=iam.ArnPrincipal(principal.role_arn),
            max_session_duration=Duration.hours(1),
        )
        # Tokens are minted per partner: the session must carry the partner as SourceIdentity
        # and as the only session tag, so every token (and every package published with it) is
        # attributable in CloudTrail; a session without them cannot be started.
        set_trust_statements(
            role,
            [
                iam.PolicyStatement(
                    sid="VendingServiceOnly",
                    actions=["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                    principals=[iam.ArnPrincipal(principal.role_arn)],
                    conditions={
                        "Null": {"sts:SourceIdentity": "false", f"aws:RequestTag/{PARTNER_TAG}": "false"},
                        "ForAllValues:StringEquals": {"aws:TagKeys": [PARTNER_TAG]},
                    },
                )
            ],
        )
        return role

    def _acknowledge(self, grantee: iam.IGrantable, resource: str, reason: str) -> None:
        if isinstance(grantee, Construct):
            acknowledge_resource(grantee, IAM5, resource, reason)

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Token for the domain + read every repository of it + the bearer-token permission."""
        self._acknowledge(
            grantee,
            "*",
            "sts:GetServiceBearerToken has no resource type (Resource must be '*'); it is limited by "
            "the condition sts:AWSServiceName = codeartifact.amazonaws.com.",
        )
        repositories = self._arn("repository", f"{self.domain_name}/*")
        packages = self._arn("package", f"{self.domain_name}/*")
        self._acknowledge(
            grantee,
            repositories,
            "Read access covers every repository of this one domain (internal + upstream proxies), "
            "which is what a package manager pointed at the internal repository resolves through.",
        )
        self._acknowledge(
            grantee,
            packages,
            "Read access covers the packages of this one domain; package names are chosen by "
            "publishers and cannot be listed at synth time.",
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sts:GetServiceBearerToken"],
            resource_arns=["*"],
            conditions=BEARER_TOKEN_CONDITION,
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["codeartifact:GetAuthorizationToken"],
            resource_arns=[self.domain.attr_arn],
        )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(READ_ACTIONS),
            resource_arns=[repositories, packages],
        )

    def grant_publish(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read, plus publish into the internal repository only (never into the upstream proxies)."""
        self.grant_read(grantee)
        internal_packages = self._arn("package", f"{self.domain_name}/{self.repository_name}/*")
        self._acknowledge(
            grantee,
            internal_packages,
            "Publishing is limited to the internal repository of this domain; the '*' stands for "
            "package format/namespace/name, which publishers choose.",
        )
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(PUBLISH_ACTIONS), resource_arns=[internal_packages]
        )
