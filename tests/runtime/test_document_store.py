"""The document store's S3 fetch: conditional on the last good document's ETag, a 304 keeps the
parsed document, an object over the size limit is refused unread, every other error is a failed
load (never an allow)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kernel_access import contract
from kernel_access.document_store import (
    DocumentStore,
    DocumentTooLarge,
    DocumentUnavailable,
    Fetched,
    s3_fetcher,
)
from moto import mock_aws

from tests.runtime.conftest import CONFIG_BUCKET, create_config_bucket

BUCKET = CONFIG_BUCKET
KEY = "doc.json"
#: The size limit in these tests (the real one, 5 MiB, patched smaller to keep them fast).
LIMIT = 64


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = create_config_bucket()
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


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(contract, "MAX_DOCUMENT_BYTES", LIMIT)
    return LIMIT


class SpyBody:
    """A GetObject body recording how much was asked of it and whether it was closed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[int | None] = []
        self.closed = False

    def read(self, amt: int | None = None) -> bytes:
        self.reads.append(amt)
        return self.data if amt is None else self.data[:amt]

    def close(self) -> None:
        self.closed = True


class SpyS3:
    """The real (moto) S3 client, with each response's body replaced by a :class:`SpyBody`;
    ``content_length`` overrides what the response declares (``None``: removed)."""

    def __init__(self, inner: Any, **override: int | None) -> None:
        self.inner = inner
        self.override = override
        self.bodies: list[SpyBody] = []

    def get_object(self, **kwargs: Any) -> Any:
        response = dict(self.inner.get_object(**kwargs))
        self.bodies.append(SpyBody(response["Body"].read()))
        response["Body"] = self.bodies[-1]
        if "content_length" in self.override:
            if self.override["content_length"] is None:
                del response["ContentLength"]
            else:
                response["ContentLength"] = self.override["content_length"]
        return response


def test_the_runtime_limit_is_5_mib() -> None:
    assert contract.MAX_DOCUMENT_BYTES == 5 * 1024 * 1024


def test_an_object_over_the_limit_is_refused_before_its_body_is_read(s3: Any, small_limit: int) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * (small_limit + 1))
    spy = SpyS3(s3)
    refusal = f"is {small_limit + 1} bytes, over .* limit of {small_limit} bytes"
    with pytest.raises(DocumentTooLarge, match=refusal):
        s3_fetcher(BUCKET, KEY, lambda: spy)(None)
    (body,) = spy.bodies
    assert body.reads == []  # refused on ContentLength alone
    assert body.closed


def test_an_object_of_exactly_the_limit_is_accepted(s3: Any, small_limit: int) -> None:
    etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * small_limit)["ETag"]
    spy = SpyS3(s3)
    assert s3_fetcher(BUCKET, KEY, lambda: spy)(None) == Fetched(b"x" * small_limit, etag)
    assert spy.bodies[0].reads == [small_limit + 1]
    assert spy.bodies[0].closed


@pytest.mark.parametrize("declared", [None, 10], ids=["no-length", "lying-length"])
def test_a_body_longer_than_declared_is_read_no_further_than_the_limit_plus_one(
    s3: Any, small_limit: int, declared: int | None
) -> None:
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * (100 * small_limit))
    spy = SpyS3(s3, content_length=declared)
    with pytest.raises(DocumentTooLarge, match=f"more than {small_limit} bytes"):
        s3_fetcher(BUCKET, KEY, lambda: spy)(None)
    (body,) = spy.bodies
    assert body.reads == [small_limit + 1]
    assert body.closed


def test_an_oversized_version_is_a_failed_load_never_parsed(s3: Any, small_limit: int) -> None:
    """An over-limit version uploaded out of band: the last good document keeps serving within the
    staleness bound, the oversized one is never handed to the parser (it would parse), and past the
    bound the store refuses, saying why."""
    now = [0.0]
    parsed: list[bytes] = []

    def parse(raw: str | bytes) -> bytes:
        parsed.append(bytes(raw, "utf-8") if isinstance(raw, str) else raw)
        return parsed[-1]

    good = b'{"v": 1}'
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=good)
    store: DocumentStore[bytes] = DocumentStore(
        "doc",
        s3_fetcher(BUCKET, KEY, lambda: s3),
        parse,
        max_staleness=60,
        cache_seconds=30,
        retry_seconds=5,
        clock=lambda: now[0],
    )
    assert store.get().document == good
    oversized = b'{"v": 2}' + b" " * small_limit  # valid JSON, one good parse away from serving
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=oversized)
    now[0] = 30
    assert store.get().document == good
    now[0] = 60
    assert store.get().document == good
    expected = (
        f"DocumentTooLarge: the object is {len(oversized)} bytes, "
        f"over the document size limit of {small_limit} bytes"
    )
    assert store.status().last_error == expected
    assert parsed == [good]
    now[0] = 61
    with pytest.raises(DocumentUnavailable) as info:
        store.get()
    assert info.value.cause == expected
    assert parsed == [good]
