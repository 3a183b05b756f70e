"""Loading the configuration from its S3 object (cache, conditional refresh, last-good staleness,
fail closed) and env wiring."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from kernel_access import contract, settings
from kernel_access.contract import ErrorCode
from kernel_access.document_store import Fetched, s3_fetcher
from kernel_access.exchange.refusal import ExchangeRefused
from kernel_access.exchange.store import ExchangeConfigStore
from kernel_access.exchange.wiring import service_from_env

from tests.runtime.exchange.conftest import CONFIG_BUCKET, CONFIG_KEY, example_config, wiring_environment


def _bucket() -> Any:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=CONFIG_BUCKET)
    s3.put_bucket_versioning(Bucket=CONFIG_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3


def _put(s3: Any, document: Any) -> None:
    body = document if isinstance(document, str) else json.dumps(document)
    s3.put_object(Bucket=CONFIG_BUCKET, Key=CONFIG_KEY, Body=body.encode())


def test_s3_fetch_cache_and_staleness(aws: None) -> None:
    s3 = _bucket()
    _put(s3, example_config())
    now = [0.0]
    calls: list[tuple[str | None, bool]] = []  # (ETag sent, body received)
    fetch = s3_fetcher(CONFIG_BUCKET, CONFIG_KEY, lambda: s3)

    def counting(etag: str | None) -> Fetched | None:
        fetched = fetch(etag)
        calls.append((etag, fetched is not None))
        return fetched

    store = ExchangeConfigStore(counting, cache_seconds=30, max_staleness=300, clock=lambda: now[0])
    first = store.get()
    assert first.version == "2026-11-23.1"
    now[0] = 10
    assert store.get() is first
    assert len(calls) == 1  # cached

    # Unchanged after the cache period: a conditional GET answered 304, the parsed config kept.
    now[0] = 30
    assert store.get() is first
    etag = s3.head_object(Bucket=CONFIG_BUCKET, Key=CONFIG_KEY)["ETag"]
    assert calls[1] == (etag, False)

    # A new valid version is picked up after the cache period.
    changed = example_config()
    changed["version"] = "2"
    _put(s3, changed)
    now[0] = 61
    assert store.get().version == "2"
    assert calls[2] == (etag, True)

    # An invalid document keeps the last good one only within max_staleness.
    _put(s3, '{"version": "3", "issuers": 5}')
    now[0] = 100
    assert store.get().version == "2"
    now[0] = 61 + 301
    with pytest.raises(ExchangeRefused) as info:
        store.get()
    assert info.value.code is ErrorCode.POLICY_LOAD_FAILED

    # Deleted object: same.
    s3.delete_object(Bucket=CONFIG_BUCKET, Key=CONFIG_KEY)
    with pytest.raises(ExchangeRefused):
        store.get()


def test_an_oversized_configuration_is_a_failed_load(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the size limit (uploaded out of band): refused unparsed, the last good configuration
    within max_staleness, then POLICY_LOAD_FAILED; exactly the limit is accepted."""
    s3 = _bucket()
    good = json.dumps(example_config())
    monkeypatch.setattr(contract, "MAX_DOCUMENT_BYTES", len(good.encode()))
    _put(s3, good)
    now = [0.0]
    store = ExchangeConfigStore(
        s3_fetcher(CONFIG_BUCKET, CONFIG_KEY, lambda: s3), max_staleness=300, clock=lambda: now[0]
    )
    assert store.get().version == "2026-11-23.1"
    changed = example_config()
    changed["version"] = "2026-11-23.2"  # same length: parsed, it would serve
    _put(s3, json.dumps(changed) + " ")
    now[0] = 30
    assert store.get().version == "2026-11-23.1"
    now[0] = 301
    with pytest.raises(ExchangeRefused) as info:
        store.get()
    assert info.value.code is ErrorCode.POLICY_LOAD_FAILED
    assert "DocumentTooLarge" in info.value.reason


def test_no_configuration_ever_loaded_refuses_immediately(aws: None) -> None:
    s3 = _bucket()
    store = ExchangeConfigStore(s3_fetcher(CONFIG_BUCKET, "exchange/missing.json", lambda: s3))
    with pytest.raises(ExchangeRefused) as info:
        store.get()
    assert info.value.code is ErrorCode.POLICY_LOAD_FAILED


def test_wiring_requires_every_table_and_the_configuration_object() -> None:
    environ = wiring_environment(
        **{
            settings.RATE_LIMIT_REQUESTS: "7",
            settings.CODEARTIFACT_READER_ROLE_ARN: "arn:aws:iam::111111111111:role/r",
        }
    )
    service = service_from_env(environ)
    assert service.rate_limiter is not None
    assert service.rate_limiter.limit == 7
    assert service.minter.reader_role_arn == "arn:aws:iam::111111111111:role/r"
    assert service.minter.publisher_role_arn is None
    for name in (
        settings.CONFIG_BUCKET,
        settings.EXCHANGE_CONFIG_OBJECT_KEY,
        settings.REPLAY_TABLE_NAME,
        settings.ISSUED_TOKENS_TABLE_NAME,
        settings.AUDIT_TABLE_NAME,
        settings.RATE_LIMIT_TABLE_NAME,
        settings.REVOCATION_TABLE_NAME,
    ):
        partial = {k: v for k, v in environ.items() if k != name}
        with pytest.raises(RuntimeError, match=name):
            service_from_env(partial)


def test_an_outage_does_not_turn_every_request_into_an_s3_call() -> None:
    """During an S3 outage the store waits between attempts (a retry storm against a throttled
    API is what it exists to prevent) and serves the last good copy within max_staleness."""
    now = [0.0]
    calls = [0]
    healthy = [True]

    def fetch(_etag: str | None) -> Fetched:
        calls[0] += 1
        if not healthy[0]:
            raise RuntimeError("SlowDown")
        return Fetched(json.dumps(example_config()))

    store = ExchangeConfigStore(fetch, cache_seconds=30, max_staleness=300, clock=lambda: now[0])
    good = store.get()
    healthy[0] = False
    now[0] = 31.0
    for _ in range(50):  # fifty requests within the same second of the outage
        assert store.get() is good
    assert calls[0] == 2  # one initial load, one failed attempt; the rest wait for the backoff
    now[0] = 31.0 + 5.0
    assert store.get() is good
    assert calls[0] == 3  # the next attempt after the retry interval


def test_concurrent_requests_share_one_fetch() -> None:
    import threading

    calls = [0]
    gate = threading.Event()

    def fetch(_etag: str | None) -> Fetched:
        calls[0] += 1
        gate.wait(2)
        return Fetched(json.dumps(example_config()))

    store = ExchangeConfigStore(fetch, clock=lambda: 0.0)
    threads = [threading.Thread(target=store.get) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert calls[0] == 1


def test_exchange_clients_have_bounded_retries_and_timeouts() -> None:
    """The exchange builds its AWS clients with the same bounded factory as vending."""
    from kernel_access.aws_clients import CLIENT_RETRIES, CLIENT_TIMEOUT_SECONDS
    from kernel_access.exchange import wiring

    client = wiring._sts()
    config = client.meta.config
    assert config.connect_timeout == CLIENT_TIMEOUT_SECONDS
    assert config.read_timeout == CLIENT_TIMEOUT_SECONDS
    assert config.retries["total_max_attempts"] == CLIENT_RETRIES["total_max_attempts"]
