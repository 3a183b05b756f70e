"""Loading the configuration from SSM (cache, last-good staleness, fail closed) and env wiring."""

from __future__ import annotations

import json

import boto3
import pytest
from kernel_access import settings
from kernel_access.contract import ErrorCode
from kernel_access.exchange.refusal import ExchangeRefused
from kernel_access.exchange.store import ExchangeConfigStore, ssm_fetcher
from kernel_access.exchange.wiring import service_from_env

from tests.exchange.conftest import PARAMETER, example_config


def test_ssm_fetch_cache_and_staleness(aws: None) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=PARAMETER, Value=json.dumps(example_config()), Type="String")
    now = [0.0]
    calls = [0]
    fetch = ssm_fetcher(PARAMETER, lambda: ssm)

    def counting() -> str:
        calls[0] += 1
        return fetch()

    store = ExchangeConfigStore(counting, cache_seconds=30, max_staleness=300, clock=lambda: now[0])
    first = store.get()
    assert first.version == "2026-11-23.1"
    now[0] = 10
    assert store.get() is first
    assert calls[0] == 1  # cached

    # A new valid version is picked up after the cache period.
    changed = example_config()
    changed["version"] = "2"
    ssm.put_parameter(Name=PARAMETER, Value=json.dumps(changed), Type="String", Overwrite=True)
    now[0] = 31
    assert store.get().version == "2"

    # An invalid document keeps the last good one only within max_staleness.
    ssm.put_parameter(Name=PARAMETER, Value='{"version": "3", "issuers": 5}', Type="String", Overwrite=True)
    now[0] = 100
    assert store.get().version == "2"
    now[0] = 31 + 301
    with pytest.raises(ExchangeRefused) as info:
        store.get()
    assert info.value.code is ErrorCode.POLICY_LOAD_FAILED

    # Deleted parameter: same.
    ssm.delete_parameter(Name=PARAMETER)
    with pytest.raises(ExchangeRefused):
        store.get()


def test_no_configuration_ever_loaded_refuses_immediately(aws: None) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    store = ExchangeConfigStore(ssm_fetcher("/missing", lambda: ssm))
    with pytest.raises(ExchangeRefused) as info:
        store.get()
    assert info.value.code is ErrorCode.POLICY_LOAD_FAILED


def test_wiring_requires_every_table_and_the_parameter() -> None:
    environ = {
        settings.EXCHANGE_POLICY_PARAMETER_NAME: PARAMETER,
        settings.REPLAY_TABLE_NAME: "replay",
        settings.ISSUED_TOKENS_TABLE_NAME: "issued",
        settings.AUDIT_TABLE_NAME: "audit",
        settings.RATE_LIMIT_TABLE_NAME: "rate",
        settings.REVOCATION_TABLE_NAME: "revocation",
        settings.RATE_LIMIT_REQUESTS: "7",
        settings.CODEARTIFACT_READER_ROLE_ARN: "arn:aws:iam::111111111111:role/r",
    }
    service = service_from_env(environ)
    assert service.rate_limiter is not None
    assert service.rate_limiter.limit == 7
    assert service.minter.reader_role_arn == "arn:aws:iam::111111111111:role/r"
    assert service.minter.publisher_role_arn is None
    for name in (
        settings.EXCHANGE_POLICY_PARAMETER_NAME,
        settings.REPLAY_TABLE_NAME,
        settings.ISSUED_TOKENS_TABLE_NAME,
        settings.AUDIT_TABLE_NAME,
        settings.RATE_LIMIT_TABLE_NAME,
        settings.REVOCATION_TABLE_NAME,
    ):
        partial = {k: v for k, v in environ.items() if k != name}
        with pytest.raises(RuntimeError, match=name):
            service_from_env(partial)
