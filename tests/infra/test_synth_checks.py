"""Whole-assembly checks: cdk-nag clean, cfn-lint clean, deterministic, snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, NestedStack, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from kernel_access_cdk.nag import acknowledge, register_nag
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import REPO, normalise_asset_hashes, synth


def test_cdk_nag_packs_pass(cloud_assembly: Path) -> None:
    report = json.loads((cloud_assembly / "validation-report.json").read_text())
    plugins = {p["pluginName"]: p for p in report["pluginReports"]}
    assert {"AwsSolutions", "Serverless"} <= set(plugins)
    for name in ("AwsSolutions", "Serverless"):
        assert plugins[name]["conclusion"] == "success", plugins[name]["violations"]


def _bad_app(tmp_path: Path, *, acknowledged: bool) -> App:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Bad")
    # No PITR (a warning), an AWS-managed policy and a wildcard resource (errors).
    dynamodb.Table(
        stack, "Table", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    role = iam.Role(
        stack,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AdministratorAccess")],
    )
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    if acknowledged:
        acknowledge(
            role,
            "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AdministratorAccess]",
            "test: deliberately acknowledged",
        )
    register_nag(app)
    return app


def test_cdk_nag_fails_a_bad_construct(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="ValidationFailed"):
        _bad_app(tmp_path, acknowledged=False).synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-DDB3" in rules
    assert "AwsSolutions-IAM5[Resource::*]" in rules
    assert any(rule.startswith("AwsSolutions-IAM4") for rule in rules)


def test_cdk_nag_checks_nested_stacks(tmp_path: Path) -> None:
    """The external partners' roles live in nested stacks: cdk-nag must see inside them."""
    app = App(outdir=str(tmp_path))
    nested = NestedStack(Stack(app, "Parent"), "Shard")
    dynamodb.Table(
        nested, "Table", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    register_nag(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    paths = {
        construct["constructPath"]
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        if violation["ruleName"] == "AwsSolutions-DDB3"
        for construct in violation["violatingConstructs"]
    }
    assert paths == {"Parent/Shard/Table/Resource"}


def test_acknowledging_one_finding_leaves_the_others(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="ValidationFailed"):
        _bad_app(tmp_path, acknowledged=True).synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-IAM5[Resource::*]" in rules
    assert not any(rule.startswith("AwsSolutions-IAM4") for rule in rules)


def test_acknowledgement_needs_a_reason(tmp_path: Path) -> None:
    stack = Stack(App(outdir=str(tmp_path)), "S")
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(stack, "AwsSolutions::AwsSolutions-IAM5", "because")


def test_cfn_lint_reports_nothing(cloud_assembly: Path) -> None:
    templates = sorted(str(p) for p in cloud_assembly.glob("*.template.json"))
    # The kernel stack, the two partner stacks and the one nested stack of external partners' roles.
    assert len(templates) == 4
    assert len([t for t in templates if t.endswith(".nested.template.json")]) == 1
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_two_synths_are_byte_identical(cloud_assembly: Path, tmp_path: Path) -> None:
    # CDK's built-in CloudFormation validation already ran on the first synth and never changes a
    # template; skipping it here keeps the test fast.
    second = synth(tmp_path / "second", builtin_validation=False)
    first_files = sorted(p.name for p in cloud_assembly.glob("*.template.json"))
    assert first_files == sorted(p.name for p in second.glob("*.template.json"))
    for name in first_files:
        assert (cloud_assembly / name).read_bytes() == (second / name).read_bytes(), name
    assets = sorted(p.name for p in cloud_assembly.glob("asset.*"))
    assert assets == sorted(p.name for p in second.glob("asset.*"))


@pytest.mark.parametrize(
    "stack", ["KernelAccessKernel", "KernelAccessPartner-payments", "KernelAccessPartner-acme-analytics"]
)
def test_template_snapshot(
    templates: dict[str, dict[str, Any]], stack: str, snapshot: SnapshotAssertion
) -> None:
    normalised = json.loads(normalise_asset_hashes(json.dumps(templates[stack])))
    assert normalised == snapshot(extension_class=JSONSnapshotExtension)


def test_nested_template_snapshot(cloud_assembly: Path, snapshot: SnapshotAssertion) -> None:
    """The external partners' roles nested stack (one for the example's one external partner)."""
    (nested,) = sorted(cloud_assembly.glob("*.nested.template.json"))
    normalised = json.loads(normalise_asset_hashes(nested.read_text()))
    assert normalised == snapshot(extension_class=JSONSnapshotExtension)


def test_cdk_cli_synth_matches_build_app(cloud_assembly: Path, tmp_path: Path) -> None:
    """`cdk synth` (what `make synth` runs) writes the very templates the tests check."""
    cdk = REPO / "node_modules" / ".bin" / "cdk"
    if not cdk.exists():
        pytest.skip("CDK CLI not installed (make synth / make test install it)")
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    result = subprocess.run(
        [str(cdk), "synth", "--quiet", "--no-notices", "--no-version-reporting", "--output", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = sorted(p.name for p in cloud_assembly.glob("*.template.json"))
    assert names == sorted(p.name for p in tmp_path.glob("*.template.json"))
    for name in names:
        assert normalise_asset_hashes((tmp_path / name).read_text()) == normalise_asset_hashes(
            (cloud_assembly / name).read_text()
        ), name
