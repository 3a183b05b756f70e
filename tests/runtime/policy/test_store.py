"""PolicyStore against a versioned moto S3 bucket with an injected clock: 30 s cache, conditional
refresh (If-None-Match: an unchanged object is a 304 that keeps the parsed policy), last good
policy within the staleness bound, POLICY_LOAD_FAILED past it, and an invalid or oversized document
counted as a failed load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_access import aws_clients, contract
from kernel_access.contract import ErrorCode
from kernel_access.policy import PolicyStore, PolicyUnavailable
from moto import mock_aws

from tests.runtime.conftest import CONFIG_BUCKET, create_config_bucket
from tests.runtime.policy.test_parser import example_document

BUCKET = CONFIG_BUCKET
KEY = "vending/policy.json"
LOCATION = f"s3://{BUCKET}/{KEY}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingS3:
    """The real (moto) S3 client, recording every GetObject the store makes and how it ended."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str | None, int]] = []  # (If-None-Match sent, HTTP status)

    @property
    def fetches(self) -> int:
        return len(self.calls)

    def get_object(self, **kwargs: Any) -> Any:
        try:
            response = self.inner.get_object(**kwargs)
        except Exception as error:
            status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            self.calls.append((kwargs.get("IfNoneMatch"), status))
            raise
        self.calls.append((kwargs.get("IfNoneMatch"), 200))
        return response


def document(version: str) -> str:
    doc = example_document()
    doc["version"] = version
    return json.dumps(doc)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = create_config_bucket()
        put(client, document("v1"))
        yield client


def put(s3: Any, value: str) -> str:
    """A new version of the policy object; its ETag."""
    etag: str = s3.put_object(Bucket=BUCKET, Key=KEY, Body=value.encode())["ETag"]
    return etag


def delete(s3: Any) -> None:
    """Remove the policy (in a versioned bucket: a delete marker hides every version)."""
    s3.delete_object(Bucket=BUCKET, Key=KEY)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(s3: Any) -> CountingS3:
    return CountingS3(s3)


@pytest.fixture
def store(client: CountingS3, clock: Clock) -> PolicyStore:
    return PolicyStore(BUCKET, KEY, s3_client=lambda: client, clock=clock)


def test_loads_and_caches_for_30_seconds(
    store: PolicyStore, s3: Any, clock: Clock, client: CountingS3
) -> None:
    loaded = store.get()
    assert loaded.version == "v1"
    assert loaded.policy.version == "v1"
    assert loaded.loaded_at == 1000.0
    put(s3, document("v2"))
    clock.now += 29.9
    assert store.get().version == "v1"
    assert client.fetches == 1
    clock.now += 0.1
    assert store.get().version == "v2"
    assert client.fetches == 2


def test_an_unchanged_object_is_a_304_that_keeps_the_parsed_policy(
    store: PolicyStore, s3: Any, clock: Clock, client: CountingS3
) -> None:
    etag = s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]
    first = store.get()
    clock.now += 30
    second = store.get()
    assert client.calls == [(None, 200), (etag, 304)]
    assert second.policy is first.policy  # not downloaded nor parsed again
    assert second.loaded_at == 1030.0  # a 304 confirms the document: its staleness starts again
    clock.now += 299  # 329 s after the first load, 299 s after the confirmation
    assert store.get().version == "v1"
    assert store.status().last_error is None


def test_last_good_policy_serves_within_staleness(store: PolicyStore, s3: Any, clock: Clock) -> None:
    store.get()
    delete(s3)
    clock.now += 31
    assert store.get().version == "v1"
    status = store.status()
    assert status.available
    assert status.version == "v1"
    assert status.age_seconds == 31
    assert status.last_error is not None
    assert "NoSuchKey" in status.last_error
    clock.now = 1300.0  # exactly max_staleness after the last success
    assert store.get().version == "v1"


def test_policy_load_failed_past_staleness(store: PolicyStore, s3: Any, clock: Clock) -> None:
    store.get()
    delete(s3)
    clock.now += 300.5
    with pytest.raises(PolicyUnavailable) as info:
        store.get()
    assert info.value.error_code is ErrorCode.POLICY_LOAD_FAILED
    assert info.value.error_code.status == 503
    assert LOCATION in str(info.value)
    assert not store.status().available


def test_invalid_document_is_a_failed_load_never_served(
    store: PolicyStore, s3: Any, clock: Clock, client: CountingS3
) -> None:
    good_etag = s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]
    store.get()
    broken = example_document()
    broken["version"] = "v2-broken"
    broken["rules"].append({"id": "open-everything", "effect": "allow", "unknown": True})
    put(s3, json.dumps(broken))
    clock.now += 30
    assert store.get().version == "v1"
    assert "invalid policy document" in (store.status().last_error or "")
    # Every retry asks with the ETag of the last *good* document, so the invalid version is fetched
    # (and refused) again rather than confirmed by a 304.
    clock.now += 5
    store.get()
    assert client.calls[1:] == [(good_etag, 200), (good_etag, 200)]
    clock.now += 266
    with pytest.raises(PolicyUnavailable, match="invalid policy document"):
        store.get()
    put(s3, "{not json")
    clock.now += 30
    with pytest.raises(PolicyUnavailable):
        store.get()


