"""Fixed-window rate limits per partner and per session in DynamoDB, atomic, fail-closed.

Who is counted, and why: the tail of a session name after ``<partner>.`` is chosen by the
partner, so a budget keyed on the full session ARN is escaped by renaming the session. The budget
that holds is the partner's (``partner#<name>#<window-start>``): every session of one partner
draws from it. Inside it each session has a tighter budget (``session#<arn>#<window-start>``) so
one runaway job cannot spend the whole partner's allowance. A caller that resolves to no partner is
counted on its principal without the session name (``principal#<role-arn>``), which it cannot pick
either. The service counts a request before it validates the request, so malformed requests spend
the budget too.

One ``UpdateItem ADD hits :one`` per counter: DynamoDB applies the increment atomically across every
Lambda container, and the returned count says whether this request is within the limit. The session
counter is only touched while the partner is within its budget (a refused flood costs one write per
request, not two). Items carry a TTL (``expires_at``) so the table cleans itself. An error talking
to the table never lets the request through: :class:`RateLimiterUnavailable`, which the service
turns into UPSTREAM_UNAVAILABLE (503).

Refusals are counted, not each audited: the count past the limit (``refusals``) comes back with the
decision and :func:`is_sampled_refusal` picks the 1st, 2nd, 4th, 8th, ... refusal of a window for
the audit table, so a flood of N refusals leaves about log2(N) records, each carrying the running
count (the table item keeps the total until its TTL).

Why a fixed window (not a token bucket): one conditional-free atomic write per counter, no
read-modify-write race, and the table schema infra creates (``pk`` + TTL) is all it needs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Requests per partner per window.
DEFAULT_LIMIT: Final = 100
#: Requests per session per window (never above the partner's limit).
DEFAULT_SESSION_LIMIT: Final = 50
DEFAULT_WINDOW_SECONDS: Final = 60

Scope = Literal["partner", "session"]
_ASSUMED_ROLE_RE: Final = re.compile(r"^(arn:[^:]+:sts::[0-9]{12}:assumed-role/[^/]+)/[^/]+$")


class RateLimiterUnavailable(Exception):
    """The counter could not be updated; the request must be refused (never let through)."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    hits: int
    limit: int
    #: Seconds until the current window ends (what ``Retry-After`` says when not allowed).
    retry_after: float
    #: Which budget decided: the partner's or the session's.
    scope: Scope = "partner"
    #: How many requests of this budget were refused so far in this window (0 when allowed).
    refusals: int = 0


def is_sampled_refusal(refusals: int) -> bool:
    """True for the 1st, 2nd, 4th, 8th, ... refusal of a window: the ones written to the audit table."""
    return refusals > 0 and refusals & (refusals - 1) == 0


def principal_subject(partner: str | None, caller_arn: str) -> str:
    """The budget a caller draws from: its partner, else its principal without the session name."""
    if partner:
        return f"partner#{partner}"
    match = _ASSUMED_ROLE_RE.fullmatch(caller_arn)
    return f"principal#{match.group(1) if match else caller_arn}"


def caller_subject(caller: str) -> str:
    """The budget of a caller identified by the caller itself (the OIDC exchange: issuer and
    subject, both fixed by the identity provider, not by the caller)."""
    return f"caller#{caller}"


def session_subject(caller_arn: str) -> str:
    return f"session#{caller_arn}"


def window_key(subject: str, window_start: int) -> str:
    return f"{subject}#{window_start}"


class RateLimiter:
    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], DynamoDBClient],
        *,
        limit: int = DEFAULT_LIMIT,
        session_limit: int | None = None,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not table_name:
            raise ValueError("rate-limit table name is required")
        if limit < 1 or window_seconds < 1 or (session_limit is not None and session_limit < 1):
            raise ValueError("rate limits and window must be positive")
        self.table_name = table_name
        self.limit = limit
        #: Defaults to DEFAULT_SESSION_LIMIT, and is never above the partner's limit.
        self.session_limit = min(limit, DEFAULT_SESSION_LIMIT if session_limit is None else session_limit)
        self.window_seconds = window_seconds
        self._client_factory = client_factory
        self._clock = clock

    def _count(self, key: str, expires: int) -> int:
        try:
            response = self._client_factory().update_item(
                TableName=self.table_name,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(expires)}},
                ReturnValues="UPDATED_NEW",
            )
            return int(response["Attributes"]["hits"]["N"])
        except Exception as exc:  # any failure (throttling, network, malformed reply) denies
            raise RateLimiterUnavailable(f"rate limiter unavailable: {type(exc).__name__}") from exc

    def hit(self, subject: str, *, session: str | None = None) -> RateDecision:
        """Count one request against ``subject`` (see :func:`principal_subject`) and, while that is
        within its limit, against ``session`` (see :func:`session_subject`).

        Raises :class:`RateLimiterUnavailable` on any error.
        """
        now = self._clock()
        window_start = int(now // self.window_seconds) * self.window_seconds
        window_end = window_start + self.window_seconds
        # Keep items one extra window so a late clock never resurrects a count.
        expires = window_end + self.window_seconds
        retry_after = max(1.0, window_end - now)
        hits = self._count(window_key(subject, window_start), expires)
        if hits > self.limit or session is None:
            return RateDecision(
                allowed=hits <= self.limit,
                hits=hits,
                limit=self.limit,
                retry_after=retry_after,
                refusals=max(0, hits - self.limit),
            )
        session_hits = self._count(window_key(session, window_start), expires)
        return RateDecision(
            allowed=session_hits <= self.session_limit,
            hits=session_hits,
            limit=self.session_limit,
            retry_after=retry_after,
            scope="session",
            refusals=max(0, session_hits - self.session_limit),
        )
