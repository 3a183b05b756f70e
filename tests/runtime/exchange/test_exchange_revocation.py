"""Revocation takes effect: the exchange refuses revoked subjects and tokens, issued sessions are cut off.

Before the fix ``kernel-access exchange revoke`` only marked a record and printed a statement
nothing applied, and the exchange never read the revocation list. moto evaluates no IAM policy,
so the cut-off is shown by the deny statement on the target role and the tag on the session.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from kernel_access.cli.main import main
from kernel_access.exchange.cutoff import (
    CUTOFF_POLICY_NAME,
    MAX_CUTOFF_POLICY_CHARS,
    apply_cutoff,
    cutoff_policy,
    policy_text,
)
from kernel_access.exchange.minting import REVOCATION_TAG_KEY
from kernel_access.revocation import RevocationStore

from tests.runtime.exchange.conftest import (
    DEPLOY_ROLE,
    ISSUED_TABLE,
    NOW,
    REVOCATION_TABLE,
    Harness,
    create_role,
    make_event,
)

SUBJECT = "repo:acme/app:ref:refs/heads/main"
TAG = f"aws:PrincipalTag/{REVOCATION_TAG_KEY}"


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def grant(harness: Harness, **claims: Any) -> tuple[str, dict[str, Any]]:
    """One granted exchange: (the presented OIDC token, the response body)."""
    token_claims = harness.tokens.claims(**claims)
    token = harness.tokens.sign(token_claims)
    status, body, _ = harness.call(make_event(token, token_claims, {"target": "deploy"}))
    assert status == 200, body
    return token, body


def revoke(*args: str) -> int:
    return main(
        ["exchange", "revoke", *args, "--table", ISSUED_TABLE, "--revocation-table", REVOCATION_TABLE]
    )


def cutoff_values(iam: Any, role: str = "ci-deployer") -> list[str]:
    document = iam.get_role_policy(RoleName=role, PolicyName=CUTOFF_POLICY_NAME)["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    [statement] = document["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    values: list[str] = statement["Condition"]["StringEquals"][TAG]
    return values


@pytest.fixture
def iam(harness: Harness) -> Any:
    client = boto3.client("iam", region_name="us-east-1")
    create_role(client, "ci-deployer")  # (moto's account differs; the CLI uses the role name)
    return client


# --- the exchange reads the revocation list --------------------------------------------------------


def test_revoked_subject_is_refused(harness: Harness) -> None:
    RevocationStore(REVOCATION_TABLE, lambda: harness.dynamodb).revoke(
        f"caller#oidc:github:{SUBJECT}",
        reason="INC-1",
        revoked_by="arn:aws:sts::111111111111:assumed-role/ops/me",
    )
    claims = harness.tokens.claims()
    status, body, _ = harness.call(make_event(harness.tokens.sign(claims), claims, {"target": "deploy"}))
    assert (status, body["error_code"]) == (403, "SESSION_REVOKED")
    assert "subject is revoked" in body["error"]
    assert harness.sts_calls == []
    [record] = harness.audit_items()
    assert record["error_code"]["S"] == "SESSION_REVOKED"
    assert "INC-1" in record["reason"]["S"]
    # Another subject of the same issuer is unaffected.
    status, body = harness.exchange(
        {"target": "deploy", "policy_name": "any-branch-read"}, sub="repo:acme/app:ref:refs/heads/dev"
    )
    assert status == 200, body


def test_revoked_presented_token_is_refused(harness: Harness) -> None:
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    RevocationStore(REVOCATION_TABLE, lambda: harness.dynamodb).revoke(
        f"token#{sha256(token)}", reason="JWT in a log", revoked_by="ops"
    )
    status, body, _ = harness.call(make_event(token, claims, {"target": "deploy"}))
    assert (status, body["error_code"]) == (403, "SESSION_REVOKED")
    assert "token is revoked" in body["error"]
    assert harness.sts_calls == []
    # A fresh token of the same subject still works.
    assert harness.exchange({"target": "deploy"})[0] == 200


def test_unreadable_revocation_list_refuses(harness: Harness) -> None:
    harness.service.revocations.table_name = "no-such-table"
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert harness.sts_calls == []


def test_issued_session_carries_the_presented_token_fingerprint_as_a_tag(harness: Harness) -> None:
    token, body = grant(harness)
    tags = {tag["Key"]: tag["Value"] for tag in harness.sts_calls[-1]["Tags"]}
    assert tags[REVOCATION_TAG_KEY] == sha256(token)
    [issued] = harness.issued_items()
    assert issued["presented_token_fingerprint"]["S"] == sha256(token)
    assert issued["fingerprint"]["S"] == sha256(body["credentials"]["SessionToken"])


# --- the CLI revokes and cuts off ---------------------------------------------------------------------


def test_revoking_an_issued_token_denies_its_session_on_the_target_role(
    harness: Harness, iam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first, body = grant(harness)
    grant(harness)  # another session of the same subject: not denied
    issued = sha256(body["credentials"]["SessionToken"])
    assert revoke(issued, "--reason", "INC-2: printed in a CI log") == 0
    out = capsys.readouterr().out
    assert f"revoked {issued}" in out
    assert "ci-deployer" in out
    assert cutoff_values(iam) == [sha256(first)]  # only that session, not the other one
    assert harness.service.issued_tokens.is_revoked(issued)


def test_revoking_a_subject_refuses_it_and_cuts_off_all_its_sessions(
    harness: Harness, iam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = grant(harness)
    second, _ = grant(harness)
    grant(harness, sub="repo:acme/app:ref:refs/heads/dev")  # another subject: not denied
    assert revoke("--issuer", "github", "--subject", SUBJECT, "--reason", "repo compromised") == 0
    assert "refuses caller#oidc:github:" in capsys.readouterr().out
    assert cutoff_values(iam) == sorted([sha256(first), sha256(second)])
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (403, "SESSION_REVOKED")
    revoked = {i["presented_token_fingerprint"]["S"] for i in harness.issued_items() if "revoked_at" in i}
    assert revoked == {sha256(first), sha256(second)}


def test_revoking_an_oidc_token_refuses_it_and_cuts_off_what_it_got(
    harness: Harness, iam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    token, _ = grant(harness)
    assert revoke("--oidc-token", sha256(token), "--reason", "JWT in a log", "--output", "json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["refused_from_now"] == f"token#{sha256(token)}"
    assert [c["action"] for c in result["cutoffs"]] == ["applied"]
    assert cutoff_values(iam) == [sha256(token)]


def test_expired_sessions_drop_out_of_the_deny_and_an_empty_one_is_removed(
    harness: Harness, iam: Any
) -> None:
    old, body = grant(harness)
    assert revoke(sha256(body["credentials"]["SessionToken"]), "--reason", "x") == 0
    assert cutoff_values(iam) == [sha256(old)]
    # Rebuilt from the table on every revoke: an expired session is no longer listed.
    items = harness.dynamodb.scan(TableName=ISSUED_TABLE)["Items"]
    for item in items:
        harness.dynamodb.update_item(
            TableName=ISSUED_TABLE,
            Key={"fingerprint": item["fingerprint"]},
            UpdateExpression="SET token_expires_at = :t",
            ExpressionAttributeValues={
                ":t": {"S": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            },
        )
    assert revoke(sha256(body["credentials"]["SessionToken"]), "--reason", "again") == 0
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role_policy(RoleName="ci-deployer", PolicyName=CUTOFF_POLICY_NAME)


def test_too_many_revocations_for_one_policy_fall_back_to_the_role_wide_cutoff(iam: Any) -> None:
    fingerprints = [f"sha256:{i:064x}" for i in range(200)]
    assert len(policy_text(cutoff_policy(fingerprints) or {})) > MAX_CUTOFF_POLICY_CHARS
    result = apply_cutoff(iam, DEPLOY_ROLE, fingerprints)
    assert result.action == "role-wide"
    document = iam.get_role_policy(RoleName="ci-deployer", PolicyName="AWSRevokeOlderSessions")[
        "PolicyDocument"
    ]
    assert "aws:TokenIssueTime" in json.dumps(document)
    fitting = apply_cutoff(iam, DEPLOY_ROLE, fingerprints[:100])
    assert fitting.action == "applied"
    assert len(cutoff_values(iam)) == 100


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["sha256:" + "a" * 64, "--oidc-token", "sha256:" + "b" * 64],
        ["--subject", SUBJECT],
        ["--issuer", "Not_A_Name", "--subject", SUBJECT],
        ["--oidc-token", "nope"],
    ],
)
def test_revoke_needs_exactly_one_valid_target(
    harness: Harness, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert revoke(*args, "--reason", "x") == 1
    assert "kernel-access: error:" in capsys.readouterr().err


def test_security_page_states_what_the_code_does() -> None:
    """docs/exchange-security.md names the policy, the tag, the deny shape and every refused audience."""
    from pathlib import Path

    from kernel_access.exchange.config import SHARED_AUDIENCE_PREFIXES, SHARED_AUDIENCES

    page = (Path(__file__).resolve().parents[3] / "docs" / "exchange-security.md").read_text()
    assert CUTOFF_POLICY_NAME in page
    assert TAG in page
    for audience in (*SHARED_AUDIENCES, *SHARED_AUDIENCE_PREFIXES):
        assert f"`{audience}" in page, audience
    [example] = page.split("```json\n")[1:]
    documented = json.loads(example.split("```")[0])
    generated = cutoff_policy(["sha256:…", "sha256:…"])
    assert generated is not None
    assert documented["Statement"][0].keys() == generated["Statement"][0].keys()
    assert documented["Statement"][0]["Condition"].keys() == generated["Statement"][0]["Condition"].keys()
