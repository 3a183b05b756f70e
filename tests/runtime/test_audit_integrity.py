"""Audit integrity: one record per request id, and the locked archive of the table's stream.

The table's schema is the synthesized one (``tests.runtime.conftest.create_tables`` mirrors it and
``tests/infra/test_hardening.py`` pins it in the template); the archive writer is the real code the
archive Lambda runs, against a moto bucket with Object Lock in compliance mode.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from kernel_access.audit import AuditLog, AuditRecord, AuditWriteError
from kernel_access.audit_archive import ArchiveError, archive_stream_records
from kernel_access.handlers import audit_archive as archive_handler
from moto import mock_aws

from tests.runtime.conftest import AUDIT_TABLE, REGION

pytestmark = pytest.mark.usefixtures("secrets_scan")

BUCKET = "kernel-access-audit-archive-test"


def test_a_request_id_is_recorded_once_whatever_its_timestamp(aws_backend: Any) -> None:
    """A replayed request id fails the write even when the replay carries a later timestamp."""
    log = AuditLog(AUDIT_TABLE, lambda: aws_backend.dynamodb, retention_days=1)
    first = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    log.write(
        AuditRecord(request_id="replayed-1", route="GET /credentials", decision="deny", recorded_at=first)
    )
    replay = AuditRecord(
        request_id="replayed-1",
        route="GET /credentials",
        decision="allow",
        recorded_at=first + timedelta(seconds=1),
    )
    with pytest.raises(AuditWriteError, match="ConditionalCheckFailed"):
        log.write(replay)
    [kept] = aws_backend.audit_for("replayed-1")
    assert kept["decision"] == {"S": "deny"}


def test_a_replayed_request_id_fails_in_a_transaction_too(aws_backend: Any) -> None:
    """Operator changes record through ``transact_put``: the same uniqueness holds there."""
    log = AuditLog(AUDIT_TABLE, lambda: aws_backend.dynamodb, retention_days=1)
    log.write(AuditRecord(request_id="replayed-2", route="CLI unrevoke", decision="allow"))
    later = AuditRecord(
        request_id="replayed-2",
        route="CLI unrevoke",
        decision="allow",
        recorded_at=datetime.now(UTC) + timedelta(seconds=5),
    )
    with pytest.raises(aws_backend.dynamodb.exceptions.TransactionCanceledException):
        aws_backend.dynamodb.transact_write_items(TransactItems=[log.transact_put(later)])
    assert len(aws_backend.audit_for("replayed-2")) == 1


# ----------------------------------------------------------------------------------- the archive


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
            },
        )
        yield client


def _image(request_id: str, decision: str = "allow") -> dict[str, Any]:
    return {
        "request_id": {"S": request_id},
        "recorded_at": {"S": "2026-11-23T09:00:00.000000Z"},
        "route": {"S": "GET /credentials"},
        "decision": {"S": decision},
        "access_key_id": {"S": "ASIAEXAMPLEKEY000001"},
        "expires_at": {"N": "1795424400"},
    }


def stream_record(
    event_name: str,
    request_id: str,
    *,
    sequence: str,
    ttl: bool = False,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One record as a DynamoDB Streams event source mapping delivers it (NEW_AND_OLD_IMAGES)."""
    record: dict[str, Any] = {
        "eventID": f"event-{sequence}",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:111111111111:table/audit/stream/2026-11-23",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795424400.0,
            "Keys": {"request_id": {"S": request_id}},
            "SequenceNumber": sequence,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    if new is not None:
        record["dynamodb"]["NewImage"] = new
    if old is not None:
        record["dynamodb"]["OldImage"] = old
    if ttl:
        # How DynamoDB marks a deletion made by TTL (and not by a principal).
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def _objects(s3: Any, prefix: str) -> list[dict[str, Any]]:
    return list(s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def _lines(s3: Any, key: str) -> tuple[bytes, list[dict[str, Any]]]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body, [json.loads(line) for line in body.decode().splitlines()]


def test_archive_writer_puts_one_locked_object_with_a_sha256_checksum(s3: Any) -> None:
    records = [
        stream_record("INSERT", "arch-1", sequence="100", new=_image("arch-1")),
        stream_record("INSERT", "arch-2", sequence="101", new=_image("arch-2", "deny")),
    ]
    key = archive_stream_records(records, bucket=BUCKET, s3_client=s3)
    assert key.startswith("records/2026/11/23/")
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    body, lines = _lines(s3, key)
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert [(line["event_name"], line["keys"], line["new_image"]["decision"]) for line in lines] == [
        ("INSERT", {"request_id": {"S": "arch-1"}}, {"S": "allow"}),
        ("INSERT", {"request_id": {"S": "arch-2"}}, {"S": "deny"}),
    ]
    assert all(line["removed_by_ttl"] is False for line in lines)
    # The lock: the object cannot be deleted while retained.
    version = head["VersionId"]
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)


def test_ttl_removal_is_archived_with_the_record_it_removed(s3: Any) -> None:
    removed = stream_record("REMOVE", "arch-ttl", sequence="200", ttl=True, old=_image("arch-ttl"))
    key = archive_stream_records([removed], bucket=BUCKET, s3_client=s3)
    _, [line] = _lines(s3, key)
    assert line["event_name"] == "REMOVE"
    assert line["removed_by_ttl"] is True
    assert line["old_image"]["request_id"] == {"S": "arch-ttl"}
    assert line["old_image"]["access_key_id"] == {"S": "ASIAEXAMPLEKEY000001"}


def test_a_modification_keeps_the_overwritten_record(s3: Any) -> None:
    """Tampering that slips past the table policy (a PutItem overwrite) leaves both images."""
    changed = stream_record(
        "MODIFY", "arch-mod", sequence="300", old=_image("arch-mod", "deny"), new=_image("arch-mod", "allow")
    )
    key = archive_stream_records([changed], bucket=BUCKET, s3_client=s3)
    _, [line] = _lines(s3, key)
    assert (line["old_image"]["decision"], line["new_image"]["decision"]) == ({"S": "deny"}, {"S": "allow"})
    assert line["removed_by_ttl"] is False


def test_the_same_batch_twice_keeps_both_versions(s3: Any) -> None:
    """A retried batch writes the same key again: a new locked version, never a replacement."""
    records = [stream_record("INSERT", "arch-retry", sequence="400", new=_image("arch-retry"))]
    key = archive_stream_records(records, bucket=BUCKET, s3_client=s3)
    assert archive_stream_records(records, bucket=BUCKET, s3_client=s3) == key
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert len(versions) == 2


def test_an_empty_or_foreign_batch_is_refused(s3: Any) -> None:
    with pytest.raises(ArchiveError):
        archive_stream_records([], bucket=BUCKET, s3_client=s3)
    foreign = stream_record("INSERT", "x", sequence="1", new=_image("x"))
    foreign["eventSource"] = "aws:kinesis"
    with pytest.raises(ArchiveError):
        archive_stream_records([foreign], bucket=BUCKET, s3_client=s3)


def test_handler_archives_the_batch_and_raises_when_the_bucket_refuses(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNEL_ACCESS_AUDIT_ARCHIVE_BUCKET", BUCKET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    before = len(_objects(s3, "records/"))
    event = {"Records": [stream_record("INSERT", "arch-h", sequence="500", new=_image("arch-h"))]}
    result = archive_handler.handler(event, None)
    assert result["archived"] == 1
    assert len(_objects(s3, "records/")) == before + 1
    # A failure must reach Lambda (so the batch is retried), never be swallowed.
    monkeypatch.setenv("KERNEL_ACCESS_AUDIT_ARCHIVE_BUCKET", "no-such-bucket")
    with pytest.raises(ArchiveError):
        archive_handler.handler(event, None)
