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

from tests.runtime.conftest import AUDIT_TABLE, KERNEL_ACCOUNT, PAYMENTS_ARN, REGION, REVOCATION_TABLE

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


@pytest.fixture
def operator_arn(aws_backend) -> str:
    """The identity moto reports for the CLI's credentials (taken from AWS, never typed in)."""
    return str(boto3.client("sts", region_name=REGION).get_caller_identity()["Arn"])


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch):
    """No table defaults leak in from the environment: each test says what it uses."""
    for name in ("KERNEL_ACCESS_REVOCATION_TABLE", "KERNEL_ACCESS_AUDIT_TABLE", "KERNEL_ACCESS_TARGET_ROLES"):
        monkeypatch.delenv(name, raising=False)


def operator_records(aws_backend, operator_arn: str, route: str) -> list[dict]:
    """The operator's records of one command, through the by-caller index (as an auditor would)."""
    response = aws_backend.dynamodb.query(
        TableName=AUDIT_TABLE,
        IndexName="by-caller",
        KeyConditionExpression="caller_arn = :c",
        ExpressionAttributeValues={":c": {"S": operator_arn}},
    )
    return [item for item in response["Items"] if item["route"]["S"] == route]


def clear_operator_records(aws_backend, operator_arn: str) -> None:
    for route in ("CLI revoke", "CLI unrevoke", "CLI revoke-sessions"):
        for item in operator_records(aws_backend, operator_arn, route):
            aws_backend.dynamodb.delete_item(
                TableName=AUDIT_TABLE,
                Key={"request_id": item["request_id"]},
            )


TABLES = ["--table", REVOCATION_TABLE, "--audit-table", AUDIT_TABLE]


def test_cli_revoke_list_unrevoke_are_recorded(store, aws_backend, operator_arn, capsys):
    clear_operator_records(aws_backend, operator_arn)
    code = main(["revoke", "--caller", PAYMENTS_ARN, "--reason", "INC-1: leak", *TABLES, "--output", "json"])
    assert code == 0
    written = json.loads(capsys.readouterr().out)
    assert written["subject"] == caller_subject(PAYMENTS_ARN)
    assert written["revoked_by"] == operator_arn
    assert written["reason"] == "INC-1: leak"
    datetime.strptime(written["revoked_at"], "%Y-%m-%dT%H:%M:%SZ")
    (record,) = operator_records(aws_backend, operator_arn, "CLI revoke")
    assert record["revocation_subject"]["S"] == caller_subject(PAYMENTS_ARN)
    assert record["reason"]["S"] == "INC-1: leak"
    assert record["decision"]["S"] == "allow"
    assert record["request_id"]["S"].startswith("cli-")

    assert main(["revoke", "--partner", "acme-analytics", "--reason", "ended", *TABLES]) == 0
    assert "revoked partner#acme-analytics" in capsys.readouterr().out

    assert main(["revoke", "--list", "--table", REVOCATION_TABLE, "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["subject"] for e in listed} == {caller_subject(PAYMENTS_ARN), "partner#acme-analytics"}

    argv = ["unrevoke", "--partner", "acme-analytics", "--reason", "renewed", *TABLES, "--output", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["subject"], out["removed"]) == ("partner#acme-analytics", True)
    (lifted,) = operator_records(aws_backend, operator_arn, "CLI unrevoke")
    assert lifted["request_id"]["S"] == out["audit_request_id"]
    assert lifted["revocation_subject"]["S"] == "partner#acme-analytics"
    assert lifted["reason"]["S"] == "renewed"
    assert store.check(PAYMENTS_ARN, "acme-analytics") is not None  # the caller entry remains
    assert store.check("arn:aws:iam::111111111111:user/x", "acme-analytics") is None

    # Lifting what is not revoked changes nothing and records nothing.
    assert main(["unrevoke", "--partner", "acme-analytics", "--reason", "again", *TABLES]) == 0
    assert "was not revoked" in capsys.readouterr().out
    assert len(operator_records(aws_backend, operator_arn, "CLI unrevoke")) == 1


def test_unrevoke_needs_the_audit_table_and_is_atomic_with_it(store, capsys):
    store.revoke(partner_subject("payments"), reason="x", revoked_by="arn:aws:iam::1:user/op")
    base = ["unrevoke", "--partner", "payments", "--reason", "done", "--table", REVOCATION_TABLE]
    assert main(base) == 1
    assert "audit table" in capsys.readouterr().err
    assert main([*base, "--audit-table", "no-such-table"]) == 1  # the transaction fails as a whole
    capsys.readouterr()
    assert store.check(PAYMENTS_ARN, "payments") is not None  # still revoked: never lifted unrecorded


def test_revoke_is_never_blocked_by_the_audit_table(store, capsys):
    argv = ["revoke", "--partner", "payments", "--reason", "INC-2", "--table", REVOCATION_TABLE]
    assert main([*argv, "--audit-table", "no-such-table"]) == 1
    captured = capsys.readouterr()
    assert "IS IN FORCE" in captured.err
    assert store.check(PAYMENTS_ARN, "payments") is not None
    store.unrevoke(partner_subject("payments"))
    assert main(argv) == 0  # no audit table at all: a warning, the item itself holds who and why
    assert "warning: no audit table" in capsys.readouterr().err
    assert store.check(PAYMENTS_ARN, "payments") is not None


@pytest.mark.parametrize(
    "argv",
    [
        ["revoke", "--caller", PAYMENTS_ARN, "--table", REVOCATION_TABLE],  # no reason
        ["revoke", "--caller", PAYMENTS_ARN, "--reason", "  ", "--table", REVOCATION_TABLE],
        ["revoke", "--caller", "not-an-arn", "--reason", "x", "--table", REVOCATION_TABLE],
        ["revoke", "--partner", "Bad_Name", "--reason", "x", "--table", REVOCATION_TABLE],
        ["revoke", "--reason", "x", "--table", REVOCATION_TABLE],  # no subject
        ["revoke", "--caller", PAYMENTS_ARN, "--reason", "x", "--table", "no-such-table"],
        ["unrevoke", "--partner", "payments", "--reason", " ", *TABLES],
        ["revoke-sessions", "--role", "bad role", "--reason", "x"],
        ["revoke-sessions", "--role", "no-such-role", "--reason", "x"],
        ["revoke-sessions", "--role", "kernel-reader", "--reason", ""],
    ],
)
def test_cli_errors_exit_1(store, capsys, argv):
    assert main(argv) == 1
    assert "kernel-access: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["revoke", "--caller", PAYMENTS_ARN, "--partner", "payments", "--reason", "x"],
        ["unrevoke", "--partner", "payments"],  # no reason
        ["revoke-sessions", "--role", "kernel-reader"],  # no reason
    ],
)
def test_cli_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_cli_requires_a_table(capsys):
    assert main(["revoke", "--list"]) == 1
    assert "--table" in capsys.readouterr().err


