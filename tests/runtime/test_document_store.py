"""The document store's S3 fetch: conditional on the last good document's ETag, a 304 keeps the
parsed document, every other error is a failed load (never an allow)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from kernel_access.document_store import DocumentStore, DocumentUnavailable, Fetched, s3_fetcher
from moto import mock_aws

BUCKET = "kernel-access-config"
KEY = "doc.json"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_fetch_is_conditional_only_with_an_etag(s3: Any) -> None:
    etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b'{"v": 1}')["ETag"]
    fetch = s3_fetcher(BUCKET, KEY, lambda: s3)
    first = fetch(None)
    assert first == Fetched(b'{"v": 1}', etag)
    assert fetch(etag) is None  # 304: not modified
    assert fetch('"0123456789abcdef0123456789abcdef"') == first  # another ETag: the body


def test_errors_other_than_not_modified_propagate(s3: Any) -> None:
    with pytest.raises(ClientError, match="NoSuchKey"):
        s3_fetcher(BUCKET, "missing.json", lambda: s3)(None)
    with pytest.raises(ClientError, match="NoSuchBucket"):
        s3_fetcher("no-such-bucket-here", KEY, lambda: s3)('"abc"')


def test_not_modified_without_a_loaded_document_is_a_failed_load() -> None:
    """A source answering 304 to a first load (it cannot: no ETag was sent) must not pass for a
    document: the store has nothing to serve and refuses."""
    store: DocumentStore[str] = DocumentStore("doc", lambda _etag: None, str, clock=lambda: 0.0)
    with pytest.raises(DocumentUnavailable, match="not modified"):
        store.get()


def test_the_etag_sent_is_the_last_good_documents_not_the_last_fetched() -> None:
    """After an invalid new version the refresh still asks with the good document's ETag, so the
    invalid version is fetched (and refused) again instead of being confirmed by a 304."""
    now = [0.0]
    sent: list[str | None] = []
    versions = [Fetched("good", '"good"'), *[Fetched("bad", '"bad"')] * 3]

    def fetch(etag: str | None) -> Fetched | None:
        sent.append(etag)
        current = versions.pop(0)
        return None if etag == current.etag else current

    def parse(raw: str | bytes) -> str:
        if raw != "good":
            raise ValueError("invalid document")
        return str(raw)

    store: DocumentStore[str] = DocumentStore(
        "doc", fetch, parse, max_staleness=60, cache_seconds=30, retry_seconds=5, clock=lambda: now[0]
    )
    assert store.get().document == "good"
    now[0] = 30
    assert store.get().document == "good"  # the failed refresh: last good within staleness
    now[0] = 35
    assert store.get().document == "good"
    assert sent == [None, '"good"', '"good"']
    now[0] = 61
    with pytest.raises(DocumentUnavailable, match="invalid document"):
        store.get()
    assert sent == [None, '"good"', '"good"', '"good"']
