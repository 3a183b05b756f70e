"""``kernel-access audit``: query planning (always a key or an index unless --scan), and the commands
against a moto audit table filled by the runtime's own ``AuditLog`` writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from kernel_access.audit import RECORD_KEY, AuditLog, AuditRecord
from kernel_access.cli import audit as audit_cli
from kernel_access.cli.main import main
from moto import mock_aws

TABLE = "audit-cli-test"
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CALLER = "arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-{n}"


def _create_table(client: Any) -> None:
    """The ``AuditTable`` construct's key schema (the request id alone: one record per request) and its
    three indexes, each sorted by ``recorded_at``."""
    index_keys = {
        audit_cli.BY_CALLER_INDEX: "caller_arn",
        audit_cli.BY_ACCESS_KEY_INDEX: "access_key_id",
        audit_cli.BY_PARTNER_INDEX: "partner",
    }
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in (RECORD_KEY, "recorded_at", *index_keys.values())
        ],
        KeySchema=[{"AttributeName": RECORD_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": key, "KeyType": "HASH"},
                    {"AttributeName": "recorded_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, key in index_keys.items()
        ],
    )


def _records() -> list[AuditRecord]:
    """12 records: payments callers ci-0..ci-2 (allowed reader sessions with keys, deployer denials,
    one rate-limited), 4 for acme-analytics, one minute apart."""
    records = []
    for n in range(12):
        partner = "payments" if n < 8 else "acme-analytics"
        allowed = n % 2 == 0
        records.append(
            AuditRecord(
                request_id=f"req-{n:02d}",
                route="GET /credentials",
                decision="allow" if allowed else "deny",
                recorded_at=START + timedelta(minutes=n),
                error_code=None if allowed else ("RATE_LIMITED" if n == 5 else "POLICY_DENY"),
                caller_arn=CALLER.format(n=n % 3),
                partner=partner,
                target_role="kernel-reader" if allowed else "kernel-deployer",
                access_key_id=f"ASIATESTKEY{n:09d}" if allowed else None,
                expiration="2026-11-30T10:00:00Z" if allowed else None,
            )
        )
    return records


@pytest.fixture(scope="module")
def table() -> Iterator[Any]:
    """One table for the module: the commands only read it."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "KERNEL_ACCESS_AUDIT_TABLE": TABLE,
        }.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create_table(client)
        log = AuditLog(TABLE, lambda: client)
        for record in _records():
            log.write(record)
        yield client


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["audit", *argv, "--output", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else []), err


# --- planning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "index", "key"),
    [
        (audit_cli.AuditQuery(request_id="r", partner="p"), None, "request_id"),
        (
            audit_cli.AuditQuery(access_key_id="ASIAAAAAAAAAAAAAAAAA", caller="c"),
            "by-access-key",
            "access_key_id",
        ),
        (audit_cli.AuditQuery(caller="c", partner="p"), "by-caller", "caller_arn"),
        (
            audit_cli.AuditQuery(partner="p", target_role="r", error_code="POLICY_DENY"),
            "by-partner",
            "partner",
        ),
    ],
)
def test_plan_uses_the_key_or_an_index(query: audit_cli.AuditQuery, index: str | None, key: str) -> None:
    plan = audit_cli.plan(query)
    assert plan.operation == "query"
    assert plan.params.get("IndexName") == index
    assert plan.params["KeyConditionExpression"] == f"#{key} = :{key}"
    # Every other condition is a filter on the items the key reads.
    given = {k for k, v in vars(query).items() if v is not None} - {
        "request_id",
        "access_key_id",
        "caller",
        "partner",
    }
    for name in given:
        assert f"#{name} = :{name}" in plan.params["FilterExpression"]


def test_plan_refuses_to_scan_unless_asked() -> None:
    with pytest.raises(audit_cli.UsageError, match="--scan"):
        audit_cli.plan(audit_cli.AuditQuery(error_code="INTERNAL_ERROR"))
    plan = audit_cli.plan(audit_cli.AuditQuery(error_code="INTERNAL_ERROR", since=START), scan=True)
    assert plan.operation == "scan"
    assert plan.params["FilterExpression"] == "#error_code = :error_code AND #recorded_at >= :since"


def test_time_range_narrows_the_key_condition() -> None:
    plan = audit_cli.plan(audit_cli.AuditQuery(partner="p", since=START, until=START + timedelta(hours=1)))
    assert (
        plan.params["KeyConditionExpression"]
        == "#partner = :partner AND #recorded_at BETWEEN :since AND :until"
    )
    assert plan.params["ExpressionAttributeValues"][":since"] == {"S": "2026-11-30T09:00:00.000000Z"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (audit_cli.AuditQuery(access_key_id="secret/key"), "not an access key id"),
        (audit_cli.AuditQuery(partner="p", error_code="NOPE"), "unknown error code"),
        (audit_cli.AuditQuery(partner="p", since=START, until=START - timedelta(1)), "after --until"),
    ],
)
def test_plan_rejects_bad_input(query: audit_cli.AuditQuery, message: str) -> None:
    with pytest.raises(audit_cli.UsageError, match=message):
        audit_cli.plan(query)


