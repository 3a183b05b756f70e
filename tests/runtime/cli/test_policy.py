"""``kernel-access policy lint`` and ``explain`` through the console entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from kernel_access.cli.main import main

from tests.runtime.policy.test_parser import example_document

PAYMENTS_ARN = "arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.ci-1"
ACME_ARN = "arn:aws:sts::111111111111:assumed-role/kernel-access-external-acme-analytics/333333333333.job"


@pytest.fixture(autouse=True)
def _kernel_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Lambda's environment says about its own account (explain reads the same variable)."""
    from kernel_access import settings

    monkeypatch.setenv(settings.KERNEL_ACCOUNT_ID, "111111111111")


def test_explain_needs_the_kernel_account(
    policy_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kernel_access import settings

    monkeypatch.delenv(settings.KERNEL_ACCOUNT_ID)
    argv = ["policy", "explain", str(policy_file), "--caller", PAYMENTS_ARN, "--role", "kernel-reader"]
    assert main(argv) == 1
    assert "--kernel-account" in capsys.readouterr().err
    assert main([*argv, "--kernel-account", "999999999999"]) != 0  # another account: no partner, deny


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(example_document()))
    return path


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    doc: dict[str, Any] = example_document()
    doc["rules"][1]["max_duration"] = 7200
    doc["rules"][2]["partners"] = ["nobody"]
    doc["rules"].append({"id": "x", "effect": "allow", "source_cidrs": ["300.0.0.0/8"]})
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    return path


def test_lint_valid(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(policy_file)]) == 0
    out = capsys.readouterr().out
    assert "valid policy version '2026-11-23.1': 5 rule(s) (4 allow, 1 deny), 2 partner(s)" in out


def test_lint_lists_every_error(broken_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(broken_file)]) == 1
    out = capsys.readouterr().out
    assert "rule 'payments-deployer-business-hours': max_duration" in out
    assert "rule 'partners-read': partners[0]: unknown partner 'nobody'" in out
    assert "rule 'x': source_cidrs[0]" in out
    assert "3 error(s)" in out


