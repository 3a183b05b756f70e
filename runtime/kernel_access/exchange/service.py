"""The exchange itself: rate-limit → authenticate (claims) → authorize (two layers) → mint → track → audit.

Order matters and is part of the security design:

1. the caller is rate-limited first, keyed on the route's issuer and the ``sub`` claim as the JWT
   authorizer verified it, before the body or any other claim is looked at and before any audit
   write: a flood costs one counter update per request, never a parse or an audit item
   (RATE_LIMITED; UPSTREAM_UNAVAILABLE when the limiter cannot answer);
2. the token's required claims are read (INVALID_TOKEN), then the body is validated
   (INVALID_REQUEST), all before any other AWS call;
3. the revocation list is read for the subject and the presented token (SESSION_REVOKED;
   UPSTREAM_UNAVAILABLE when it cannot be read: a revocation that cannot be checked refuses);
4. the configuration is loaded (POLICY_LOAD_FAILED when unavailable: no configuration, no exchange);
5. the central layer for the route's issuer (ISSUER_NOT_ALLOWED / INVALID_TOKEN), the token's
   lifetime (INVALID_TOKEN), the target's trust policies (TRUST_POLICY_NOT_FOUND /
   POLICY_NOT_FOUND), the permission intersection (POLICY_NOT_FOUND when empty);
6. the token's ``jti`` is spent (replay guard) before minting; a replay is INVALID_TOKEN;
7. mint (AWS sessions carry the presented token's fingerprint as a session tag, so revocation
   can cut them off); track the issued token; write the audit record. If tracking or the audit
   write fails, the caller gets INTERNAL_ERROR and the credential is dropped (fail closed).

A refused token is spent too, when the refusal is a verdict on the token or its request
(:data:`SPENDING_CODES`): it cannot be retried against another target, policy or body, so probing
what a token could get costs one token per probe. Refusals the caller did not cause (rate limit,
unavailable configuration or stores) leave it unspent, so the workflow may retry.

Every grant is audited before the response, fail-closed. Refusals are aggregated: each is counted
per (caller, error code, rate-limit window) and the 1st, 2nd, 4th, 8th, … of a window are written
in full with ``refusal_count`` — a flood of refusals leaves a logarithmic number of items, and the
records still say how many there were. A refusal that cannot be counted is always written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger

from kernel_access.audit import (
    AuditLog,
    AuditRecord,
    AuditWriteError,
    FingerprintKeyUnavailable,
    TokenFingerprinter,
    token_fingerprint,
)
from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.exchange.claims import (
    TokenClaims,
    check_central,
    check_lifetime,
    read_claims,
    select_policy,
)
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
from kernel_access.ratelimit import RateLimiter, RateLimiterUnavailable
from kernel_access.ratelimit import caller_subject as caller_budget
from kernel_access.revocation import (
    RevocationStore,
    RevocationStoreUnavailable,
    caller_subject,
    token_subject,
)
from kernel_access.validation import EXCHANGE_SESSION_NAME, sts_safe_name
from kernel_access.vending.sts import format_expiration

if TYPE_CHECKING:
    from kernel_access.exchange.context import ExchangeRequestContext

logger = Logger(child=True)

#: Errors that say "we could not decide" rather than "no": audited as ``error``.
_ERROR_CODES = frozenset(
    {ErrorCode.INTERNAL_ERROR, ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.POLICY_LOAD_FAILED}
)
#: Refusals that are a verdict on the presented token or its request: the token's ``jti`` is spent.
SPENDING_CODES: Final = frozenset(
    {
        ErrorCode.INVALID_REQUEST,
        ErrorCode.INVALID_TOKEN,
        ErrorCode.ISSUER_NOT_ALLOWED,
        ErrorCode.TRUST_POLICY_NOT_FOUND,
        ErrorCode.POLICY_NOT_FOUND,
        ErrorCode.SESSION_REVOKED,
    }
)
#: Subjects longer than this are keyed by their SHA-256 (DynamoDB keys are bounded; GitHub and
#: GitLab subjects are far shorter).
_MAX_KEYED_SUBJECT: Final = 512


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
    #: For a sampled refusal: how many refusals of this kind the caller had in the window so far.
    refusal_count: int | None = None


@dataclass
class _Attempt:
    """What one exchange learnt before it was refused (what the refusal handling needs)."""

    key: str
    token: TokenClaims | None = None
    spent: bool = False


def caller_of(issuer_name: str, subject: str | None) -> str:
    """The audit ``caller_arn`` of an OIDC caller (not an ARN; kept in the same indexed field)."""
    return f"oidc:{issuer_name}:{subject or '<none>'}"


def subject_key(issuer_name: str, subject: str | None) -> str:
    """The key rate limits and revocations use for an OIDC subject: :func:`caller_of`, with an
    over-long subject replaced by its SHA-256. The issuer name is the route's, whose authorizer
    verified the token; the subject is the issuer's, so the caller chooses neither freely."""
    if subject is not None and len(subject) > _MAX_KEYED_SUBJECT:
        subject = "sha256:" + hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return caller_of(issuer_name, subject)


