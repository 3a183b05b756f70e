"""Minting what a granted exchange returns: STS credentials for an AWS role or a CodeArtifact token.

AWS role targets are assumed with an inline session policy allowing exactly the effective
actions, so the credentials can never do more than the intersection computed by the exchange even
when the role itself could. CodeArtifact tokens are minted by first assuming the reader or
publisher *minting* role (the only roles whose identity policy allows
``codeartifact:GetAuthorizationToken`` plus ``sts:GetServiceBearerToken``) and then asking
CodeArtifact for a token of the granted lifetime.

STS calls and their error mapping reuse :mod:`kernel_access.vending.sts` (one implementation of
"AssumeRole safely" for the whole project).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.exchange.config import AwsRoleTarget, CodeArtifactTarget
from kernel_access.exchange.issued import IssuedKind
from kernel_access.exchange.patterns import claim_text
from kernel_access.exchange.permissions import AccessLevel, session_policy
from kernel_access.validation import sts_safe_name
from kernel_access.vending.codeartifact import MintRateGate, fetch_authorization_token
from kernel_access.vending.sts import (
    AssumedCredentials,
    assume_role,
    format_expiration,
    tag_value,
)

if TYPE_CHECKING:
    from mypy_boto3_codeartifact import CodeArtifactClient
    from mypy_boto3_sts import STSClient
    from mypy_boto3_sts.type_defs import TagTypeDef

#: Claims copied into session tags (GitHub Actions and GitLab CI names), so CloudTrail events of
#: the session say which repository / ref / environment they came from.
TAG_CLAIMS: Final[tuple[str, ...]] = (
    "repository",
    "repository_owner",
    "ref",
    "ref_type",
    "environment",
    "job_workflow_ref",
    "project_path",
    "namespace_path",
    "pipeline_source",
)


@dataclass(frozen=True)
class InlineSessionPolicy:
    """Adapter to :class:`kernel_access.vending.sts.SessionPolicyLike`."""

    inline_json: str | None
    managed_policy_arns: Sequence[str] = ()


@dataclass(frozen=True)
class Issued:
    """What was minted. ``secret`` is only ever fingerprinted, never logged (hidden from repr)."""

    kind: IssuedKind
    body: Mapping[str, Any] = field(repr=False)
    secret: str = field(repr=False)
    expires_at: datetime
    access_key_id: str | None = None
    role_arn: str | None = None


def source_identity(issuer_name: str, subject: str) -> str:
    """``<issuer>@<subject>`` made STS-safe; long subjects keep a hash so they stay distinct."""
    full = f"{issuer_name}@{subject}"
    safe = sts_safe_name(full)
    if len(full) > 64 or safe != full:
        digest = hashlib.sha256(full.encode()).hexdigest()[:10]
        safe = sts_safe_name(f"{sts_safe_name(full, max_length=53)}.{digest}")
    return safe


#: The session tag that carries the fingerprint of the OIDC token a session was exchanged for.
#: Revocation denies sessions by it (``aws:PrincipalTag/exchanged-token`` in a deny statement on
#: the target role, see :mod:`kernel_access.exchange.cutoff`): the value is known before the
#: session exists (the session's own token is not), is unique per session (each OIDC token is
#: exchanged once) and is what an operator can compute from a leaked OIDC token.
REVOCATION_TAG_KEY: Final = "exchanged-token"
#: Every session tag key the exchange may set: the exchange role's ``sts:TagSession`` permission
#: is conditioned on exactly these (``aws:TagKeys``).
SESSION_TAG_KEYS: Final[tuple[str, ...]] = (
    "oidc-issuer",
    "request-id",
    REVOCATION_TAG_KEY,
    *(f"oidc-{claim.replace('_', '-')}" for claim in TAG_CLAIMS),
)


def session_tags(
    claims: Mapping[str, object], *, issuer_name: str, request_id: str, token_fingerprint: str
) -> list[TagTypeDef]:
    tags: list[TagTypeDef] = [
        {"Key": "oidc-issuer", "Value": tag_value(issuer_name)},
        {"Key": "request-id", "Value": tag_value(request_id)},
        {"Key": REVOCATION_TAG_KEY, "Value": tag_value(token_fingerprint)},
    ]
    for claim in TAG_CLAIMS:
        text = claim_text(claims.get(claim))
        if text:
            tags.append({"Key": f"oidc-{claim.replace('_', '-')}", "Value": tag_value(text)})
    return tags


def _credential_process_body(credentials: AssumedCredentials) -> dict[str, Any]:
    # The AWS CLI / SDK ``credential_process`` format: a CI job can write it to a file and point
    # ``credential_process = cat FILE`` at it, or export the three variables.
    return {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "Expiration": format_expiration(credentials.expiration),
    }


def _default_codeartifact_factory(credentials: AssumedCredentials) -> CodeArtifactClient:
    from kernel_access.aws_clients import default_clients

    return default_clients().codeartifact_for(credentials)


class Minter:
    def __init__(
        self,
        *,
        sts_client_factory: Callable[[], STSClient],
        codeartifact_client_factory: Callable[[AssumedCredentials], CodeArtifactClient] | None = None,
        reader_role_arn: str | None = None,
        publisher_role_arn: str | None = None,
        domain_owner: str | None = None,
        mint_gate: MintRateGate | None = None,
    ) -> None:
        self._sts = sts_client_factory
        #: The deployment-wide CodeArtifact mint cap shared with the vending API (default: none).
        self.mint_gate = mint_gate
        self._codeartifact = codeartifact_client_factory or _default_codeartifact_factory
        self.reader_role_arn = reader_role_arn
        self.publisher_role_arn = publisher_role_arn
        self.domain_owner = domain_owner

    def aws_role(
        self,
        target: AwsRoleTarget,
        *,
        actions: Sequence[str],
        ttl: int,
        session_name: str,
        source_identity_value: str,
        tags: Sequence[TagTypeDef],
    ) -> Issued:
        credentials = assume_role(
            self._sts(),
            role_arn=target.role_arn,
            role_session_name=session_name,
            source_identity_value=source_identity_value,
            tags=tags,
            duration=ttl,
            session_policy=InlineSessionPolicy(inline_json=session_policy(actions)),
        )
        return Issued(
            kind="aws_credentials",
            body={"credentials": _credential_process_body(credentials)},
            secret=credentials.session_token,
            expires_at=credentials.expiration,
            access_key_id=credentials.access_key_id,
            role_arn=target.role_arn,
        )

    def codeartifact(
        self,
        target: CodeArtifactTarget,
        *,
        level: AccessLevel,
        ttl: int,
        session_name: str,
        source_identity_value: str,
        tags: Sequence[TagTypeDef],
    ) -> Issued:
        role_arn = self.publisher_role_arn if level == "publish" else self.reader_role_arn
        owner = target.domain_owner or self.domain_owner
        if not role_arn or not owner:
            # A deployment without the minting role for this level cannot serve the grant; it is
            # a kernel-side misconfiguration, reported without naming internals.
            raise KernelAccessError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "codeartifact tokens are not available from this exchange",
                {"upstream": "codeartifact", "retryable": False},
            )
        if self.mint_gate is not None:
            # THROTTLED past the cap (CodeArtifact's token quota is per region, shared with the
            # vending API); the token's jti is already spent, so the caller retries with a new one.
            self.mint_gate.check()
        credentials = assume_role(
            self._sts(),
            role_arn=role_arn,
            role_session_name=session_name,
            source_identity_value=source_identity_value,
            tags=tags,
            duration=ttl,
        )
        token, expiration = fetch_authorization_token(
            lambda: self._codeartifact(credentials), domain=target.domain, owner=owner, duration=ttl
        )
        return Issued(
            kind="codeartifact_token",
            body={"token": token},
            secret=token,
            expires_at=expiration,
            role_arn=role_arn,
        )