def test_lint_json(broken_file: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", "--output", "json", str(broken_file)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {"rule_id": "x", "field": "source_cidrs[0]"}.items() <= report["errors"][-1].items()
    assert main(["policy", "lint", "--output", "json", str(policy_file)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["valid"], report["rules"], report["deny_rules"]) == (True, 5, 1)


def test_lint_refuses_a_document_over_the_size_limit(
    policy_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the Lambda would refuse unread is not called valid (exactly the limit is)."""
    from kernel_access import contract

    size = len(policy_file.read_bytes())
    monkeypatch.setattr(contract, "MAX_DOCUMENT_BYTES", size)
    assert main(["policy", "lint", str(policy_file)]) == 0
    capsys.readouterr()
    policy_file.write_text(policy_file.read_text() + " ")  # still a valid policy, one byte over
    assert main(["policy", "lint", str(policy_file)]) == 1
    out = capsys.readouterr().out
    assert f"document: (size): {size + 1} bytes, over the document size limit of {size} bytes" in out
    assert "1 error(s)" in out


def test_lint_reads_stdin(
    policy_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(policy_file.read_text()))
    assert main(["policy", "lint", "-"]) == 0
    assert "valid policy" in capsys.readouterr().out


def test_lint_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(tmp_path / "nope.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_lint_and_explain_read_the_deployed_object(
    policy_file: Path, broken_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``s3://BUCKET/KEY``: the current version of the object the vending Lambda reads."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="kernel-access-config")
        s3.put_bucket_versioning(Bucket="kernel-access-config", VersioningConfiguration={"Status": "Enabled"})
        url = "s3://kernel-access-config/vending/policy.json"
        s3.put_object(Bucket="kernel-access-config", Key="vending/policy.json", Body=policy_file.read_bytes())
        assert main(["policy", "lint", url]) == 0
        assert "valid policy version '2026-11-23.1'" in capsys.readouterr().out
        argv = ["policy", "explain", url, "--caller", PAYMENTS_ARN, "--role", "kernel-reader"]
        assert main(argv) == 0
        s3.put_object(Bucket="kernel-access-config", Key="vending/policy.json", Body=broken_file.read_bytes())
        assert main(["policy", "lint", url]) == 1  # the new current version is linted
        assert "error(s)" in capsys.readouterr().out
        assert main(["policy", "lint", "s3://kernel-access-config/vending/missing.json"]) == 1
        assert "cannot read" in capsys.readouterr().err
        assert main(["policy", "lint", "s3://kernel-access-config"]) == 1
        assert "expected s3://BUCKET/KEY" in capsys.readouterr().err


def test_explain_allow(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "policy",
            "explain",
            str(policy_file),
            "--caller",
            PAYMENTS_ARN,
            "--role",
            "kernel-deployer",
            "--at",
            "2026-11-23T10:00:00Z",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "decision:        ALLOW" in out
    assert "rule:            payments-deployer-business-hours" in out
    assert "partner:         payments (derived from the caller's session name)" in out
    assert "max duration:    1800 s" in out


def test_explain_deny_exit_code_and_reason(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "explain", str(policy_file), "--caller", ACME_ARN, "--role", "kernel-deployer"])
    out = capsys.readouterr().out
    assert code == 3
    assert "decision:        DENY" in out
    assert "rule:            deny-external-deployer" in out


def test_explain_outside_window_and_duration(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["policy", "explain", str(policy_file), "--caller", PAYMENTS_ARN, "--role", "kernel-deployer"]
    assert main([*args, "--at", "2026-11-23T20:00:00+00:00"]) == 3
    assert "no rule matched" in capsys.readouterr().out
    assert main([*args, "--at", "2026-11-23T10:00:00Z", "--duration", "3600"]) == 3
    assert "exceeds the maximum of 1800s" in capsys.readouterr().out


def test_explain_codeartifact_json(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "policy",
            "explain",
            str(policy_file),
            "--caller",
            PAYMENTS_ARN,
            "--codeartifact-domain",
            "kernel",
            "--repository",
            "internal",
            "--source-ip",
            "203.0.113.9",
            "--output",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["decision"] == "allow"
    assert report["rule_id"] == "payments-publish"
    assert report["codeartifact_access"] == "publish"
    assert report["partner"] == "payments"


@pytest.mark.parametrize(
    "flag", [["--partner", "payments"], ["--account", "222222222222"], ["--org", "o-a1b2c3d4e5"]]
)
def test_explain_refuses_caller_supplied_identity(
    policy_file: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    """The Lambda derives partner, account and organization from the session: so does explain."""
    other = "arn:aws:sts::111111111111:assumed-role/somebody/else"
    argv = ["policy", "explain", str(policy_file), "--caller", other, "--role", "kernel-reader", *flag]
    assert main(argv) == 1
    assert f"{flag[0]} is not accepted" in capsys.readouterr().err


def test_explain_shows_the_partners_bound_account(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["policy", "explain", str(policy_file), "--caller", PAYMENTS_ARN, "--role", "kernel-reader"]
    assert main([*argv, "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["partner"], report["account_id"]) == ("payments", "222222222222")


def test_explain_session_policy_is_shown(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["policy", "explain", str(policy_file), "--caller", PAYMENTS_ARN, "--role", "kernel-reader"])
        == 0
    )
    # cdk.json's partners-read rule narrows reader sessions with an inline session policy.
    out = capsys.readouterr().out
    assert '"inline"' in out
    assert "cloudformation:DescribeStacks" in out


@pytest.mark.parametrize(
    "extra",
    [
        ["--role", "kernel-reader", "--at", "2026-11-23T10:00:00"],  # no offset
        ["--role", "kernel-reader", "--at", "yesterday"],
        ["--role", "kernel-reader", "--repository", "internal"],
    ],
)
def test_explain_bad_options_exit_1(
    policy_file: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "explain", str(policy_file), "--caller", PAYMENTS_ARN, *extra]) == 1
    assert capsys.readouterr().err


def test_explain_invalid_policy_exit_1(broken_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["policy", "explain", str(broken_file), "--caller", PAYMENTS_ARN, "--role", "kernel-reader"])
        == 1
    )
    assert "not a valid policy" in capsys.readouterr().err


def test_explain_needs_exactly_one_target(policy_file: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["policy", "explain", str(policy_file), "--caller", PAYMENTS_ARN])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(
            [
                "policy",
                "explain",
                str(policy_file),
                "--caller",
                PAYMENTS_ARN,
                "--role",
                "r",
                "--codeartifact-domain",
                "kernel",
            ]
        )


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["policy", "explain", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "exit codes: 0 allow, 3 deny, 1 error" in out


def test_policy_without_subcommand_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy"]) == 2
    assert "lint" in capsys.readouterr().err
