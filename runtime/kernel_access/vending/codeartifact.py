"""CodeArtifact tokens: minted by a reader or publisher role, cached per container, never mixed.

A token request that the policy allowed carries the access level of the deciding rule
(``read`` or ``publish``). The access level picks the minting role (reader role: read actions
only; publisher role: adds publish), and is part of the cache key, so a reader can never be handed
a token that was minted for a publisher — not even one from the cache.

Each cache entry is a :class:`kernel_access.refresh.RefreshingValue` keyed by
``(domain, owner, access, lifetime)``: mints are single-flight, refreshed ahead of expiry, served
while a refresh fails, and guarded by a circuit breaker (so a CodeArtifact outage costs one mint
attempt per breaker period, not one per request — CodeArtifact allows only 40 token requests per
second per region). The lifetime is part of the key so a caller never receives a token that lives
longer than the duration they asked for and the policy granted; a cached token is served only while
it has at least :data:`MIN_REMAINING_SECONDS` left.

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
from kernel_access.vending.sts import AssumedCredentials, assume_role, upstream_error

if TYPE_CHECKING:
    from mypy_boto3_codeartifact import CodeArtifactClient
    from mypy_boto3_sts import STSClient

    from kernel_access.refresh import Minted, RefreshingValue

Access = Literal["read", "publish"]
#: A cached token is handed out only with at least this much life left.
MIN_REMAINING_SECONDS: Final = 300.0
#: Bound on distinct cache entries (domains are already limited by the policy; this is a backstop).
MAX_ENTRIES: Final = 64

CacheKey = tuple[str, str, str, int]
#: Prefix of a cache entry's refresh-engine name (``codeartifact:<domain>:<access>:<lifetime>``),
#: which is also the ``breaker`` dimension of the BreakerState metric; ``/health`` lists the
#: breakers without it.
BREAKER_PREFIX: Final = "codeartifact:"
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
    ) -> None:
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

    def _mint(self, domain: str, owner: str, access: Access, lifetime: int) -> Minted[CodeArtifactToken]:
        from kernel_access.refresh import Minted

        role_arn = self._roles[access]
        if not role_arn:
            raise KernelAccessError.internal()
        self.mint_count += 1
        with self._trace(f"sts.AssumeRole codeartifact-{access}"):
            credentials = assume_role(
                self._sts_client(),
                role_arn=role_arn,
                role_session_name=f"codeartifact-{access}",
                source_identity_value=None,
                tags=None,
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
            domain, owner, access, lifetime = key
            typed_access: Access = "publish" if access == "publish" else "read"
            entry = RefreshingValue(
                lambda: self._mint(domain, owner, typed_access, lifetime),
                min_remaining=self._min_remaining,
                on_event=self._on_event,
                name=f"{BREAKER_PREFIX}{domain}:{access}:{lifetime}",
                clock=self._clock or utc_now,
            )
            self._entries[key] = entry
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return entry

    def get(self, *, domain: str, access: Access, lifetime: int) -> CodeArtifactToken:
        """A token of exactly this access level, from the cache or freshly minted.

        Raises UPSTREAM_UNAVAILABLE (503) when no valid token can be had (mint failing, breaker open).
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
        entry = self._entry((domain, self.domain_owner, access, lifetime))
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

    def breaker_states(self) -> dict[str, str]:
        with self._lock:
            entries = list(self._entries.items())
        return {f"{d}:{a}:{lt}": str(entry.breaker_state) for (d, _o, a, lt), entry in entries}
