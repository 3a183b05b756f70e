"""Load: 2,000 signed /credentials requests at 32 concurrent clients against the local kernel stack.

Callers: 32 distinct partner sessions (222222222222.load-00 … load-31), ~63 requests each, so the
per-session rate limit (100 / 60 s) is respected; the e2e emulator raises the per-partner limit
(see ``kernel_emulator``), since all 2,000 requests are one partner's. Asserted: no transport
error, no 5xx, every request allowed, and the audit table
holds exactly one record per request. Latency and throughput are printed, never asserted.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Emulator
from tests.e2e.load import run_load

TOTAL = 2000
CLIENTS = 32


def _audit_records(emulator: Emulator, caller_arn: str) -> list[dict[str, Any]]:
    dynamodb = emulator.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": emulator.state["audit_table"],
        "IndexName": "by-caller",
        "KeyConditionExpression": "caller_arn = :c",
        "ExpressionAttributeValues": {":c": {"S": caller_arn}},
    }
    while True:
        page = dynamodb.query(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_load_2000_requests_32_clients(kernel_emulator: Emulator) -> None:
    sessions = [kernel_emulator.partner_session("payments", f"load-{i:02d}") for i in range(CLIENTS)]
    result = run_load(kernel_emulator.state["vending_url"], sessions, total=TOTAL)
    print(f"\nLOAD {result.summary()}")

    assert result.transport_errors == []
    assert not any(status >= 500 for status in result.statuses)
    assert result.statuses == {200: TOTAL}
    assert len(set(result.request_ids)) == TOTAL

    audited: list[str] = []
    for i in range(CLIENTS):
        arn = f"arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.load-{i:02d}"
        audited.extend(item["request_id"]["S"] for item in _audit_records(kernel_emulator, arn))
    assert len(audited) == TOTAL
    assert sorted(audited) == sorted(result.request_ids)