def _revoke_policy(aws_backend, role: str) -> dict:
    document = aws_backend.iam.get_role_policy(RoleName=role, PolicyName="AWSRevokeOlderSessions")[
        "PolicyDocument"
    ]
    return json.loads(document) if isinstance(document, str) else document


def test_revoke_sessions_puts_the_token_issue_time_deny_and_records_it(aws_backend, operator_arn, capsys):
    clear_operator_records(aws_backend, operator_arn)
    before = datetime.now(UTC).replace(microsecond=0)
    argv = ["revoke-sessions", "--role", "kernel-deployer", "--reason", "INC-3: key leak"]
    assert main([*argv, "--audit-table", AUDIT_TABLE, "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["applied"] is True
    assert out["revoked_by"] == operator_arn
    (statement,) = _revoke_policy(aws_backend, "kernel-deployer")["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == ["*"]
    assert statement["Resource"] == ["*"]
    issued = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert datetime.strptime(issued, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) >= before
    (record,) = operator_records(aws_backend, operator_arn, "CLI revoke-sessions")
    assert record["revocation_subject"]["S"] == "role#kernel-deployer"
    assert record["reason"]["S"] == "INC-3: key leak"
    # The record's time is the cut-off instant itself.
    assert record["recorded_at"]["S"].startswith(issued[:-1])


def test_revoke_sessions_maps_the_target_role_name_through_the_lambda_mapping(
    aws_backend, monkeypatch, capsys
):
    """Deployments with a name suffix: callers say ``kernel-deployer``, IAM has ``kernel-deployer-blue``."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    aws_backend.iam.create_role(RoleName="kernel-deployer-blue", AssumeRolePolicyDocument=trust)
    monkeypatch.setenv(
        "KERNEL_ACCESS_TARGET_ROLES",
        json.dumps({"kernel-deployer": f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-deployer-blue"}),
    )
    argv = ["revoke-sessions", "--role", "kernel-deployer", "--reason", "drill", "--output", "json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["role"], out["requested_role"]) == ("kernel-deployer-blue", "kernel-deployer")
    assert _revoke_policy(aws_backend, "kernel-deployer-blue")["Statement"][0]["Effect"] == "Deny"
    monkeypatch.setenv("KERNEL_ACCESS_TARGET_ROLES", "not json")
    assert main(argv) == 1
    assert "KERNEL_ACCESS_TARGET_ROLES" in capsys.readouterr().err


def test_iam_role_name():
    from kernel_access.cli.revoke import iam_role_name

    mapping = {"KERNEL_ACCESS_TARGET_ROLES": json.dumps({"r": "arn:aws:iam::1:role/path/r-x"})}
    assert iam_role_name("r", mapping) == "r-x"
    assert iam_role_name("other", mapping) == "other"
    assert iam_role_name("r", {}) == "r"
    with pytest.raises(ValueError):
        iam_role_name("r", {"KERNEL_ACCESS_TARGET_ROLES": json.dumps({"r": 5})})


def test_revoke_sessions_dry_run_changes_nothing(aws_backend, capsys):
    assert main(["revoke-sessions", "--role", "kernel-narrow", "--reason", "drill", "--dry-run"]) == 0
    assert "would deny" in capsys.readouterr().out
    assert aws_backend.iam.list_role_policies(RoleName="kernel-narrow")["PolicyNames"] == []


def test_help_has_examples(capsys):
    for command in ("revoke", "unrevoke", "revoke-sessions"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "examples:" in capsys.readouterr().out