def test_an_oversized_document_is_a_failed_load_never_parsed(
    store: PolicyStore, s3: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version over the size limit uploaded out of band (``aws s3 cp``) is refused like an invalid
    one; a document of exactly the limit is accepted."""
    limit = len(document("v1").encode())
    monkeypatch.setattr(contract, "MAX_DOCUMENT_BYTES", limit)  # the v1 document is exactly the limit
    assert store.get().version == "v1"
    oversized = document("v2") + " "  # a valid policy: parsed, it would serve as v2
    put(s3, oversized)
    clock.now += 30
    assert store.get().version == "v1"
    status = store.status()
    assert status.available
    assert status.last_error == (
        f"DocumentTooLarge: the object is {limit + 1} bytes, over the document size limit of {limit} bytes"
    )
    clock.now += 271  # 301 s after the last good load
    with pytest.raises(PolicyUnavailable, match=f"DocumentTooLarge: .* {limit + 1} bytes") as info:
        store.get()
    assert info.value.error_code is ErrorCode.POLICY_LOAD_FAILED
    assert not store.status().available
    put(s3, document("v3"))  # exactly the limit again
    clock.now += 5
    assert store.get().version == "v3"
    assert store.status().last_error is None


def test_rollback_is_restoring_the_previous_version(store: PolicyStore, s3: Any, clock: Clock) -> None:
    store.get()
    put(s3, document("v2"))
    clock.now += 30
    assert store.get().version == "v2"
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]
    previous = next(v["VersionId"] for v in versions if not v["IsLatest"])
    s3.copy_object(Bucket=BUCKET, Key=KEY, CopySource={"Bucket": BUCKET, "Key": KEY, "VersionId": previous})
    clock.now += 30
    assert store.get().version == "v1"


def test_recovers_when_the_object_is_fixed(store: PolicyStore, s3: Any, clock: Clock) -> None:
    store.get()
    put(s3, "[]")
    clock.now += 400
    with pytest.raises(PolicyUnavailable):
        store.get()
    put(s3, document("v3"))
    clock.now += 5
    loaded = store.get()
    assert loaded.version == "v3"
    assert store.status().last_error is None


def test_without_any_good_policy_every_call_is_refused(s3: Any, clock: Clock) -> None:
    delete(s3)
    store = PolicyStore(BUCKET, KEY, s3_client=lambda: s3, clock=clock)
    with pytest.raises(PolicyUnavailable, match="NoSuchKey"):
        store.get()
    status = store.status()
    assert (status.version, status.age_seconds, status.available) == (None, None, False)


def test_a_missing_bucket_is_a_failed_load(s3: Any, clock: Clock) -> None:
    store = PolicyStore("no-such-config-bucket", KEY, s3_client=lambda: s3, clock=clock)
    with pytest.raises(PolicyUnavailable, match="NoSuchBucket"):
        store.get()


def test_failures_are_retried_with_backoff_not_on_every_call(
    store: PolicyStore, s3: Any, clock: Clock, client: CountingS3
) -> None:
    store.get()
    delete(s3)
    clock.now += 30
    store.get()
    assert client.fetches == 2
    for _ in range(10):
        clock.now += 0.4
        store.get()  # within retry_seconds (5 s): served from the last good policy, no S3 call
    assert client.fetches == 2
    clock.now += 1
    store.get()
    assert client.fetches == 3


def test_custom_staleness(s3: Any, clock: Clock) -> None:
    store = PolicyStore(BUCKET, KEY, max_staleness=60, cache_seconds=10, s3_client=lambda: s3, clock=clock)
    store.get()
    delete(s3)
    clock.now += 60
    assert store.get().version == "v1"
    clock.now += 10
    with pytest.raises(PolicyUnavailable):
        store.get()


def test_default_client_reads_s3(s3: Any, clock: Clock) -> None:
    aws_clients.reset_for_tests()  # the process-wide clients must be built inside this mock
    try:
        store = PolicyStore(BUCKET, KEY, clock=clock)
        assert store.get().version == "v1"
    finally:
        aws_clients.reset_for_tests()


@pytest.mark.parametrize("kwargs", [{"max_staleness": -1}, {"cache_seconds": -1}])
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PolicyStore(BUCKET, KEY, **kwargs)
    with pytest.raises(ValueError):
        PolicyStore("", KEY)
    with pytest.raises(ValueError):
        PolicyStore(BUCKET, "")
