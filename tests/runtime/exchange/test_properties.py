"""hypothesis over claims and trust policies: never a credential for a token the policies do not allow.

The oracle below is written independently of the implementation (plain ``re.fullmatch`` and
``fnmatch``): whenever the service grants, some trust policy of the target must admit the claims
under the oracle, the central rules must hold, and every granted action must be inside the
policy's permissions and the issuer's maximum.
"""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.errors import KernelAccessError
from kernel_access.exchange.config import parse_exchange_config
from kernel_access.exchange.context import ExchangeRequestContext
from kernel_access.exchange.service import ExchangeService
from kernel_access.exchange.store import ExchangeConfigStore

from tests.runtime.exchange.conftest import fixed
from tests.runtime.exchange.fakes import (
    MemoryAudit,
    MemoryIssuedTokens,
    MemoryReplayGuard,
    MemoryRevocations,
    RecordingMinter,
)

ISSUER = "https://token.actions.githubusercontent.com"
OTHER_ISSUER = "https://evil.example.com"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

segments = st.sampled_from(["acme", "app", "main", "evil", "acme-evil", "a/b", "x"])
# Biased towards a few common subjects so that a good share of the examples are granted.
subjects = st.one_of(
    st.sampled_from(["repo:acme/app", "repo:acme/main"]),
    st.lists(segments, min_size=1, max_size=3).map(lambda parts: "repo:" + "/".join(parts)),
)
subject_patterns = st.sampled_from(
    ["repo:acme/[^/]+", "repo:acme/.*", "repo:acme", "repo:acme/app", "repo:(acme|app)/main", "repo:[^/]*"]
)
claim_values = st.one_of(
    st.sampled_from(["main", "refs/heads/main", "true", "x/y", ""]), st.booleans(), st.integers(0, 3)
)
claim_patterns = st.sampled_from(["main", "refs/heads/.*", "true", "[^/]+", ".*"])
actions = st.sampled_from(
    ["s3:GetObject", "s3:Get*", "s3:PutObject", "s3:*", "sqs:SendMessage", "sqs:*", "s3:*Object"]
)


@st.composite
def trust_policy(draw: Any, index: int) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "name": f"p{index}",
        "permissions": draw(st.lists(actions, min_size=1, max_size=3, unique=True)),
    }
    if draw(st.booleans()):
        policy["issuer"] = draw(st.sampled_from([ISSUER, ISSUER, OTHER_ISSUER]))
    else:
        policy["issuer_pattern"] = draw(
            st.sampled_from(
                [
                    "https://token\\.actions\\.githubusercontent\\.com",
                    "https://token.actions.githubusercontent.com",  # unescaped dots still fullmatch
                    "https://.*\\.example\\.com",
                ]
            )
        )
    if draw(st.booleans()):
        policy["subject"] = draw(subjects)
    else:
        policy["subject_pattern"] = draw(subject_patterns)
    patterns = draw(
        st.dictionaries(st.sampled_from(["ref", "environment", "ref_protected"]), claim_patterns, max_size=1)
    )
    if patterns and draw(st.booleans()):
        policy["claim_pattern"] = patterns
    return policy


@st.composite
def scenario(draw: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    count = draw(st.integers(1, 3))
    policies = [draw(trust_policy(i)) for i in range(count)]
    maximum = draw(st.lists(actions, max_size=5, unique=True))
    required = (
        draw(st.dictionaries(st.sampled_from(["ref", "environment"]), claim_patterns, max_size=1))
        if draw(st.integers(0, 3)) == 0
        else {}
    )
    config = {
        "version": "1",
        "issuers": {
            "github": {
                "issuer": ISSUER,
                "audiences": ["aud"],
                "required_claims": required,
                "max_permissions": maximum,
            }
        },
        "trust_policies": {"deploy": policies},
        "targets": {"deploy": {"type": "aws_role", "role_arn": "arn:aws:iam::111111111111:role/deploy"}},
    }
    claims: dict[str, Any] = {
        "iss": draw(st.sampled_from([ISSUER, ISSUER, ISSUER, OTHER_ISSUER])),
        # Half the time the subject is the first policy's own exact subject (so grants are common).
        "sub": policies[0].get("subject", "repo:acme/app") if draw(st.booleans()) else draw(subjects),
        "aud": "aud",
        "jti": uuid.uuid4().hex,
        "iat": int(NOW.timestamp()) - 10,
        "exp": int(NOW.timestamp()) + 300,
    }
    for name, value in draw(
        st.dictionaries(
            st.sampled_from(["ref", "environment", "ref_protected"]), claim_values, min_size=2, max_size=3
        )
    ).items():
        claims[name] = value
    request: dict[str, Any] = {"target": "deploy"}
    if draw(st.integers(0, 2)) == 0:
        request["requested_permissions"] = draw(st.lists(actions, min_size=1, max_size=3, unique=True))
    if draw(st.integers(0, 3)) == 0:
        request["policy_name"] = f"p{draw(st.integers(0, 3))}"
    return config, claims, request


def text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else None


def full(pattern: str, value: str | None) -> bool:
    return value is not None and re.fullmatch(pattern, value) is not None


def oracle_admits(policy: dict[str, Any], claims: dict[str, Any]) -> bool:
    if "issuer" in policy and policy["issuer"] != claims["iss"]:
        return False
    if "issuer_pattern" in policy and not full(policy["issuer_pattern"], claims["iss"]):
        return False
    if "subject" in policy and policy["subject"] != claims["sub"]:
        return False
    if "subject_pattern" in policy and not full(policy["subject_pattern"], claims["sub"]):
        return False
    return all(full(p, text(claims.get(c))) for c, p in policy.get("claim_pattern", {}).items())


def allowed_by(patterns: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


CONCRETE = ["s3:GetObject", "s3:GetBucketAcl", "s3:PutObject", "sqs:SendMessage", "sqs:ReceiveMessage"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_never_a_credential_the_policies_do_not_allow(
    case: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
) -> None:
    config, claims, request = case
    parse_exchange_config(config)  # the generated configuration is valid
    minter = RecordingMinter()
    service = ExchangeService(
        config_store=ExchangeConfigStore(fixed(config)),
        replay_guard=MemoryReplayGuard(),  # type: ignore[arg-type]
        issued_tokens=MemoryIssuedTokens(),  # type: ignore[arg-type]
        revocations=MemoryRevocations(),  # type: ignore[arg-type]
        audit=MemoryAudit(),  # type: ignore[arg-type]
        minter=minter,  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    context = ExchangeRequestContext(
        request_id="r", issuer_name="github", claims=claims, presented_token="t", body=json.dumps(request)
    )
    try:
        response = service.exchange(context)
    except KernelAccessError:
        assert minter.calls == []
        return
    [call] = minter.calls
    policies = {p["name"]: p for p in config["trust_policies"]["deploy"]}
    matched = policies[response["matched_policy"]]
    assert claims["iss"] == ISSUER
    assert oracle_admits(matched, claims)
    if "policy_name" in request:
        assert matched["name"] == request["policy_name"]
    issuer = config["issuers"]["github"]
    for claim, pattern in issuer["required_claims"].items():
        assert full(pattern, text(claims.get(claim)))
    assert call["actions"], "never an empty credential"
    for action in CONCRETE:
        if allowed_by(list(call["actions"]), action):
            assert allowed_by(matched["permissions"], action)
            assert allowed_by(issuer["max_permissions"], action)
            if "requested_permissions" in request:
                assert allowed_by(request["requested_permissions"], action)
