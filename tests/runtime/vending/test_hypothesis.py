"""Generated events against every route (hypothesis): no undocumented 5xx, no credential for a
caller the policy does not allow, every response valid JSON with an error_code or the success shape.

At least 1,000 examples per route by default; ``KERNEL_ACCESS_HYPOTHESIS_EXAMPLES=N`` runs more.
The moto state and the service are built once per module (rate limit raised out of the way) so
the examples stay fast.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.contract import ErrorCode
from kernel_access.handlers import vending

from tests.runtime.conftest import (
    ACME_ARN,
    KERNEL_ACCOUNT,
    PAYMENTS_ARN,
    STRANGER_ARN,
    CodeArtifactStub,
    FakeLambdaContext,
    http_event,
)

EXAMPLES = max(1000, int(os.environ.get("KERNEL_ACCESS_HYPOTHESIS_EXAMPLES", "1000")))
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    derandomize=False,
)
#: 5xx codes a healthy backend may still produce by contract (never INTERNAL_ERROR here).
DOCUMENTED_5XX = {ErrorCode.UPSTREAM_UNAVAILABLE.value, ErrorCode.POLICY_LOAD_FAILED.value}
CREDENTIAL_KEYS = {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
TOKEN_KEYS = {"authorizationToken", "expiration"}

#: Oracle for the test policy (conftest.POLICY), written independently of the engine.
ALLOWED_ROLES = {
    "payments": {"kernel-reader": 3600, "kernel-deployer": 1800, "kernel-narrow": 3600},
    "acme-analytics": {"kernel-reader": 3600},
}
#: (role, session-name account) -> partner: the in-org role for payments' account, acme's own role
#: for acme's account; only sessions of the kernel account count.
PARTNER_OF = {
    ("kernel-access", "222222222222"): "payments",
    ("kernel-access-external-acme-analytics", "333333333333"): "acme-analytics",
}
WRONG_ROLE_ACME_ARN = f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/333333333333.etl"
_SESSION_ARN = re.compile(
    r"^arn:aws:sts::([0-9]{12}):assumed-role/([\w+=,.@-]{1,64})/([\w+=,.@-]{2,64})$", re.ASCII
)


def oracle_partner(user_arn: object) -> str | None:
    if not isinstance(user_arn, str):
        return None
    match = _SESSION_ARN.match(user_arn)
    if not match:
        return None
    account, role, session = match.groups()
    head, dot, _ = session.partition(".")
    return PARTNER_OF.get((role, head)) if dot and account == KERNEL_ACCOUNT else None


@pytest.fixture(scope="module")
def service(aws_backend):
    from kernel_access.vending.config import VendingConfig
    from kernel_access.vending.service import VendingService

    from tests.runtime.conftest import vending_environment

    aws_backend.reset_mutable_state()
    config = VendingConfig.from_env(
        vending_environment(
            KERNEL_ACCESS_RATE_LIMIT_REQUESTS="1000000000",
            KERNEL_ACCESS_RATE_LIMIT_SESSION_REQUESTS="1000000000",
        )
    )
    built = VendingService(config)
    built.tokens._codeartifact_client = CodeArtifactStub()
    vending.reset_for_tests(built)
    yield built
    vending.reset_for_tests(None)


# ------------------------------------------------------------------------------- strategies

sts_chars = st.sampled_from("abcXYZ019_+=,.@-")
session_names = st.one_of(
    st.sampled_from(
        [
            "222222222222.ci",
            "333333333333.etl",
            "444444444444.x",
            "222222222222",
            ".222222222222",
            "payments.ci",
        ]
    ),
    st.builds(
        lambda p, rest: f"{p}.{rest}",
        st.sampled_from(["222222222222", "333333333333", "22222222222", "payments"]),
        st.text(sts_chars, min_size=1, max_size=50),
    ),
    st.text(sts_chars, min_size=2, max_size=64),
)
role_names = st.sampled_from(
    [
        "kernel-access",
        "kernel-access-external",
        "kernel-access-external-acme-analytics",
        "kernel-access-external-payments",
        "kernel-reader",
        "x",
    ]
)
session_arns = st.builds(
    lambda account, role, session: f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
    st.sampled_from([KERNEL_ACCOUNT, "222222222222"]),
    role_names,
    session_names,
)
odd_arns = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda s: f"arn:aws:iam::{KERNEL_ACCOUNT}:user/{s}", st.text(sts_chars, min_size=1, max_size=300)
    ),
    st.builds(
        lambda s: f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/222222222222.{s}",
        st.text(max_size=40),
    ),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30))
well_formed_iam = st.fixed_dictionaries(
    {
        "iam": st.fixed_dictionaries(
            {
                "userArn": st.one_of(
                    st.sampled_from([PAYMENTS_ARN, ACME_ARN, STRANGER_ARN, WRONG_ROLE_ACME_ARN]), session_arns
                ),
                "accountId": st.just(KERNEL_ACCOUNT),
                "principalOrgId": st.sampled_from(["o-a1b2c3d4e5", "o-zzzzzzzzzz"]),
                "accessKey": st.just("ASIAEXAMPLEEXAMPLE01"),
            }
        )
    }
)
fuzzy_authorizers = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "iam": st.fixed_dictionaries(
                {"userArn": st.one_of(session_arns, odd_arns, json_scalars)},
                optional={
                    "accountId": st.one_of(st.just(KERNEL_ACCOUNT), json_scalars),
                    "principalOrgId": st.one_of(st.just("o-a1b2c3d4e5"), json_scalars),
                    "accessKey": json_scalars,
                },
            )
        }
    ),
    st.dictionaries(st.text(max_size=10), json_scalars, max_size=3),
)
#: Mostly well-formed callers (so allow paths are exercised), a quarter fuzzed.
authorizers = st.integers(0, 9).flatmap(lambda i: well_formed_iam if i < 7 else fuzzy_authorizers)
good_durations = st.sampled_from(["900", "1800", "3600", "2700"])
durations = st.one_of(
    good_durations,
    good_durations,
    st.sampled_from(["3601", "899", "0", "", "abc", "1e3", "-1", " 900"]),
    st.integers(-10, 100_000).map(str),
    st.text(max_size=8),
)
known_roles = st.sampled_from(
    ["kernel-reader", "kernel-deployer", "kernel-narrow", "kernel-ghost", "kernel-admin"]
)
role_values = st.one_of(known_roles, known_roles, st.text(max_size=70))
known_domains = st.sampled_from(["kernel", "kernel", "other", "Kernel", "k"])
domain_values = st.one_of(known_domains, known_domains, st.text(max_size=60))
headers = st.dictionaries(
    st.sampled_from(["x-caller-arn", "x-amzn-iam-userarn", "x-forwarded-for", "authorization", "user-agent"]),
    st.one_of(session_arns, st.text(max_size=40)),
    max_size=3,
)


def raw_query_or_pairs(known: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, Any]]:
    pairs = st.lists(
        st.one_of(
            *[st.tuples(st.just(name), values) for name, values in known.items()],
            st.tuples(st.text(max_size=12), st.text(max_size=12)),
        ),
        max_size=4,
    )
    valid = st.fixed_dictionaries(
        {name: values for name, values in known.items() if name in ("role", "domain")},
        optional={"duration": durations},
    )
    choices: list[st.SearchStrategy[dict[str, Any]]] = [
        valid.map(lambda d: {"query": list(d.items())}),
        pairs.map(lambda p: {"query": p}),
        st.text(max_size=300).map(lambda raw: {"raw_query": raw}),
        st.just({"raw_query": "role=kernel-reader&" + "x" * 2000}),
    ]
    # Mostly well-formed queries (allow paths), the rest fuzzed.
    return st.integers(0, 9).flatmap(lambda i: choices[0 if i < 6 else 1 if i < 8 else 2 if i < 9 else 3])


def events(path: str, known: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda q, authorizer, ip, ua, request_id, hdrs: http_event(
            path,
            q.get("query"),
            raw_query=q.get("raw_query"),
            authorizer=authorizer if authorizer is not None else {},
            source_ip=ip,
            user_agent=ua,
            # API Gateway never repeats a request id, and the audit table records each id once: a
            # repeated one is refused (fail closed), so examples keep their ids apart.
            request_id=None if request_id is None else f"{request_id}{uuid.uuid4().hex[:8]}",
            headers=hdrs,
        ),
        raw_query_or_pairs(known),
        authorizers,
        st.sampled_from(["203.0.113.7", "2001:db8::1", "", "not-an-ip"]),
        st.text(max_size=100),
        st.one_of(st.none(), st.text(min_size=1, max_size=40)),
        headers,
    )


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = vending.handler(event, FakeLambdaContext())
    return response["statusCode"], response.get("headers", {}), json.loads(response["body"])


def check_common(status: int, headers: dict[str, str], body: Any, success_keys: set[str]) -> None:
    assert isinstance(body, dict)
    if status == 200:
        assert set(body) == success_keys, body
        return
    assert body["error_code"] in {c.value for c in ErrorCode}, body
    assert ErrorCode(body["error_code"]).status == status
    assert isinstance(body["error"], str)
    assert isinstance(body["request_id"], str)
    assert not (set(body) & (CREDENTIAL_KEYS | TOKEN_KEYS))
    if status >= 500:
        assert body["error_code"] in DOCUMENTED_5XX, body
    if status == 429:
        assert headers["Retry-After"] == str(body["retry_after_seconds"])


def caller_of(event: dict[str, Any]) -> Any:
    authorizer = event["requestContext"].get("authorizer") or {}
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    return iam.get("userArn") if isinstance(iam, dict) else None


@HYPOTHESIS
@given(event=events("/credentials", {"role": role_values, "duration": durations}))
def test_credentials_route(service, event):
    status, headers, body = invoke(event)
    check_common(status, headers, body, CREDENTIAL_KEYS)
    if status == 200:
        partner = oracle_partner(caller_of(event))
        assert partner is not None, "credential for a caller that is no partner"
        params = dict(event.get("queryStringParameters") or {})
        role = params["role"]
        assert role in ALLOWED_ROLES[partner], "credential for a role the policy does not allow"
        if "duration" in params:
            assert int(params["duration"]) <= ALLOWED_ROLES[partner][role]


@HYPOTHESIS
@given(
    event=events(
        "/codeartifact/token",
        {"domain": domain_values, "duration": durations, "repository": st.text(max_size=20)},
    )
)
def test_codeartifact_token_route(service, event):
    status, headers, body = invoke(event)
    check_common(status, headers, body, TOKEN_KEYS)
    if status == 200:
        partner = oracle_partner(caller_of(event))
        assert partner in ("payments", "acme-analytics"), "token for a caller that is no partner"
        assert (event.get("queryStringParameters") or {}).get("domain") == "kernel"
        # A reader (acme) must never receive a token minted for a publisher.
        expected_access = "publish" if partner == "payments" else "read"
        assert service.tokens._entries, "a token was served without a cache entry"
        served = [
            entry.current()
            for key, entry in service.tokens._entries.items()
            if key[2] == expected_access and key[4] == partner
        ]
        assert any(m is not None and m.value.token == body["authorizationToken"] for m in served)


@HYPOTHESIS
@given(event=events("/health", {}))
def test_health_route(service, event):
    status, headers, body = invoke(event)
    assert isinstance(body, dict)
    if status == 200:
        assert body["status"] == "ok"
        assert set(body) == {"status", "version", "policy", "breakers", "request_id"}
        assert oracle_partner(caller_of(event)) is not None or isinstance(caller_of(event), str)
    else:
        check_common(status, headers, body, set())


def test_hypothesis_runs_leaked_nothing(service, secrets_scan):
    """Runs after the generated examples in this module: scan everything they logged and wrote."""
    status, _, _body = invoke(http_event("/credentials", {"role": "kernel-reader"}))
    assert status == 200
    assert secrets_scan.secrets
    assert not secrets_scan.leaks(), "a generated example leaked a secret"
