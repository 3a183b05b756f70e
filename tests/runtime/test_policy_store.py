"""PolicyStore against moto SSM with an injected clock: 30 s cache, last good policy within the
staleness bound, POLICY_LOAD_FAILED past it, and an invalid document counted as a failed load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SSMProvider
from kernel_access.contract import ErrorCode
from kernel_access.policy import PolicyStore, PolicyUnavailable
from moto import mock_aws

from tests.runtime.test_policy_parser import example_document

NAME = "/kernel-access/policy"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """Wraps the real Powertools provider to count the SSM fetches the store makes."""

    def __init__(self, inner: SSMProvider) -> None:
        self.inner = inner
        self.fetches = 0

    def get(self, name: str, max_age: int | None = None, *, force_fetch: bool = False) -> Any:
        self.fetches += 1
        return self.inner.get(name, max_age=max_age, force_fetch=force_fetch)


def document(version: str) -> str:
    doc = example_document()
    doc["version"] = version
    return json.dumps(doc)


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ssm", region_name="us-east-1")
        client.put_parameter(Name=NAME, Value=document("v1"), Type="String")
        yield client


def put(ssm: Any, value: str) -> None:
    ssm.put_parameter(Name=NAME, Value=value, Type="String", Overwrite=True)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(ssm: Any) -> CountingProvider:
    return CountingProvider(SSMProvider(boto3_client=ssm))


@pytest.fixture
def store(provider: CountingProvider, clock: Clock) -> PolicyStore:
    return PolicyStore(NAME, provider=provider, clock=clock)


def test_loads_and_caches_for_30_seconds(
    store: PolicyStore, ssm: Any, clock: Clock, provider: CountingProvider
) -> None:
    loaded = store.get()
    assert loaded.version == "v1"
    assert loaded.policy.version == "v1"
    assert loaded.loaded_at == 1000.0
    put(ssm, document("v2"))
    clock.now += 29.9
    assert store.get().version == "v1"
    assert provider.fetches == 1
    clock.now += 0.1
    assert store.get().version == "v2"
    assert provider.fetches == 2


def test_last_good_policy_serves_within_staleness(
    store: PolicyStore, ssm: Any, clock: Clock, provider: CountingProvider
) -> None:
    store.get()
    ssm.delete_parameter(Name=NAME)
    clock.now += 31
    assert store.get().version == "v1"
    status = store.status()
    assert status.available
    assert status.version == "v1"
    assert status.age_seconds == 31
    assert status.last_error is not None
    assert "GetParameterError" in status.last_error
    clock.now = 1300.0  # exactly max_staleness after the last success
    assert store.get().version == "v1"


def test_policy_load_failed_past_staleness(store: PolicyStore, ssm: Any, clock: Clock) -> None:
    store.get()
    ssm.delete_parameter(Name=NAME)
    clock.now += 300.5
    with pytest.raises(PolicyUnavailable) as info:
        store.get()
    assert info.value.error_code is ErrorCode.POLICY_LOAD_FAILED
    assert info.value.error_code.status == 503
    assert NAME in str(info.value)
    assert not store.status().available


def test_invalid_document_is_a_failed_load_never_served(store: PolicyStore, ssm: Any, clock: Clock) -> None:
    store.get()
    broken = example_document()
    broken["version"] = "v2-broken"
    broken["rules"].append({"id": "open-everything", "effect": "allow", "unknown": True})
    put(ssm, json.dumps(broken))
    clock.now += 30
    assert store.get().version == "v1"
    assert "invalid policy document" in (store.status().last_error or "")
    clock.now += 271
    with pytest.raises(PolicyUnavailable, match="invalid policy document"):
        store.get()
    put(ssm, "{not json")
    clock.now += 30
    with pytest.raises(PolicyUnavailable):
        store.get()


def test_recovers_when_the_parameter_is_fixed(store: PolicyStore, ssm: Any, clock: Clock) -> None:
    store.get()
    put(ssm, "[]")
    clock.now += 400
    with pytest.raises(PolicyUnavailable):
        store.get()
    put(ssm, document("v3"))
    clock.now += 5
    loaded = store.get()
    assert loaded.version == "v3"
    assert store.status().last_error is None


def test_without_any_good_policy_every_call_is_refused(ssm: Any, clock: Clock) -> None:
    ssm.delete_parameter(Name=NAME)
    store = PolicyStore(NAME, provider=CountingProvider(SSMProvider(boto3_client=ssm)), clock=clock)
    with pytest.raises(PolicyUnavailable):
        store.get()
    status = store.status()
    assert (status.version, status.age_seconds, status.available) == (None, None, False)


def test_failures_are_retried_with_backoff_not_on_every_call(
    store: PolicyStore, ssm: Any, clock: Clock, provider: CountingProvider
) -> None:
    store.get()
    ssm.delete_parameter(Name=NAME)
    clock.now += 30
    store.get()
    assert provider.fetches == 2
    for _ in range(10):
        clock.now += 0.4
        store.get()  # within retry_seconds (5 s): served from the last good policy, no SSM call
    assert provider.fetches == 2
    clock.now += 1
    store.get()
    assert provider.fetches == 3


def test_custom_staleness(ssm: Any, clock: Clock) -> None:
    store = PolicyStore(
        NAME, max_staleness=60, cache_seconds=10, provider=SSMProvider(boto3_client=ssm), clock=clock
    )
    store.get()
    ssm.delete_parameter(Name=NAME)
    clock.now += 60
    assert store.get().version == "v1"
    clock.now += 10
    with pytest.raises(PolicyUnavailable):
        store.get()


def test_non_string_parameter_value_is_a_failed_load(clock: Clock) -> None:
    class DictProvider:
        def get(self, name: str, max_age: int | None = None, *, force_fetch: bool = False) -> Any:
            return json.loads(document("v1"))

    store = PolicyStore(NAME, provider=DictProvider(), clock=clock)
    with pytest.raises(PolicyUnavailable, match="TypeError"):
        store.get()


def test_default_provider_reads_ssm(ssm: Any, clock: Clock) -> None:
    store = PolicyStore(NAME, clock=clock)
    assert store.get().version == "v1"


@pytest.mark.parametrize("kwargs", [{"max_staleness": -1}, {"cache_seconds": -1}])
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PolicyStore(NAME, **kwargs)
    with pytest.raises(ValueError):
        PolicyStore("")