def subject_revocation(issuer_name: str, subject: str) -> str:
    """The revocation-table key of an OIDC subject (``caller#oidc:<issuer>:<sub>``)."""
    return caller_subject(subject_key(issuer_name, subject))


def _raw_subject(claims: Mapping[str, object]) -> str | None:
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else None


class ExchangeService:
    def __init__(
        self,
        *,
        config_store: ExchangeConfigStore,
        replay_guard: ReplayGuard,
        issued_tokens: IssuedTokenStore,
        audit: AuditLog,
        minter: Minter,
        revocations: RevocationStore,
        rate_limiter: RateLimiter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fingerprint: TokenFingerprinter | None = None,
    ) -> None:
        #: The issued credential's audit fingerprint: the vending API's function and key (default:
        #: no key). The presented token's fingerprint stays plain SHA-256 (see :meth:`exchange`).
        self.fingerprint = fingerprint or TokenFingerprinter()
        self.config_store = config_store
        self.revocations = revocations
        self.replay_guard = replay_guard
        self.issued_tokens = issued_tokens
        self.audit = audit
        self.minter = minter
        self.rate_limiter = rate_limiter
        self._clock = clock

    def exchange(self, context: ExchangeRequestContext) -> dict[str, Any]:
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
            # Plain SHA-256 on purpose, never keyed: operators compute it with ``sha256sum`` for
            # ``exchange revoke --oidc-token``; it keys the revocation table and the session tag
            # the cut-off deny matches.
            record.presented_token_fingerprint = token_fingerprint(context.presented_token)
        subject = _raw_subject(context.claims)
        record.caller_arn = caller_of(context.issuer_name, subject)
        attempt = _Attempt(key=subject_key(context.issuer_name, subject))
        try:
            self._rate_limit(attempt.key)
            # The keyed fingerprint is first needed after the mint: load the key before anything is
            # decided, so an unreadable configured key refuses with nothing minted and the token unspent.
            self.fingerprint.require_key()
            issued, response = self._decide_and_mint(context, record, attempt)
        except KernelAccessError as error:
            self._spend_refused(attempt, error, context.request_id)
            self._audit_refusal(
                record, error, getattr(error, "reason", error.message), count=self._count(attempt, error)
            )
            raise
        except FingerprintKeyUnavailable:
            # Configured but unreadable: refuse rather than write a weaker fingerprint.
            logger.error("audit HMAC key unavailable; exchange refused")
            internal = KernelAccessError.internal()
            self._audit_refusal(record, internal, "audit HMAC key unavailable")
            raise internal from None
        except Exception as error:
            logger.exception("exchange failed unexpectedly")
            internal = KernelAccessError.internal()
            self._audit_refusal(record, internal, f"unexpected {type(error).__name__}")
            raise internal from None
        # Granted: track, then audit; either failing drops the credential.
        try:
            self.issued_tokens.record(
                IssuedToken(
                    # The revocation index stays unkeyed SHA-256: an operator holding a leaked
                    # token finds its record with ``sha256sum`` (no access to the HMAC key).
                    fingerprint=token_fingerprint(issued.secret),
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
                    presented_token_fingerprint=record.presented_token_fingerprint,
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

    def _count(self, attempt: _Attempt, error: KernelAccessError) -> int | None:
        """How many refusals with this code the caller had in this window (None: not countable)."""
        known = getattr(error, "count", None)
        if isinstance(known, int):
            return known
        if self.rate_limiter is None:
            return None
        try:
            return self.rate_limiter.hit(f"refusals:{error.code.value}:{attempt.key}").hits
        except RateLimiterUnavailable:
            return None

    def _audit_refusal(
        self,
        record: ExchangeAuditRecord,
        error: KernelAccessError,
        reason: str,
        *,
        count: int | None = None,
    ) -> None:
        """Write the refusal's record: always when uncounted, else the 1st, 2nd, 4th, 8th, … ."""
        if count is not None and count & (count - 1):
            return
        record.refusal_count = count
        record.decision = "error" if error.code in _ERROR_CODES else "deny"
        record.error_code = error.code.value
        record.reason = reason
        try:
            self.audit.write(record)
        except AuditWriteError:
            logger.error("audit write failed for a refusal", extra={"error_code": error.code.value})
            raise KernelAccessError.internal() from None

    def _decide_and_mint(
        self, context: ExchangeRequestContext, record: ExchangeAuditRecord, attempt: _Attempt
    ) -> tuple[Issued, dict[str, Any]]:
        if not context.presented_token or not record.presented_token_fingerprint:
            raise ExchangeRefused(ErrorCode.INVALID_TOKEN, "no bearer token was presented")
        token = read_claims(context.claims)
        attempt.token = token
        record.subject, record.jti = token.subject, token.jti
        request = parse_request(decode_body(context.body, context.body_is_base64))
        record.target = request.target
        self._check_revoked(context.issuer_name, token.subject, record.presented_token_fingerprint)

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
        session = sts_safe_name(f"{EXCHANGE_SESSION_NAME}.{context.request_id}")
        tags = session_tags(
            token.all,
            issuer_name=context.issuer_name,
            request_id=context.request_id,
            token_fingerprint=record.presented_token_fingerprint,
        )
        record.source_identity, record.session_name = subject_identity, session

        _check_requested(request.requested_permissions, target)
        if isinstance(target, AwsRoleTarget):
            actions = effective_actions(
                request.requested_permissions, policy.permissions, issuer.max_permissions
            )
            _require_some(actions, request.target)
            permissions: tuple[str, ...] = actions
            record.permissions = json.dumps(list(actions))
            self._spend(attempt, context.request_id)
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
            self._spend(attempt, context.request_id)
            issued = self.minter.codeartifact(
                target,
                level=level,
                ttl=ttl,
                session_name=session,
                source_identity_value=subject_identity,
                tags=tags,
            )
        record.expiration = format_expiration(issued.expires_at)
        record.issued_token_fingerprint = self.fingerprint(issued.secret)
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
            decision = self.rate_limiter.hit(caller_budget(caller))
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
                # The counter already says how many were refused: no second write to count them.
                count=decision.hits - decision.limit,
            )

    def _check_revoked(self, issuer_name: str, subject: str, presented_fingerprint: str) -> None:
        """Refuse a revoked subject or presented token; a list that cannot be read refuses too."""
        try:
            revocation = self.revocations.first_revoked(
                [subject_revocation(issuer_name, subject), token_subject(presented_fingerprint)]
            )
        except RevocationStoreUnavailable as error:
            raise ExchangeRefused(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "the revocation list is unavailable; try again later",
                reason=str(error),
                retry_after=5,
            ) from None
        if revocation is not None:
            what = "token" if revocation.kind == "token" else "subject"
            raise ExchangeRefused(
                ErrorCode.SESSION_REVOKED,
                f"this {what} is revoked; no token can be exchanged for it",
                reason=f"{revocation.subject} revoked at {revocation.revoked_at} by "
                f"{revocation.revoked_by}: {revocation.reason}",
            )

    def _spend(self, attempt: _Attempt, request_id: str) -> None:
        token = attempt.token
        assert token is not None
        attempt.spent = True
        self.replay_guard.accept_once(
            issuer=token.issuer, jti=token.jti, expires_at=token.expires_at, request_id=request_id
        )

    def _spend_refused(self, attempt: _Attempt, error: KernelAccessError, request_id: str) -> None:
        """Spend a refused token's ``jti`` when the refusal is a verdict on it (best effort: the
        refusal stands either way; a guard that cannot be written leaves the token unspent)."""
        if attempt.token is None or attempt.spent or error.code not in SPENDING_CODES:
            return
        try:
            self._spend(attempt, request_id)
        except ExchangeRefused as spend_error:
            if spend_error.code is not ErrorCode.INVALID_TOKEN:
                logger.warning("a refused token could not be spent", extra={"error": spend_error.reason})


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
