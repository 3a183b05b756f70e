"""CodeArtifact tokens: minted by a reader or publisher role, cached per container, never mixed.

A token request that the policy allowed carries the access level of the deciding rule
(``read`` or ``publish``). The access level picks the minting role (reader role: read actions
only; publisher role: adds publish), and is part of the cache key, so a reader can never be handed
a token that was minted for a publisher — not even one from the cache.

Each cache entry is a :class:`kernel_access.refresh.RefreshingValue` keyed by
``(domain, owner, access, lifetime, partner)``: mints are single-flight, refreshed ahead of expiry,
served while a refresh fails, and guarded by a circuit breaker (so a CodeArtifact outage costs one
mint attempt per breaker period, not one per request).

Tokens are per partner, never shared: the partner is part of the key, and each partner's token is
minted by its own session of the minting role, with SourceIdentity = the partner and a ``partner``
session tag (the minting roles' trust requires both). CloudTrail then says which partner's token
published a package, and the audit fingerprint of one partner's token is never another's. A caller
the policy allows without a partner (a rule on accounts or principal ARNs only) is attributed to
its account (:func:`token_owner`); a caller with neither is refused.

Lifetimes are rounded *down* to :data:`LIFETIME_BUCKETS` (:func:`lifetime_bucket`): a caller never
receives a token that lives longer than the duration they asked for and the policy granted, and
requests for 900..959 s share one mint instead of costing one each. A cached token is served only
while it has at least :data:`MIN_REMAINING_SECONDS` left.

Mint rate: CodeArtifact allows 40 ``GetAuthorizationToken`` per second per region, shared by every
caller in the kernel account. Each mint first passes a deployment-wide :class:`MintRateGate`
(a fixed window in the rate-limit table, :data:`MINT_RATE_LIMIT` per
:data:`MINT_RATE_WINDOW_SECONDS`), so no burst of cache misses — many partners, a cold fleet,
evictions — can exhaust that quota; past it a request that needs a mint is refused with THROTTLED
(429, ``Retry-After``), and a limiter that cannot answer refuses too (fail closed). Cached tokens
are served regardless: the cap is on mints, not requests.

Revocation: :meth:`TokenCache.drop_partner` forgets every cached token of a partner; the service
calls it when it finds the partner revoked, so a later unrevoke starts from a fresh mint and a
revoked partner's token is never served from this container again.

Minting: AssumeRole into the minting role for ``lifetime`` seconds, then
``GetAuthorizationToken(durationSeconds=0)``, which makes the token expire with that session
(a token cannot outlive the credentials that minted it anyway).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.ratelimit import RateLimiter, RateLimiterUnavailable
from kernel_access.validation import sts_safe_name
from kernel_access.vending.sts import AssumedCredentials, assume_role, tag_value, upstream_error

if TYPE_CHECKING:
    from mypy_boto3_codeartifact import CodeArtifactClient
    from mypy_boto3_sts import STSClient

    from kernel_access.refresh import Minted, RefreshingValue

Access = Literal["read", "publish"]
#: A cached token is handed out only with at least this much life left.
MIN_REMAINING_SECONDS: Final = 300.0
#: Bound on distinct cache entries. Entries are per partner, so the count grows with active
#: partners: the LRU bound keeps a container's memory fixed (an entry is a few KB) whatever the
#: number of partners; an evicted partner simply mints again, within the mint-rate cap.
MAX_ENTRIES: Final = 512
#: Token lifetimes actually minted (seconds); a request is rounded down to one of them.
LIFETIME_BUCKETS: Final = (900, 1800, 2700, 3600)
#: Deployment-wide cap on mints (AssumeRole + GetAuthorizationToken): a quarter of CodeArtifact's
#: 40 token requests per second per region, leaving room for the exchange and everything else.
MINT_RATE_LIMIT: Final = 10
MINT_RATE_WINDOW_SECONDS: Final = 1
#: Rate-limit table subject of the mint cap (an ARN never starts this way, so no caller shares it).
MINT_RATE_SUBJECT: Final = "kernel-access:codeartifact-mint"
#: Session tag naming the partner on the minting session (the minting roles' trust requires it).
PARTNER_TAG: Final = "partner"

CacheKey = tuple[str, str, str, int, str]
#: Prefix of a cache entry's refresh-engine name (``codeartifact:<domain>:<access>:<lifetime>``),
#: which is also the ``breaker`` dimension of the BreakerState metric; ``/health`` lists the
#: breakers without it. The partner is deliberately not in the name: a metric dimension per
#: partner would grow with the number of partners.
BREAKER_PREFIX: Final = "codeartifact:"
#: Worst first: how ``/health`` merges the breakers of one name across partners.
_BREAKER_SEVERITY: Final = {"open": 2, "half-open": 1, "closed": 0}
#: Opens a trace subsegment named after the AWS call it wraps (the service passes X-Ray's).
Trace = Callable[[str], AbstractContextManager[None]]


def _no_trace(_name: str) -> AbstractContextManager[None]:
    return nullcontext()


def fetch_authorization_token(
    client: Callable[[], CodeArtifactClient], *, domain: str, owner: str, duration: int
) -> tuple[str, datetime]:
    """CodeArtifact ``GetAuthorizationToken`` → ``(token, expiration)``, expiration always aware.

    Any failure, building the client included, is ``UPSTREAM_UNAVAILABLE``: the vending route and
    the OIDC exchange both mint through here.
    """
    try:
        response = client().get_authorization_token(
            domain=domain, domainOwner=owner, durationSeconds=duration
        )
        token = response["authorizationToken"]
        expiration = response["expiration"]
    except Exception as exc:
        raise upstream_error("codeartifact", exc) from None
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    return token, expiration


def lifetime_bucket(seconds: int) -> int:
    """The longest bucket not above ``seconds`` (never longer than asked; below every bucket:
    ``seconds`` itself, which request validation already rules out)."""
    fitting = [bucket for bucket in LIFETIME_BUCKETS if bucket <= seconds]
    return fitting[-1] if fitting else seconds


def token_owner(partner: str | None, caller_account: str | None) -> str | None:
    """Who a token is minted for: the partner, else ``account@<id>`` (a partner name never holds
    ``@``, so the two can never collide), else nobody (the request is refused)."""
    if partner:
        return partner
    if caller_account:
        return f"account@{caller_account}"
    return None


class MintRateGate:
    """Deployment-wide cap on mints, counted in the rate-limit table; fails closed."""

    def __init__(self, limiter: RateLimiter, *, subject: str = MINT_RATE_SUBJECT) -> None:
        self.limiter = limiter
        self.subject = subject

    def check(self) -> None:
        """Count one mint; THROTTLED past the cap, UPSTREAM_UNAVAILABLE when it cannot be counted."""
        try:
            decision = self.limiter.hit(self.subject)
        except RateLimiterUnavailable:
            raise KernelAccessError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "rate limiter unavailable; try again later",
                {"upstream": "rate-limit", "retryable": True},
            ) from None
        if not decision.allowed:
            raise KernelAccessError(
                ErrorCode.THROTTLED,
                "CodeArtifact token minting is at capacity; try again shortly",
                {"limit": decision.limit, "window_seconds": self.limiter.window_seconds},
                retry_after=decision.retry_after,
            )


@dataclass(frozen=True)
class CodeArtifactToken:
    token: str
    expiration: datetime
    access: Access

    def __repr__(self) -> str:  # a bearer token must never reach a log line through repr()
        return f"CodeArtifactToken(access={self.access!r}, expiration={self.expiration!r})"


class TokenCache:
    """Per-container cache of CodeArtifact tokens, one refreshing value per key."""

    def __init__(
        self,
        *,
        reader_role_arn: str | None,
        publisher_role_arn: str | None,
        domain_owner: str | None,
        sts_client: Callable[[], STSClient],
        codeartifact_client: Callable[[AssumedCredentials], CodeArtifactClient],
        on_event: Callable[[str, Mapping[str, object]], None] | None = None,
        min_remaining: float = MIN_REMAINING_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], datetime] | None = None,
        trace: Trace = _no_trace,
        mint_gate: MintRateGate | None = None,
    ) -> None:
        """``mint_gate`` (default: none, for tests and tools) caps the mint rate; the vending
        service always passes one."""
        self._mint_gate = mint_gate
        self._roles: dict[str, str | None] = {"read": reader_role_arn, "publish": publisher_role_arn}
        self.domain_owner = domain_owner
        self._sts_client = sts_client
        self._codeartifact_client = codeartifact_client
        self._on_event = on_event
        self._min_remaining = min_remaining
        self._max_entries = max_entries
        self._clock = clock
        self._trace = trace
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, RefreshingValue[CodeArtifactToken]] = OrderedDict()
        #: Mints performed (for tests and the benchmark: a warm cache should not mint).
        self.mint_count = 0

    def _mint(
        self, domain: str, owner: str, access: Access, lifetime: int, partner: str
    ) -> Minted[CodeArtifactToken]:
        from kernel_access.refresh import Minted

        role_arn = self._roles[access]
        if not role_arn:
            raise KernelAccessError.internal()
        if self._mint_gate is not None:
            with self._trace("dynamodb.UpdateItem mint-rate"):
                self._mint_gate.check()
        self.mint_count += 1
        with self._trace(f"sts.AssumeRole codeartifact-{access}"):
            credentials = assume_role(
                self._sts_client(),
                role_arn=role_arn,
                role_session_name=sts_safe_name(f"codeartifact-{access}-{partner}"),
                source_identity_value=partner,
                tags=[{"Key": PARTNER_TAG, "Value": tag_value(partner)}],
                duration=lifetime,
            )
        issued_at = datetime.now(UTC)
        with self._trace("codeartifact.GetAuthorizationToken"):
            token, expiration = fetch_authorization_token(
                lambda: self._codeartifact_client(credentials), domain=domain, owner=owner, duration=0
            )
        # The token cannot outlive its minting session; never report more than that.
        expiration = min(expiration, credentials.expiration)
        return Minted(
            value=CodeArtifactToken(token=token, expiration=expiration, access=access),
            expires_at=expiration,
            issued_at=issued_at,
        )

    def _entry(self, key: CacheKey) -> RefreshingValue[CodeArtifactToken]:
        from kernel_access.refresh import RefreshingValue, utc_now

        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            domain, owner, access, lifetime, partner = key
            typed_access: Access = "publish" if access == "publish" else "read"
            entry = RefreshingValue(
                lambda: self._mint(domain, owner, typed_access, lifetime, partner),
                min_remaining=self._min_remaining,
                on_event=self._on_event,
                name=f"{BREAKER_PREFIX}{domain}:{access}:{lifetime}",
                clock=self._clock or utc_now,
            )
            self._entries[key] = entry
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return entry

    def get(self, *, domain: str, access: Access, lifetime: int, partner: str) -> CodeArtifactToken:
        """``partner``'s token of exactly this access level, living at most ``lifetime`` seconds
        (rounded down to a bucket), from the cache or freshly minted.

        Raises UPSTREAM_UNAVAILABLE (503) when no valid token can be had (mint failing, breaker
        open) and THROTTLED (429) when a mint is needed past the mint-rate cap.
        """
        from kernel_access.refresh import RefreshError

        if access not in ("read", "publish"):
            raise KernelAccessError.internal()
        if not self.domain_owner or not self._roles[access]:
            # Deployed without CodeArtifact: nothing can be minted; say so without internals.
            raise KernelAccessError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "CodeArtifact token minting is not configured",
                {"upstream": "codeartifact", "retryable": False},
            )
        entry = self._entry((domain, self.domain_owner, access, lifetime_bucket(lifetime), partner))
        try:
            token = entry.get()
        except RefreshError as exc:
            cause = exc.cause
            if isinstance(cause, KernelAccessError):
                raise cause from None
            raise upstream_error("codeartifact", exc) from None
        if token.access != access:  # pragma: no cover - guarded by the key; belt and braces
            raise KernelAccessError.internal()
        return token

    def drop_partner(self, partner: str) -> int:
        """Forget every cached token of ``partner`` (revoked); returns how many were dropped."""
        with self._lock:
            keys = [key for key in self._entries if key[4] == partner]
            for key in keys:
                del self._entries[key]
        return len(keys)

    def breaker_states(self) -> dict[str, str]:
        """Breaker state per ``domain:access:lifetime``, the worst across partners."""
        with self._lock:
            entries = list(self._entries.items())
        states: dict[str, str] = {}
        for (d, _o, a, lt, _p), entry in entries:
            name, state = f"{d}:{a}:{lt}", str(entry.breaker_state)
            if _BREAKER_SEVERITY.get(state, 2) >= _BREAKER_SEVERITY.get(states.get(name, "closed"), 2):
                states[name] = state
        return states
