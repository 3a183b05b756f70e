"""The OIDC token exchange on the emulator running the real kernel stack (cdk.json's exchange section).

A token signed by the emulator's local key for the template's issuer goes through the emulator's
JWT authorizer (issuer and audiences read from the template's ``AWS::ApiGatewayV2::Authorizer``) to
the real exchange handler, which assumes the real target role on the local STS, writes the replay,
issued-tokens and audit tables, and refuses the same token the second time.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from kernel_access import settings

from tests.e2e.conftest import Emulator, Response, http

#: cdk.json's example: the `deployer` trust policy admits exactly this subject and audience.
SUBJECT = "repo:example/partner-app:ref:refs/heads/main"
AUDIENCE = "sts.amazonaws.com"


def _issuer(emulator: Emulator) -> dict[str, Any]:
    # The authorizer is named oidc-<issuer name> by the TokenExchange construct.
    issuer: dict[str, Any] = next(i for i in emulator.state["issuers"] if i["name"] == "oidc-github")
    return issuer


def _token(emulator: Emulator, **claims: object) -> str:
    issuer = _issuer(emulator)
    now = int(time.time())
    payload: dict[str, object] = {
        "iss": issuer["issuer"],
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}  # None: leave the claim out
    return jwt.encode(
        payload, issuer["private_key_pem"], algorithm="RS256", headers={"kid": issuer["key_id"]}
    )


def _exchange(emulator: Emulator, token: str, body: dict[str, Any]) -> Response:
    url = emulator.api("TokenExchangeApi") + "/exchange/github"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return http("POST", url, headers, json.dumps(body).encode())


def _exchange_environment(emulator: Emulator) -> dict[str, str]:
    environment: dict[str, str] = next(
        f["environment"]
        for f in emulator.state["functions"].values()
        if f["handler"] == "kernel_access.handlers.exchange.handler"
    )
    return environment


def _audit(emulator: Emulator, request_id: str) -> dict[str, Any]:
    table = _exchange_environment(emulator)[settings.AUDIT_TABLE_NAME]
    [item] = [i for i in emulator.scan(table) if i["request_id"]["S"] == request_id]
    return item


def test_exchange_grants_once_then_refuses_the_replay(kernel_emulator: Emulator) -> None:
    token = _token(kernel_emulator)
    response = _exchange(kernel_emulator, token, {"target": "deployer", "requested_ttl": 900})
    assert response.status == 200, response.body
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["matched_policy"] == "partner-app-main"
    assert body["permissions"] == ["cloudformation:Describe*", "cloudformation:Get*", "cloudformation:List*"]
    credentials = body["credentials"]

    # Real credentials of the kernel-deployer role on the local STS, named for the request.
    identity = kernel_emulator.client(
        "sts",
        {
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        },
    ).get_caller_identity()
    assert identity["Arn"].startswith("arn:aws:sts::111111111111:assumed-role/kernel-deployer/exchange.")

    # Audited (with fingerprints, never the tokens) and tracked by fingerprint.
    fingerprint = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    record = _audit(kernel_emulator, body["request_id"])
    assert record["caller_arn"]["S"] == f"oidc:github:{SUBJECT}"
    assert record["presented_token_fingerprint"]["S"] == fingerprint
    assert record["access_key_id"]["S"] == credentials["AccessKeyId"]
    flat = json.dumps(record)
    assert token not in flat
    assert credentials["SecretAccessKey"] not in flat
    assert credentials["SessionToken"] not in flat
    issued_table = _exchange_environment(kernel_emulator)[settings.ISSUED_TOKENS_TABLE_NAME]
    issued = {i["fingerprint"]["S"] for i in kernel_emulator.scan(issued_table)}
    assert record["issued_token_fingerprint"]["S"] in issued

    # The same token again: the authorizer still accepts it, the exchange does not.
    replay = _exchange(kernel_emulator, token, {"target": "deployer", "requested_ttl": 900})
    assert replay.status == 401, replay.body
    refusal = replay.json()
    assert refusal["error_code"] == "INVALID_TOKEN"
    assert "credentials" not in refusal
    assert _audit(kernel_emulator, refusal["request_id"])["error_code"]["S"] == "INVALID_TOKEN"


@pytest.mark.parametrize(
    ("claims", "body", "status", "error_code"),
    [
        pytest.param(
            {"sub": "repo:elsewhere/app:ref:refs/heads/main"},
            {"target": "deployer"},
            403,
            "ISSUER_NOT_ALLOWED",
            id="required-claim",
        ),
        pytest.param(
            {"event_name": "pull_request_target"},
            {"target": "deployer"},
            403,
            "ISSUER_NOT_ALLOWED",
            id="forbidden-claim",
        ),
        pytest.param(
            {"sub": "repo:example/other-app:ref:refs/heads/main"},
            {"target": "deployer"},
            403,
            "POLICY_NOT_FOUND",
            id="no-trust-policy-admits",
        ),
        pytest.param({}, {"target": "kernel-reader"}, 403, "TRUST_POLICY_NOT_FOUND", id="not-a-target"),
        pytest.param(
            {},
            {"target": "deployer", "requested_permissions": ["iam:PassRole"]},
            403,
            "POLICY_NOT_FOUND",
            id="empty-intersection",
        ),
        pytest.param({"jti": None}, {"target": "deployer"}, 401, "INVALID_TOKEN", id="no-jti"),
    ],
)
def test_exchange_refusals_through_the_emulator(
    kernel_emulator: Emulator, claims: dict[str, object], body: dict[str, Any], status: int, error_code: str
) -> None:
    response = _exchange(kernel_emulator, _token(kernel_emulator, **claims), body)
    assert response.status == status, response.body
    refusal = response.json()
    assert refusal["error_code"] == error_code
    assert "credentials" not in refusal
    assert "token" not in refusal
    assert _audit(kernel_emulator, refusal["request_id"])["error_code"]["S"] == error_code


def test_wrong_audience_never_reaches_the_exchange(kernel_emulator: Emulator) -> None:
    response = _exchange(kernel_emulator, _token(kernel_emulator, aud="someone-else"), {"target": "deployer"})
    assert response.status == 401
    assert response.json() == {"message": "Unauthorized"}
