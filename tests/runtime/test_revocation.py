"""Revocation store (fail-closed reads) and the operator CLI: revoke / unrevoke / revoke-sessions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from kernel_access.cli.main import main
from kernel_access.revocation import (
    RevocationStore,
    RevocationStoreUnavailable,
    caller_subject,
    partner_subject,
)

from tests.runtime.conftest import PAYMENTS_ARN, REGION, REVOCATION_TABLE, TARGET_ROLES

pytestmark = pytest.mark.usefixtures("secrets_scan")


@pytest.fixture
def store(aws_backend):
    aws_backend.reset_mutable_state()
    client = aws_backend.dynamodb
    return RevocationStore(REVOCATION_TABLE, lambda: client)


def test_check_finds_caller_then_partner(store):
    assert store.check(PAYMENTS_ARN, "payments") is None
    store.revoke(partner_subject("payments"), reason="contract paused", revoked_by="arn:aws:iam::1:user/op")
    found = store.check(PAYMENTS_ARN, "payments")
    assert found is not None
    assert found.kind == "partner"
    assert found.reason == "contract paused"
    assert store.check(PAYMENTS_ARN, None) is None  # no partner: only the caller key is read
    store.revoke(caller_subject(PAYMENTS_ARN), reason="leak", revoked_by="arn:aws:iam::1:user/op")
    found = store.check(PAYMENTS_ARN, "payments")
    assert found is not None
    assert found.kind == "caller"


def test_unprocessed_keys_are_an_error_not_a_pass(aws_backend):
    client = boto3.client("dynamodb", region_name=REGION)
    store = RevocationStore(REVOCATION_TABLE, lambda: client)
    with Stubber(client) as stubber:
        stubber.add_response(
            "batch_get_item",
            {
                "Responses": {REVOCATION_TABLE: []},
                "UnprocessedKeys": {REVOCATION_TABLE: {"Keys": [{"subject": {"S": "partner#payments"}}]}},
            },
        )
        with pytest.raises(RevocationStoreUnavailable):
            store.check(PAYMENTS_ARN, "payments")


def test_store_errors_raise_unavailable():
    def broken():
        raise ConnectionError("network down")

    with pytest.raises(RevocationStoreUnavailable):
        RevocationStore(REVOCATION_TABLE, broken).check(PAYMENTS_ARN, None)  # type: ignore[arg-type]


def test_cli_revoke_list_unrevoke(store, capsys):
    code = main(
        [
            "revoke",
            "--caller",
            PAYMENTS_ARN,
            "--reason",
            "INC-1: leak",
            "--table",
            REVOCATION_TABLE,
            "--output",
            "json",
        ]
    )
    assert code == 0
    written = json.loads(capsys.readouterr().out)
    assert written["subject"] == caller_subject(PAYMENTS_ARN)
    # Who: the operator's STS caller identity (moto's default identity), not something typed in.
    assert written["revoked_by"] == boto3.client("sts", region_name=REGION).get_caller_identity()["Arn"]
    assert written["reason"] == "INC-1: leak"
    datetime.strptime(written["revoked_at"], "%Y-%m-%dT%H:%M:%SZ")

    assert (
        main(["revoke", "--partner", "acme-analytics", "--reason", "ended", "--table", REVOCATION_TABLE]) == 0
    )
    assert "revoked partner#acme-analytics" in capsys.readouterr().out

    assert main(["revoke", "--list", "--table", REVOCATION_TABLE, "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["subject"] for e in listed} == {caller_subject(PAYMENTS_ARN), "partner#acme-analytics"}

    assert (
        main(["unrevoke", "--partner", "acme-analytics", "--table", REVOCATION_TABLE, "--output", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"subject": "partner#acme-analytics", "removed": True}
    assert store.check(PAYMENTS_ARN, "acme-analytics") is not None  # the caller entry remains
    assert main(["unrevoke", "--partner", "acme-analytics", "--table", REVOCATION_TABLE]) == 0
    assert "was not revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["revoke", "--caller", PAYMENTS_ARN, "--table", REVOCATION_TABLE],  # no reason
        ["revoke", "--caller", PAYMENTS_ARN, "--reason", "  ", "--table", REVOCATION_TABLE],
        ["revoke", "--caller", "not-an-arn", "--reason", "x", "--table", REVOCATION_TABLE],
        ["revoke", "--partner", "Bad_Name", "--reason", "x", "--table", REVOCATION_TABLE],
        ["revoke", "--reason", "x", "--table", REVOCATION_TABLE],  # no subject
        ["revoke", "--caller", PAYMENTS_ARN, "--reason", "x", "--table", "no-such-table"],
        ["revoke-sessions", "--role", "bad role"],
        ["revoke-sessions", "--role", "no-such-role"],
    ],
)
def test_cli_errors_exit_1(store, capsys, argv, monkeypatch):
    monkeypatch.delenv("KERNEL_ACCESS_REVOCATION_TABLE", raising=False)
    assert main(argv) == 1
    assert "kernel-access: error:" in capsys.readouterr().err


def test_cli_requires_a_table(monkeypatch, capsys):
    monkeypatch.delenv("KERNEL_ACCESS_REVOCATION_TABLE", raising=False)
    assert main(["revoke", "--list"]) == 1
    assert "--table" in capsys.readouterr().err


def test_cli_caller_and_partner_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["revoke", "--caller", PAYMENTS_ARN, "--partner", "payments", "--reason", "x"])
    assert exc.value.code == 2


def test_revoke_sessions_puts_the_token_issue_time_deny(aws_backend, capsys):
    before = datetime.now(UTC).replace(microsecond=0)
    assert main(["revoke-sessions", "--role", "kernel-deployer", "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["applied"] is True
    document = aws_backend.iam.get_role_policy(
        RoleName="kernel-deployer", PolicyName="AWSRevokeOlderSessions"
    )["PolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == ["*"]
    assert statement["Resource"] == ["*"]
    issued = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert datetime.strptime(issued, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) >= before
    assert "kernel-deployer" in TARGET_ROLES


def test_revoke_sessions_dry_run_changes_nothing(aws_backend, capsys):
    assert main(["revoke-sessions", "--role", "kernel-narrow", "--dry-run"]) == 0
    assert "would deny" in capsys.readouterr().out
    assert aws_backend.iam.list_role_policies(RoleName="kernel-narrow")["PolicyNames"] == []


def test_help_has_examples(capsys):
    for command in ("revoke", "unrevoke", "revoke-sessions"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out
