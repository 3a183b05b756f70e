"""The audit archive: every change of the audit table, kept in S3 under Object Lock.

The audit table's TTL removes records after the retention period, and DynamoDB cannot stop a
``PutItem`` without a condition from overwriting a record. The table's stream (``NEW_AND_OLD_IMAGES``)
sees both, so this module writes every stream batch to a bucket whose objects are locked in
compliance mode: inserts (the records themselves), modifications (with the image that was
overwritten) and removals (TTL expiry, marked ``removed_by_ttl``, with the record it removed).

Why DynamoDB Streams and a small function of ours rather than Kinesis Data Streams and Firehose:
the stream costs nothing to read from Lambda, keeps per-item order, and a ``PutObject`` we make
ourselves carries the SHA-256 checksum that S3 requires for a write into an Object Lock bucket
(``ChecksumAlgorithm``); Firehose would add a Kinesis stream and a delivery stream per kernel,
and its objects are batches we cannot checksum or name ourselves.

One object per batch, JSON Lines, key ``records/<yyyy>/<mm>/<dd>/<hh>/<first event id>.jsonl``
(time of the first record's change, UTC). A retried batch writes the same key again; with
versioning on, that is a second locked version and never a replacement. Any failure raises, so
Lambda retries the batch (the event source mapping bisects it and finally sends it to its
on-failure queue): nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

KEY_PREFIX: Final = "records/"
#: How DynamoDB Streams marks a deletion made by TTL rather than by a principal.
_TTL_IDENTITY: Final = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


class S3Writer(Protocol):
    """What the archive needs of a boto3 S3 client (no S3 type stubs are installed)."""

    def put_object(self, **kwargs: Any) -> Any: ...


class ArchiveError(Exception):
    """The batch could not be archived; the caller must not report it as processed."""


def archive_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The archived form of one stream record: what changed, when, and both images as DynamoDB sent
    them (typed attribute values, so an item can be put back exactly)."""
    if record.get("eventSource") != "aws:dynamodb":
        raise ArchiveError(f"not a DynamoDB stream record: {record.get('eventSource')!r}")
    change = record.get("dynamodb")
    if not isinstance(change, Mapping):
        raise ArchiveError("stream record without its 'dynamodb' section")
    return {
        "event_id": record.get("eventID"),
        "event_name": record.get("eventName"),
        "removed_by_ttl": record.get("userIdentity") == _TTL_IDENTITY,
        "changed_at": change.get("ApproximateCreationDateTime"),
        "sequence_number": change.get("SequenceNumber"),
        "keys": change.get("Keys"),
        "new_image": change.get("NewImage"),
        "old_image": change.get("OldImage"),
    }


def object_key(first: Mapping[str, Any]) -> str:
    """Where a batch is stored: by the hour of its first change, named by its first event id."""
    changed_at = first.get("changed_at")
    at = datetime.fromtimestamp(float(changed_at), UTC) if changed_at is not None else datetime.now(UTC)
    event_id = str(first.get("event_id") or "unknown").replace("/", "_")
    return f"{KEY_PREFIX}{at:%Y/%m/%d/%H}/{event_id}.jsonl"


def archive_stream_records(records: Sequence[Mapping[str, Any]], *, bucket: str, s3_client: S3Writer) -> str:
    """Write ``records`` (one event source mapping batch) as one locked object; return its key.

    ``ChecksumAlgorithm="SHA256"`` makes the SDK send ``x-amz-checksum-sha256``: S3 refuses a write
    into a bucket with default Object Lock retention without a checksum or ``Content-MD5``, and it
    stores the checksum with the object, so a reader can verify the body it gets back.
    """
    if not records:
        raise ArchiveError("empty batch")
    lines = [archive_line(record) for record in records]
    body = "".join(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n" for line in lines)
    key = object_key(lines[0])
    try:
        s3_client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body.encode("utf-8"),
            ContentType="application/x-ndjson",
            ChecksumAlgorithm="SHA256",
        )
    except Exception as exc:  # any failure: the batch is not archived and must be retried
        raise ArchiveError(f"archive write failed: {type(exc).__name__}") from exc
    return key
