"""Per-caller fixed-window rate limit in DynamoDB, atomic, fail-closed.

One ``UpdateItem ADD hits :one`` per request on the item ``caller#<arn>#<window-start>``: DynamoDB
applies the increment atomically across every Lambda container, and the returned count says
whether this request is within the limit. Items carry a TTL (``expires_at``) so the table cleans
itself. An error talking to the table never lets the request through (no fail-open path): the
caller gets UPSTREAM_UNAVAILABLE (503) instead (:class:`RateLimiterUnavailable`).

Why a fixed window (not a token bucket): one conditional-free atomic write per request, no
read-modify-write race, and the table schema infra creates (``pk`` + TTL) is all it needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_LIMIT: Final = 100
DEFAULT_WINDOW_SECONDS: Final = 60


class RateLimiterUnavailable(Exception):
    """The counter could not be updated; the request must be refused (never let through)."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    hits: int
    limit: int
    #: Seconds until the current window ends (what ``Retry-After`` says when not allowed).
    retry_after: float


def window_key(caller_arn: str, window_start: int) -> str:
    return f"caller#{caller_arn}#{window_start}"


class RateLimiter:
    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], DynamoDBClient],
        *,
        limit: int = DEFAULT_LIMIT,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not table_name:
            raise ValueError("rate-limit table name is required")
        if limit < 1 or window_seconds < 1:
            raise ValueError("rate limit and window must be positive")
        self.table_name = table_name
        self.limit = limit
        self.window_seconds = window_seconds
        self._client_factory = client_factory
        self._clock = clock

    def hit(self, caller_arn: str) -> RateDecision:
        """Count one request of ``caller_arn``; raise :class:`RateLimiterUnavailable` on any error."""
        now = self._clock()
        window_start = int(now // self.window_seconds) * self.window_seconds
        window_end = window_start + self.window_seconds
        try:
            response = self._client_factory().update_item(
                TableName=self.table_name,
                Key={"pk": {"S": window_key(caller_arn, window_start)}},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    # Keep the item one extra window so a late clock never resurrects a count.
                    ":expires": {"N": str(window_end + self.window_seconds)},
                },
                ReturnValues="UPDATED_NEW",
            )
            hits = int(response["Attributes"]["hits"]["N"])
        except Exception as exc:  # any failure (throttling, network, malformed reply) denies
            raise RateLimiterUnavailable(f"rate limiter unavailable: {type(exc).__name__}") from exc
        return RateDecision(
            allowed=hits <= self.limit,
            hits=hits,
            limit=self.limit,
            retry_after=max(1.0, window_end - now),
        )
