"""Audit records: shape, TTL, immutability, fingerprints, and no field that could hold a secret."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from kernel_access.audit import AuditLog, AuditRecord, AuditWriteError, token_fingerprint

from tests.runtime.conftest import AUDIT_TABLE

pytestmark = pytest.mark.usefixtures("secrets_scan")

DOCUMENTED_FIELDS = {
    "recorded_at", "request_id", "route", "decision", "error_code", "rule_id", "reason", "caller_arn",
    "caller_account", "caller_org", "source_ip", "user_agent", "partner", "target_role", "session_name",
    "source_identity", "access_key_id", "expiration", "duration", "latency_ms", "token_fingerprint",
}  # fmt: skip


def test_record_has_every_documented_field_and_none_for_secrets():
    names = {f.name for f in dataclasses.fields(AuditRecord)}
    assert names >= DOCUMENTED_FIELDS
    forbidden = ("secret", "session_token", "token_value", "authorization_token", "password")
    assert not [n for n in names if any(word in n for word in forbidden)]


def test_item_shape_ttl_and_sparse_keys():
    at = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
    record = AuditRecord(
        request_id="r1",
        route="GET /credentials",
        decision="deny",
        recorded_at=at,
        caller_arn="",
        duration=900,
        latency_ms=1.23456,
        user_agent="x" * 5000,
    )
    item = record.to_item(retention_days=30)
    assert item["recorded_at"] == {"S": "2026-11-23T09:00:00.123456Z"}
    assert item["expires_at"] == {"N": str(int(at.timestamp()) + 30 * 86400)}
    assert "caller_arn" not in item  # empty: GSI keys must not be empty strings
    assert "access_key_id" not in item  # sparse by-access-key index
    assert item["duration"] == {"N": "900"}
    assert item["latency_ms"] == {"N": "1.235"}
    assert len(item["user_agent"]["S"]) == 1024


def test_fingerprints():
    assert token_fingerprint("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    keyed = token_fingerprint("abc", b"key")
    assert keyed == "hmac-sha256:" + hmac.new(b"key", b"abc", hashlib.sha256).hexdigest()
    assert "abc" not in keyed


def test_write_is_conditional_and_fails_closed(aws_backend):
    log = AuditLog(AUDIT_TABLE, lambda: aws_backend.dynamodb, retention_days=1)
    record = AuditRecord(request_id="audit-unit-1", route="GET /health", decision="allow")
    item = log.write(record)
    assert aws_backend.audit_for("audit-unit-1") == [item]
    with pytest.raises(AuditWriteError) as exc:
        log.write(record)
    assert "ConditionalCheckFailed" in str(exc.value)

    missing = AuditLog("no-such-table", lambda: aws_backend.dynamodb)
    with pytest.raises(AuditWriteError):
        missing.write(AuditRecord(request_id="audit-unit-2", route="GET /health", decision="allow"))


def test_table_name_required():
    with pytest.raises(ValueError):
        AuditLog("", lambda: None)  # type: ignore[arg-type,return-value]


def test_subclass_fields_are_written_too():
    """The exchange extends the record with its own fields; the item must carry them."""

    @dataclasses.dataclass
    class Extended(AuditRecord):
        issuer: str | None = None

    item = Extended(request_id="r", route="POST /exchange/x", decision="allow", issuer="gh").to_item(
        retention_days=1
    )
    assert item["issuer"] == {"S": "gh"}
    assert item["request_id"] == {"S": "r"}
