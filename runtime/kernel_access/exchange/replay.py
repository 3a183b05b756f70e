"""Replay guard: each token id (``jti``) is accepted once, enforced by a conditional DynamoDB write.

The item's key is ``<issuer>#<jti>`` (two issuers may well use the same ``jti`` values) and its
TTL is the token's own expiry: after that the token is refused as expired anyway, so the entry
is no longer needed. DynamoDB deletes expired items lazily (up to days later); an expired but
not yet deleted entry still refuses a replay, which is the safe direction.

Any error other than "already there" refuses the request (UPSTREAM_UNAVAILABLE): without the
guard a stolen token could be exchanged repeatedly, so a broken guard must not let it through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kernel_access.contract import ErrorCode
from kernel_access.exchange.refusal import ExchangeRefused

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def replay_key(issuer: str, jti: str) -> str:
    return f"{issuer}#{jti}"


class ReplayGuard:
    def __init__(self, table_name: str, client_factory: Callable[[], DynamoDBClient]) -> None:
        if not table_name:
            raise ValueError("replay table name is required")
        self.table_name = table_name
        self._client_factory = client_factory

    def accept_once(self, *, issuer: str, jti: str, expires_at: int, request_id: str) -> None:
        """Record the token id, or refuse with INVALID_TOKEN when it was recorded before."""
        from botocore.exceptions import ClientError

        try:
            self._client_factory().put_item(
                TableName=self.table_name,
                Item={
                    "jti": {"S": replay_key(issuer, jti)},
                    "expires_at": {"N": str(expires_at)},
                    "request_id": {"S": request_id},
                },
                ConditionExpression="attribute_not_exists(jti)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ExchangeRefused(
                    ErrorCode.INVALID_TOKEN,
                    "this token has already been exchanged; each token is accepted once",
                    reason=f"replay of jti {jti[:64]}",
                ) from None
            raise _unavailable(exc) from None
        except Exception as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> ExchangeRefused:
    return ExchangeRefused(
        ErrorCode.UPSTREAM_UNAVAILABLE,
        "the replay guard is unavailable; try again later",
        reason=f"replay table write failed: {type(exc).__name__}",
        retry_after=5,
    )