def test_parse_time_forms() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert audit_cli.parse_time("90m", now=now) == now - timedelta(minutes=90)
    assert audit_cli.parse_time("7d", now=now) == now - timedelta(days=7)
    assert audit_cli.parse_time("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert audit_cli.parse_time("2026-12-01T10:00:00+01:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    with pytest.raises(audit_cli.UsageError):
        audit_cli.parse_time("yesterday")


# --- the commands against moto -----------------------------------------------------------------


def test_query_by_request_id(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = _json(capsys, "query", "--request-id", "req-03")
    assert code == 0
    assert [(r["request_id"], r["decision"], r["error_code"]) for r in records] == [
        ("req-03", "deny", "POLICY_DENY")
    ]


@pytest.mark.parametrize(
    ("window", "found"),
    [(["--since", "2026-11-30T09:00:00Z"], True), (["--until", "2026-11-30T09:02:00Z"], False)],
)
def test_query_by_request_id_with_a_time_range(
    table: Any, capsys: pytest.CaptureFixture[str], window: list[str], found: bool
) -> None:
    """The table has no sort key: the time range filters the one record the key reads."""
    plan = audit_cli.plan(audit_cli.AuditQuery(request_id="req-03", since=START))
    assert plan.params["KeyConditionExpression"] == "#request_id = :request_id"
    assert plan.params["FilterExpression"] == "#recorded_at >= :since"
    code, records, err = _json(capsys, "query", "--request-id", "req-03", *window)
    assert code == (0 if found else 1), err
    assert [r["request_id"] for r in records] == (["req-03"] if found else [])
    if not found:
        assert err == ""  # filtered out (an empty JSON array), not an AWS error


def test_query_by_caller_newest_first(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = _json(capsys, "query", "--caller", CALLER.format(n=1))
    assert code == 0
    assert [r["request_id"] for r in records] == ["req-10", "req-07", "req-04", "req-01"]


def test_query_by_partner_with_filters_and_time_range(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, denials, _ = _json(capsys, "query", "--partner", "payments", "--decision", "deny")
    assert [r["request_id"] for r in denials] == ["req-07", "req-05", "req-03", "req-01"]
    _, limited, _ = _json(capsys, "query", "--partner", "payments", "--error-code", "RATE_LIMITED")
    assert [r["request_id"] for r in limited] == ["req-05"]
    _, readers, _ = _json(capsys, "query", "--partner", "acme-analytics", "--target-role", "kernel-reader")
    assert [r["request_id"] for r in readers] == ["req-10", "req-08"]
    _, window, _ = _json(
        capsys,
        "query",
        "--partner",
        "payments",
        "--since",
        "2026-11-30T09:02:00Z",
        "--until",
        "2026-11-30T09:04:00Z",
    )
    assert [r["request_id"] for r in window] == ["req-04", "req-03", "req-02"]


def test_query_by_access_key_id(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = _json(capsys, "query", "--access-key-id", "ASIATESTKEY000000006")
    assert code == 0
    assert [(r["request_id"], r["partner"]) for r in records] == [("req-06", "payments")]


def test_pagination_past_one_page_reports_progress(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, records, err = _json(capsys, "query", "--partner", "payments", "--page-size", "3", "--limit", "0")
    assert code == 0
    assert len(records) == 8  # three pages of three items (the last one partly full)
    assert len({r["request_id"] for r in records}) == 8
    assert "audit: page 3: 8 items read, 8 matched" in err
    _, _, quiet = _json(
        capsys, "query", "--partner", "payments", "--page-size", "3", "--limit", "0", "--quiet"
    )
    assert quiet == ""
    # --limit stops reading early and says so.
    _, first, err = _json(capsys, "query", "--partner", "payments", "--page-size", "3", "--limit", "4")
    assert [r["request_id"] for r in first] == ["req-07", "req-06", "req-05", "req-04"]
    assert "stopped at --limit 4" in err


def test_without_a_key_it_refuses_then_scans_when_asked(
    table: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["audit", "query", "--error-code", "POLICY_DENY"])
    assert code == 1
    assert "--scan" in capsys.readouterr().err
    code, records, _ = _json(capsys, "query", "--error-code", "POLICY_DENY", "--scan", "--page-size", "5")
    assert code == 0
    assert sorted(r["request_id"] for r in records) == ["req-01", "req-03", "req-07", "req-09", "req-11"]


def test_table_output_for_people(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--request-id", "req-00"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == [c.upper() for c in audit_cli.COLUMNS]
    assert row.split()[:3] == ["2026-11-30T09:00:00.000000Z", "req-00", "allow"]
    assert CALLER.format(n=0) in row


def test_nothing_found_exits_1(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--partner", "nobody"]) == 1
    assert "no matching audit records" in capsys.readouterr().err


def test_trace_names_partner_and_request(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "trace", "ASIATESTKEY000000008"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ASIATESTKEY000000008 was issued to partner acme-analytics by request req-08 at ")
    assert f"caller:          {CALLER.format(n=2)}" in out
    assert "target role:     kernel-reader" in out
    code, records, _ = _json(capsys, "trace", "ASIATESTKEY000000008")
    assert code == 0
    assert records[0]["request_id"] == "req-08"


def test_trace_of_an_unknown_key_fails(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "trace", "ASIAUNKNOWNKEY000000"]) == 1
    assert "no audit record holds ASIAUNKNOWNKEY000000" in capsys.readouterr().err


def test_aws_errors_are_one_line(table: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--partner", "p", "--table", "missing-table"]) == 1
    assert capsys.readouterr().err.startswith("kernel-access: error: ResourceNotFoundException")


def test_needs_a_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KERNEL_ACCESS_AUDIT_TABLE", raising=False)
    assert main(["audit", "trace", "ASIAUNKNOWNKEY000000"]) == 1
    assert "no audit table" in capsys.readouterr().err
