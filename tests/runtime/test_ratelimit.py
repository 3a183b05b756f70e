"""Per-caller fixed-window rate limit on DynamoDB: atomic counts, windows, fail-closed errors."""

from __future__ import annotations

import boto3
import pytest
from kernel_access.ratelimit import RateLimiter, RateLimiterUnavailable, caller_subject, window_key

from tests.runtime.conftest import PAYMENTS_ARN, RATE_LIMIT_TABLE, REGION

CALLER = caller_subject(PAYMENTS_ARN)


@pytest.fixture
def clock():
    return [1_000_020.0]


@pytest.fixture
def limiter(aws_backend, clock):
    aws_backend.reset_mutable_state()
    return RateLimiter(
        RATE_LIMIT_TABLE, lambda: aws_backend.dynamodb, limit=3, window_seconds=60, clock=lambda: clock[0]
    )


def test_counts_per_caller_and_window(limiter, aws_backend, clock):
    decisions = [limiter.hit(CALLER) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].hits == 4
    assert decisions[-1].retry_after == pytest.approx(60 - (1_000_020 % 60))
    assert limiter.hit(caller_subject("arn:aws:sts::111111111111:assumed-role/kernel-access/other.x")).allowed
    item = aws_backend.dynamodb.get_item(
        TableName=RATE_LIMIT_TABLE, Key={"pk": {"S": window_key(CALLER, 1_000_020 - 1_000_020 % 60)}}
    )["Item"]
    assert item["hits"] == {"N": "4"}
    window_end = 1_000_020 - 1_000_020 % 60 + 60
    assert item["expires_at"] == {"N": str(window_end + 60)}  # TTL cleans the table
    clock[0] += 60  # next window: a fresh budget
    assert limiter.hit(CALLER).allowed


def test_one_atomic_update_per_request_no_read_modify_write():
    """Atomicity is DynamoDB's (ADD in one UpdateItem); moto is not thread-safe, so what we can
    assert is that the limiter never reads then writes: exactly one UpdateItem with ADD."""
    from botocore.stub import Stubber

    client = boto3.client("dynamodb", region_name=REGION)
    limiter = RateLimiter(RATE_LIMIT_TABLE, lambda: client, limit=5, window_seconds=60, clock=lambda: 120.0)
    with Stubber(client) as stubber:
        stubber.add_response(
            "update_item",
            {"Attributes": {"hits": {"N": "6"}}},
            {
                "TableName": RATE_LIMIT_TABLE,
                "Key": {"pk": {"S": f"caller#{PAYMENTS_ARN}#120"}},
                "UpdateExpression": "ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":expires": {"N": "240"}},
                "ReturnValues": "UPDATED_NEW",
            },
        )
        decision = limiter.hit(CALLER)
        stubber.assert_no_pending_responses()
    assert not decision.allowed
    assert decision.retry_after == 60


def test_errors_fail_closed(aws_backend):
    broken = RateLimiter("no-such-table", lambda: aws_backend.dynamodb)
    with pytest.raises(RateLimiterUnavailable):
        broken.hit(CALLER)

    def no_network():
        raise ConnectionError("down")

    with pytest.raises(RateLimiterUnavailable):
        RateLimiter(RATE_LIMIT_TABLE, no_network).hit(CALLER)  # type: ignore[arg-type]


def test_malformed_reply_fails_closed(aws_backend):
    from botocore.stub import Stubber

    client = boto3.client("dynamodb", region_name=REGION)
    with Stubber(client) as stubber:
        stubber.add_response("update_item", {"Attributes": {}})
        with pytest.raises(RateLimiterUnavailable):
            RateLimiter(RATE_LIMIT_TABLE, lambda: client).hit(CALLER)


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (10, 0)])
def test_invalid_settings(limit, window):
    with pytest.raises(ValueError):
        RateLimiter(RATE_LIMIT_TABLE, lambda: None, limit=limit, window_seconds=window)  # type: ignore[arg-type,return-value]
