"""Lambda handler of the audit archive: the audit table's stream -> the Object Lock bucket.

Thin on purpose (the work is :func:`kernel_access.audit_archive.archive_stream_records`). It raises
on any failure so that the event source mapping retries the batch instead of moving past it.
Stream records hold no secret (audit records never do), but they are not logged either: the
archive, not the log, is their record.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from kernel_access import settings
from kernel_access.audit_archive import ArchiveError, archive_stream_records
from kernel_access.aws_clients import default_clients

logger = Logger(service="kernel-access-audit-archive")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001 - Lambda's signature
    bucket = os.environ.get(settings.AUDIT_ARCHIVE_BUCKET, "")
    if not bucket:
        raise ArchiveError(f"{settings.AUDIT_ARCHIVE_BUCKET} is not set")
    records = event.get("Records")
    if not isinstance(records, list):
        raise ArchiveError("event without Records")
    key = archive_stream_records(records, bucket=bucket, s3_client=default_clients().client("s3"))
    logger.info("archived audit stream records", extra={"count": len(records), "bucket": bucket, "key": key})
    return {"archived": len(records), "key": key}
