"""The exchange itself: parse → authenticate (claims) → authorize (two layers) → mint → track → audit.

Order matters and is part of the security design:

1. the body is validated before any AWS call (INVALID_REQUEST);
2. the token's required claims are read (INVALID_TOKEN) and the subject is rate-limited;
3. the configuration is loaded (POLICY_LOAD_FAILED when unavailable: no configuration, no exchange);
4. the central layer for the route's issuer (ISSUER_NOT_ALLOWED / INVALID_TOKEN), the token's
   lifetime (INVALID_TOKEN), the target's trust policies (TRUST_POLICY_NOT_FOUND /
   POLICY_NOT_FOUND), the permission intersection (POLICY_NOT_FOUND when empty);
5. only a request that passed all of that spends its ``jti`` (replay guard), so a caller who
   mistyped a target can retry with the same token; a replay is INVALID_TOKEN;
6. mint; track the issued token; write the audit record. If tracking or the audit write fails,
   the caller gets INTERNAL_ERROR and the credential is dropped (fail closed, as Vault does).

Every decision — allow, deny or error — is audited before the response.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from kernel_access.audit import AuditLog, AuditRecord, AuditWriteError, token_fingerprint
from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.exchange.claims import check_central, check_lifetime, read_claims, select_policy
from kernel_access.exchange.config import AwsRoleTarget, Target
from kernel_access.exchange.issued import IssuedToken, IssuedTokenStore
from kernel_access.exchange.minting import Issued, Minter, session_tags, source_identity
from kernel_access.exchange.permissions import (
    CODEARTIFACT_LEVELS,
    effective_actions,
    effective_level,
    is_action_pattern,
    level_permissions,
)
from kernel_access.exchange.refusal import ExchangeRefused
from kernel_access.exchange.replay import ReplayGuard
from kernel_access.exchange.request import decode_body, effective_ttl, parse_request
from kernel_access.exchange.store import ExchangeConfigStore
from kernel_access.ratelimit import RateLimiter, RateLimiterUnavailable, caller_subject
from kernel_access.validation import sts_safe_name
from kernel_access.vending.sts import format_expiration

logger = Logger(child=True)

#: Errors that say "we could not decide" rather than "no": audited as ``error``.
_ERROR_CODES = frozenset(
    {ErrorCode.INTERNAL_ERROR, ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.POLICY_LOAD_FAILED}
)


@dataclass
class ExchangeAuditRecord(AuditRecord):
    """The shared audit record plus what only an exchange has. Never holds a token, only fingerprints."""

    issuer: str | None = None
    subject: str | None = None
    jti: str | None = None
    target: str | None = None
    permissions: str | None = None
    presented_token_fingerprint: str | None = None
    issued_token_fingerprint: str | None = None


@dataclass(frozen=True)
class ExchangeContext:
    """What the handler extracted from the event; claims come only from the authorizer context."""

    request_id: str
    issuer_name: str
    claims: Mapping[str, object]
    presented_token: str | None
    body: object
    body_is_base64: bool = False
    source_ip: str | None = None
    user_agent: str | None = None


def caller_of(issuer_name: str, subject: str | None) -> str:
    """The audit ``caller_arn`` of an OIDC caller (not an ARN; kept in the same indexed field)."""
    return f"oidc:{issuer_name}:{subject or '<none>'}"


class ExchangeService:
    def __init__(
        self,
        *,
        config_store: ExchangeConfigStore,
        replay_guard: ReplayGuard,
        issued_tokens: IssuedTokenStore,
        audit: AuditLog,
        minter: Minter,
        rate_limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config_store = config_store
        self.replay_guard = replay_guard
        self.issued_tokens = issued_tokens
        self.audit = audit
        self.minter = minter
        self.rate_limiter = rate_limiter
        self._clock = clock

    def exchange(self, context: ExchangeContext) -> dict[str, Any]:
        """The response body of a granted exchange; raises KernelAccessError (already audited) otherwise."""
        record = ExchangeAuditRecord(
            request_id=context.request_id,
            route=f"POST /exchange/{context.issuer_name}",
            decision="deny",
            issuer=context.issuer_name,
            source_ip=context.source_ip,
            user_agent=context.user_agent,
        )
        if context.presented_token:
            record.presented_token_fingerprint = token_fingerprint(context.presented_token)
        try:
            issued, response = self._decide_and_mint(context, record)
        except KernelAccessError as error:
            self._audit_refusal(record, error, getattr(error, "reason", error.message))
            raise
        except Exception as error:
            logger.exception("exchange failed unexpectedly")
            internal = KernelAccessError.internal()
            self._audit_refusal(record, internal, f"unexpected {type(error).__name__}")
            raise internal from None
        # Granted: track, then audit; either failing drops the credential.
        try:
            self.issued_tokens.record(
                IssuedToken(
                    fingerprint=record.issued_token_fingerprint or "",
                    kind=issued.kind,
                    issuer=context.issuer_name,
                    subject=record.subject or "",
                    target=record.target or "",
                    policy=record.rule_id or "",
                    permissions=tuple(response["permissions"]),
                    issued_at=self._clock(),
                    expires_at=issued.expires_at,
                    request_id=context.request_id,
                    access_key_id=issued.access_key_id,
                    source_identity=record.source_identity,
                    role_arn=issued.role_arn,
                )
            )
        except Exception as error:
            logger.error(
                "issued-token tracking failed; dropping the credential", extra={"error": type(error).__name__}
            )
            internal = KernelAccessError.internal()
            self._audit_refusal(record, internal, f"issued-token tracking failed: {type(error).__name__}")
            raise internal from None
        record.decision = "allow"
        record.reason = "granted"
        try:
            self.audit.write(record)
        except AuditWriteError:
            logger.error("audit write failed; dropping the credential")
            raise KernelAccessError.internal() from None
        return response

    def _audit_refusal(self, record: ExchangeAuditRecord, error: KernelAccessError, reason: str) -> None:
        record.decision = "error" if error.code in _ERROR_CODES else "deny"
        record.error_code = error.code.value
        record.reason = reason
        try:
            self.audit.write(record)
        except AuditWriteError:
            logger.error("audit write failed for a refusal", extra={"error_code": error.code.value})
            raise KernelAccessError.internal() from None

    def _decide_and_mint(
        self, context: ExchangeContext, record: ExchangeAuditRecord
    ) -> tuple[Issued, dict[str, Any]]:
        request = parse_request(decode_body(context.body, context.body_is_base64))
        record.target = request.target
        if not context.presented_token:
            raise ExchangeRefused(ErrorCode.INVALID_TOKEN, "no bearer token was presented")
        token = read_claims(context.claims)
        record.subject, record.jti = token.subject, token.jti
        record.caller_arn = caller_of(context.issuer_name, token.subject)
        self._rate_limit(record.caller_arn)

        config = self.config_store.get()
        record.policy_version = config.version
        issuer = config.issuers.get(context.issuer_name)
        if issuer is None:
            raise ExchangeRefused(
                ErrorCode.ISSUER_NOT_ALLOWED,
                f"issuer {context.issuer_name!r} is not trusted by this exchange",
            )
        check_central(issuer, token)
        now = self._clock()
        check_lifetime(token, now=now, max_age_seconds=issuer.max_token_age_seconds)

        target = config.targets.get(request.target)
        if target is None:
            raise ExchangeRefused(
                ErrorCode.TRUST_POLICY_NOT_FOUND,
                f"no trust policy exists for target {request.target!r}",
                details={"target": request.target},
            )
        policy = select_policy(
            request.target, config.trust_policies.get(request.target, ()), token, request.policy_name
        )
        record.rule_id = policy.name
        ttl = effective_ttl(request.requested_ttl, policy.token_ttl)
        record.duration = ttl
        subject_identity = source_identity(context.issuer_name, token.subject)
        session = sts_safe_name(f"exchange.{context.request_id}")
        tags = session_tags(token.all, issuer_name=context.issuer_name, request_id=context.request_id)
        record.source_identity, record.session_name = subject_identity, session

        _check_requested(request.requested_permissions, target)
        if isinstance(target, AwsRoleTarget):
            actions = effective_actions(
                request.requested_permissions, policy.permissions, issuer.max_permissions
            )
            _require_some(actions, request.target)
            permissions: tuple[str, ...] = actions
            record.permissions = json.dumps(list(actions))
            self._spend(token.issuer, token.jti, token.expires_at, context.request_id)
            issued = self.minter.aws_role(
                target,
                actions=actions,
                ttl=ttl,
                session_name=session,
                source_identity_value=subject_identity,
                tags=tags,
            )
            record.access_key_id = issued.access_key_id
        else:
            level = effective_level(
                request.requested_permissions, policy.permissions, issuer.max_permissions, target.access
            )
            _require_some(() if level is None else (level,), request.target)
            assert level is not None
            permissions = level_permissions(level)
            record.permissions = json.dumps(list(permissions))
            record.codeartifact_domain, record.codeartifact_access = target.domain, level
            self._spend(token.issuer, token.jti, token.expires_at, context.request_id)
            issued = self.minter.codeartifact(
                target,
                level=level,
                ttl=ttl,
                session_name=session,
                source_identity_value=subject_identity,
                tags=tags,
            )
        record.expiration = format_expiration(issued.expires_at)
        record.issued_token_fingerprint = token_fingerprint(issued.secret)
        response: dict[str, Any] = {
            **issued.body,
            "expires_at": record.expiration,
            "matched_policy": policy.name,
            "permissions": list(permissions),
            "request_id": context.request_id,
        }
        return issued, response

    def _rate_limit(self, caller: str) -> None:
        if self.rate_limiter is None:
            return
        try:
            decision = self.rate_limiter.hit(caller_subject(caller))
        except RateLimiterUnavailable:
            raise ExchangeRefused(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "the rate limiter is unavailable; try again later",
                retry_after=5,
            ) from None
        if not decision.allowed:
            raise ExchangeRefused(
                ErrorCode.RATE_LIMITED,
                f"more than {decision.limit} exchanges for this subject in the current window",
                retry_after=decision.retry_after,
            )

    def _spend(self, issuer: str, jti: str, expires_at: int, request_id: str) -> None:
        self.replay_guard.accept_once(issuer=issuer, jti=jti, expires_at=expires_at, request_id=request_id)


def _check_requested(requested: tuple[str, ...] | None, target: Target) -> None:
    """Requested permissions must be of the target's kind: IAM action patterns or access levels."""
    if requested is None:
        return
    if isinstance(target, AwsRoleTarget):
        bad = [item for item in requested if not is_action_pattern(item)]
        expected = "IAM action patterns like 's3:GetObject' or 's3:Get*'"
    else:
        bad = [item for item in requested if item not in CODEARTIFACT_LEVELS]
        expected = "'read' or 'publish'"
    if bad:
        raise ExchangeRefused(
            ErrorCode.INVALID_REQUEST,
            f"requested_permissions for target {target.name!r} must be {expected}",
            details={"field": "requested_permissions", "invalid": [item[:64] for item in bad[:5]]},
        )


def _require_some(permissions: tuple[str, ...], target: str) -> None:
    if not permissions:
        raise ExchangeRefused(
            ErrorCode.POLICY_NOT_FOUND,
            f"no trust policy of target {target!r} grants any of the requested permissions",
            details={"target": target, "reason": "no_effective_permissions"},
            reason="empty intersection of requested, trust-policy and central permissions",
        )
