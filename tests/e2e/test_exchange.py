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
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from kernel_access import settings
from kernel_access.cli.main import main
from kernel_access.exchange.cutoff import CUTOFF_POLICY_NAME
from kernel_access.exchange.minting import REVOCATION_TAG_KEY
from kernel_access.revocation import RevocationStore

from tests.e2e.conftest import Emulator, Response, http

#: cdk.json's example: the `deployer` trust policy admits exactly this subject.
SUBJECT = "repo:example/partner-app:ref:refs/heads/main"


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
        # The deployment's own audience (cdk.json lists none), as the template's authorizer names it.
        "aud": issuer["audiences"][0],
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


def test_the_authorizer_admits_only_the_deployment_audience(kernel_emulator: Emulator) -> None:
    [audience] = _issuer(kernel_emulator)["audiences"]
    assert audience == "kernel-access:111111111111:us-east-1:exchange"
    shared = _exchange(
        kernel_emulator, _token(kernel_emulator, aud="sts.amazonaws.com"), {"target": "deployer"}
    )
    assert shared.status == 401


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def operator(kernel_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The operator's shell for `kernel-access exchange revoke` against the emulator; afterwards the
    revocations and the cut-off are lifted again (the emulator is shared by the session)."""
    environment = _exchange_environment(kernel_emulator)
    for name, value in kernel_emulator.kernel_admin().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", kernel_emulator.moto)
    monkeypatch.setenv("AWS_DEFAULT_REGION", kernel_emulator.region)
    for name in (
        settings.ISSUED_TOKENS_TABLE_NAME,
        settings.REVOCATION_TABLE_NAME,
        settings.AUDIT_TABLE_NAME,
    ):
        monkeypatch.setenv(name, environment[name])
    yield environment
    dynamodb = kernel_emulator.client("dynamodb")
    store = RevocationStore(environment[settings.REVOCATION_TABLE_NAME], lambda: dynamodb)
    for revocation in store.list():
        if revocation.subject.startswith(("caller#oidc:", "token#")):
            store.unrevoke(revocation.subject)
    iam = kernel_emulator.client("iam")
    if CUTOFF_POLICY_NAME in iam.list_role_policies(RoleName="kernel-deployer")["PolicyNames"]:
        iam.delete_role_policy(RoleName="kernel-deployer", PolicyName=CUTOFF_POLICY_NAME)


def test_revoke_refuses_the_subject_and_token_and_cuts_off_issued_sessions(
    kernel_emulator: Emulator, operator: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    token = _token(kernel_emulator)
    granted = _exchange(kernel_emulator, token, {"target": "deployer", "requested_ttl": 900})
    assert granted.status == 200, granted.body
    issued = _sha256(granted.json()["credentials"]["SessionToken"])
    issued_table = operator[settings.ISSUED_TOKENS_TABLE_NAME]
    [record] = [i for i in kernel_emulator.scan(issued_table) if i["fingerprint"]["S"] == issued]
    # The session carries the presented token's fingerprint (the local STS keeps no session tags,
    # so the issued-token record that the exchange wrote from the same value is what shows it).
    assert record["presented_token_fingerprint"]["S"] == _sha256(token)

    # A presented OIDC token that leaked before it was exchanged: refused.
    leaked = _token(kernel_emulator)
    assert main(["exchange", "revoke", "--oidc-token", _sha256(leaked), "--reason", "e2e: JWT in a log"]) == 0
    refused = _exchange(kernel_emulator, leaked, {"target": "deployer"})
    assert (refused.status, refused.json()["error_code"]) == (403, "SESSION_REVOKED")

    # The subject: refused from now on, and its issued session denied on the target role.
    assert (
        main(
            ["exchange", "revoke", "--issuer", "github", "--subject", SUBJECT, "--reason", "e2e: compromised"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"revoked {issued}" in out
    assert "role kernel-deployer: KernelAccessExchangeRevocations denies" in out
    refused = _exchange(kernel_emulator, _token(kernel_emulator), {"target": "deployer"})
    assert (refused.status, refused.json()["error_code"]) == (403, "SESSION_REVOKED")
    assert _audit(kernel_emulator, refused.json()["request_id"])["error_code"]["S"] == "SESSION_REVOKED"

    document = kernel_emulator.client("iam").get_role_policy(
        RoleName="kernel-deployer", PolicyName=CUTOFF_POLICY_NAME
    )["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    [statement] = document["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert _sha256(token) in statement["Condition"]["StringEquals"][f"aws:PrincipalTag/{REVOCATION_TAG_KEY}"]
