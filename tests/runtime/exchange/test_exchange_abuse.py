"""Abuse of the exchange from outside: shared audiences, floods of refusals, retried refused tokens.

Each test here was written against a reproduced weakness and failed before the fix:

- an issuer configured with an audience every AWS-bound workflow requests (``sts.amazonaws.com``)
  let any workflow anywhere reach the Lambda and let a token meant for another relying party be
  replayed here;
- refusals were parsed and audited before the rate limit, one audit item per refusal;
- a refused token's ``jti`` was never spent, so it could be retried forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kernel_access.exchange import ExchangeConfigError, parse_exchange_config
from kernel_access.exchange.config import default_audience, is_shared_audience

from tests.runtime.exchange.conftest import AUDIENCE, Harness, example_config, make_event

PROJECT = Path(__file__).resolve().parents[3]

# --- audience ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    ["sts.amazonaws.com", "sts.amazonaws.com.cn", "api://AzureADTokenExchange", "https://github.com/acme"],
)
def test_shared_audiences_are_refused_with_the_field_named(audience: str) -> None:
    config = example_config()
    config["issuers"]["github"]["audiences"] = ["kernel-access", audience]
    with pytest.raises(ExchangeConfigError) as info:
        parse_exchange_config(config)
    [issue] = info.value.errors
    assert issue.path == "issuers.github.audiences[1]"
    assert "shared" in issue.message
    assert is_shared_audience(audience)


def test_deployment_audience_is_unique_and_not_shared() -> None:
    one = default_audience("111111111111", "us-east-1")
    assert one == "kernel-access:111111111111:us-east-1:exchange"
    assert (
        default_audience("111111111111", "us-east-1", "-dev")
        == "kernel-access:111111111111:us-east-1:exchange-dev"
    )
    assert default_audience("222222222222", "us-east-1") != one
    assert default_audience("111111111111", "eu-west-1") != one
    assert not is_shared_audience(one)


def test_example_configuration_defaults_to_the_deployment_audience() -> None:
    from kernel_access_cdk.config import load_config

    raw = json.loads((PROJECT / "cdk.json").read_text())["context"]["kernel-access"]
    assert "sts.amazonaws.com" not in json.dumps(raw["exchange"])
    config = load_config(raw)
    assert config.exchange is not None
    assert "audiences" not in config.exchange.document["issuers"]["github"]
    expected = default_audience(config.kernel_account, config.region, config.name_suffix)
    assert config.exchange.default_audience == expected


# --- rate limit before everything, refusals aggregated ------------------------------------------


def _refusals(harness: Harness) -> list[dict[str, Any]]:
    return [item for item in harness.audit_items() if item["decision"]["S"] != "allow"]


def test_rate_limit_comes_before_parsing_and_before_any_audit_write(
    build_harness: Callable[..., Harness],
) -> None:
    harness = build_harness(rate_limit=2)
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    codes = []
    for _ in range(6):
        _, body, _ = harness.call(make_event(token, claims, raw_body="{not json"))
        codes.append(body["error_code"])
    # The first two are parsed (and refused as malformed); from the third on the subject is over
    # its limit and the body is never looked at.
    assert codes == ["INVALID_REQUEST"] * 2 + ["RATE_LIMITED"] * 4
    # Sampled, not one item per refusal: INVALID_REQUEST #1, #2; RATE_LIMITED #1, #2, #4.
    counts = sorted((item["error_code"]["S"], int(item["refusal_count"]["N"])) for item in _refusals(harness))
    assert counts == [
        ("INVALID_REQUEST", 1),
        ("INVALID_REQUEST", 2),
        ("RATE_LIMITED", 1),
        ("RATE_LIMITED", 2),
        ("RATE_LIMITED", 4),
    ]


def test_a_missing_subject_is_rate_limited_in_one_shared_bucket(
    build_harness: Callable[..., Harness],
) -> None:
    harness = build_harness(rate_limit=1)
    first = harness.exchange({"target": "deploy"}, sub=None)
    second = harness.exchange({"target": "deploy"}, sub=None)
    assert (first[1]["error_code"], second[1]["error_code"]) == ("INVALID_TOKEN", "RATE_LIMITED")


def test_repeated_refusals_are_counted_and_sampled_grants_always_audited(harness: Harness) -> None:
    for _ in range(10):
        _, body = harness.exchange({"target": "nope"})
        assert body["error_code"] == "TRUST_POLICY_NOT_FOUND"
    for _ in range(3):
        assert harness.exchange({"target": "deploy"})[0] == 200
    refusals = _refusals(harness)
    assert sorted(int(item["refusal_count"]["N"]) for item in refusals) == [1, 2, 4, 8]
    assert {item["caller_arn"]["S"] for item in refusals} == {"oidc:github:repo:acme/app:ref:refs/heads/main"}
    grants = [item for item in harness.audit_items() if item["decision"]["S"] == "allow"]
    assert len(grants) == 3
    assert all("refusal_count" not in item for item in grants)


def test_refusals_are_all_audited_when_they_cannot_be_counted(harness: Harness) -> None:
    assert harness.service.rate_limiter is not None
    harness.service.rate_limiter.table_name = "no-such-table"
    for _ in range(3):
        status, body = harness.exchange({"target": "deploy"})
        assert (status, body["error_code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert len(_refusals(harness)) == 3


# --- a refused token is spent ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "overrides", "code"),
    [
        ({"target": "nope"}, {}, "TRUST_POLICY_NOT_FOUND"),
        ({"target": "deploy", "policy_name": "no-such-policy"}, {}, "POLICY_NOT_FOUND"),
        ({"target": "deploy", "unknown": 1}, {}, "INVALID_REQUEST"),
        ({"target": "deploy"}, {"repository_owner": "evil"}, "ISSUER_NOT_ALLOWED"),
    ],
)
def test_a_refused_token_cannot_be_retried(
    harness: Harness, body: dict[str, Any], overrides: dict[str, Any], code: str
) -> None:
    claims = harness.tokens.claims(**overrides)
    token = harness.tokens.sign(claims)
    _, refused, _ = harness.call(make_event(token, claims, body))
    assert refused["error_code"] == code
    replay_keys = [i["jti"]["S"] for i in harness.dynamodb.scan(TableName="replay")["Items"]]
    assert replay_keys == [f"{claims['iss']}#{claims['jti']}"]
    # The same token with a body that would have been granted: refused as a replay (a token the
    # central layer refuses is refused by it again first).
    _, again, _ = harness.call(make_event(token, claims, {"target": "deploy"}))
    expected = code if code == "ISSUER_NOT_ALLOWED" else "INVALID_TOKEN"
    assert again["error_code"] == expected
    assert harness.sts_calls == []


def test_refusals_we_caused_do_not_spend_the_token(build_harness: Callable[..., Harness]) -> None:
    """Rate limiting and an unavailable configuration are not the token's fault: it may retry."""
    harness = build_harness(rate_limit=1)
    assert harness.exchange({"target": "nope"})[1]["error_code"] == "TRUST_POLICY_NOT_FOUND"
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    assert harness.call(make_event(token, claims, {"target": "deploy"}))[1]["error_code"] == "RATE_LIMITED"
    assert harness.dynamodb.scan(TableName="replay")["Count"] == 1  # only the first token's
    harness.clock[0] = harness.clock[0].replace(minute=1)
    assert harness.service.rate_limiter is not None
    harness.service.rate_limiter._clock = harness.clock[0].timestamp  # next window
    status, body, _ = harness.call(make_event(token, claims, {"target": "deploy"}))
    assert status == 200, body


def test_presented_audience_constant_is_not_shared() -> None:
    assert not is_shared_audience(AUDIENCE)
