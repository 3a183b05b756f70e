"""The synth-time limits check: each AWS limit caught by a construct built to break it, the real
configuration passing, and a lowered limit failing synth with a message that names the resource."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, CfnOutput, Environment, NestedStack, Stack
from aws_cdk import aws_cloudformation as cfn
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from kernel_access.contract import MAX_DOCUMENT_BYTES
from kernel_access_cdk.config import ConfigError, load_config
from kernel_access_cdk.config_store import ConfigBucket
from kernel_access_cdk.limits import (
    PLUGIN_NAME,
    QUOTA_MAXIMA,
    Limits,
    check,
    check_roles_per_account,
    load_templates,
    policy_characters,
    register_limits,
)

from tests.infra.conftest import KERNEL_STACK, synth

DEFAULTS = Limits()


def _statement(i: int) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::bucket-{i:04d}/*"}


def _document(statements: int) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [_statement(i) for i in range(statements)]}


def _trust(accounts: int) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":iam::{i:012d}:root"]]}
                },
                "Action": "sts:AssumeRole",
            }
            for i in range(accounts)
        ],
    }


def _violations(outdir: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((outdir / "validation-report.json").read_text())
    return {
        v["ruleName"]: v
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == PLUGIN_NAME
        for v in plugin["violations"]
    }


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One app, one synth: every limit broken once, each by its own construct."""
    outdir = tmp_path_factory.mktemp("limits-broken")
    # CDK's own 500-resource check would stop synth before any plugin runs: switch it off here.
    app = App(outdir=str(outdir), context={"@aws-cdk/core:stackResourceLimit": 0})
    env = Environment(account="444444444444", region="us-east-1")
    stack = Stack(app, "Broken", env=env)
    small = {"Version": "2012-10-17", "Statement": [_statement(0)]}
    iam.CfnRole(stack, "BigTrust", assume_role_policy_document=_trust(30))
    # Two inline policies, each under 10,240, together over it; one AWS::IAM::Policy adds to another role.
    iam.CfnRole(
        stack,
        "BigInline",
        assume_role_policy_document=_trust(1),
        policies=[
            iam.CfnRole.PolicyProperty(policy_name="a", policy_document=_document(70)),
            iam.CfnRole.PolicyProperty(policy_name="b", policy_document=_document(70)),
        ],
    )
    attached = iam.CfnRole(stack, "AttachedInline", assume_role_policy_document=_trust(1))
    iam.CfnPolicy(stack, "Attached", policy_name="big", policy_document=_document(150), roles=[attached.ref])
    iam.CfnManagedPolicy(stack, "BigManaged", policy_document=_document(90))
    iam.CfnManagedPolicy(stack, "SmallManaged", policy_document=small)
    ssm.CfnParameter(stack, "BigStandard", type="String", value="x" * 4097)
    ssm.CfnParameter(stack, "FineAdvanced", type="String", value="x" * 5000, tier="Advanced")
    ssm.CfnParameter(stack, "BigAdvanced", type="String", value="x" * 8193, tier="Advanced")
    lambda_.CfnFunction(
        stack,
        "BigEnvironment",
        role="arn:aws:iam::444444444444:role/fn",
        code=lambda_.CfnFunction.CodeProperty(zip_file="def handler(e, c): pass"),
        handler="index.handler",
        runtime="python3.13",
        environment=lambda_.CfnFunction.EnvironmentProperty(variables={"BIG": "x" * 4090}),
    )
    many = Stack(app, "Many", env=env)
    for i in range(501):
        cfn.CfnWaitConditionHandle(many, f"H{i}")
    documents = ConfigBucket(stack, "Documents")
    documents.add_document(
        stack, "BigDocument", key="big.json", body="x" * (DEFAULTS.config_document_bytes + 1)
    )
    documents.add_document(stack, "FineDocument", key="fine.json", body="x" * 1000)
    outputs = Stack(app, "ManyOutputs", env=env)
    handle = cfn.CfnWaitConditionHandle(outputs, "Handle")
    for i in range(201):
        CfnOutput(outputs, f"O{i}", value=handle.ref)
    # A nested stack over the limit: its template is a separate file the plugin must find itself.
    parent = Stack(app, "Parent", env=env)
    nested = NestedStack(parent, "Shard")
    iam.CfnRole(nested, "NestedBigTrust", assume_role_policy_document=_trust(30))
    large = Stack(app, "Large", env=Environment(account="555555555555", region="us-east-1"))
    cfn.CfnWaitConditionHandle(large, "Padded").add_metadata("padding", "x" * 1_000_001)
    register_limits(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    return _violations(outdir)


@pytest.mark.parametrize(
    ("rule", "figure_unit", "limit"),
    [
        ("TrustPolicySize[BigTrust]", "characters", DEFAULTS.trust_policy_characters),
        ("InlinePoliciesPerRole[BigInline]", "characters", DEFAULTS.inline_policy_characters_per_role),
        ("InlinePoliciesPerRole[AttachedInline]", "characters", DEFAULTS.inline_policy_characters_per_role),
        ("ManagedPolicySize[BigManaged]", "characters", DEFAULTS.managed_policy_characters),
        ("SsmParameterSize[BigStandard]", "bytes", DEFAULTS.ssm_standard_bytes),
        ("SsmParameterSize[BigAdvanced]", "bytes", DEFAULTS.ssm_advanced_bytes),
        ("LambdaEnvironmentSize[BigEnvironment]", "bytes", DEFAULTS.lambda_environment_bytes),
        ("TemplateResources[template]", "resources", DEFAULTS.template_resources),
        ("TemplateSize[template]", "bytes", DEFAULTS.template_bytes),
        ("TemplateOutputs[template]", "outputs", DEFAULTS.template_outputs),
        ("TrustPolicySize[NestedBigTrust]", "characters", DEFAULTS.trust_policy_characters),
    ],
)
def test_each_limit_is_caught_naming_resource_figure_and_limit(broken, rule, figure_unit, limit):
    violation = broken[rule]
    resource = rule.split("[", 1)[1].rstrip("]")
    description = violation["description"]
    assert description.startswith(f"{resource}: ")
    assert f"the limit is {limit:,} {figure_unit}" in description
    figure = int(description.split(" is ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert figure > limit
    assert violation["severity"] == "error"
    assert violation["suggestedFix"]


def test_nothing_under_its_limit_is_reported(broken):
    reported = {rule.split("[", 1)[1].rstrip("]") for rule in broken}
    assert not reported & {"SmallManaged", "FineAdvanced"}
    assert not any(r.startswith("FineDocument") for r in reported)
    assert len(broken) == 12


def test_a_finding_in_a_nested_stack_names_the_nested_template(broken):
    (construct,) = broken["TrustPolicySize[NestedBigTrust]"]["violatingConstructs"]
    assert construct["constructPath"] == "Parent/Shard/NestedBigTrust"
    assert construct["cloudFormationResource"]["templatePath"].endswith(".nested.template.json")


def test_a_nested_stack_whose_template_is_not_in_the_assembly_is_a_finding(tmp_path: Path):
    """What cannot be checked does not pass: a template URL from outside the app is reported."""
    path = tmp_path / "Outer.template.json"
    outer = {
        "Type": "AWS::CloudFormation::Stack",
        "Properties": {"TemplateURL": "https://example.com/t.json"},
    }
    path.write_text(json.dumps({"Resources": {"Outer": outer}}))
    (finding,) = check([str(path)], DEFAULTS)
    assert finding.rule.name == "NestedStackTemplate"
    assert finding.resource == "Outer"


def test_a_config_document_over_its_limit_is_caught_naming_the_construct(broken):
    (rule,) = [r for r in broken if r.startswith("ConfigDocumentSize[")]
    resource = rule.split("[", 1)[1].rstrip("]")
    assert resource.startswith("BigDocument")  # the BucketDeployment of the construct that broke it
    description = broken[rule]["description"]
    size = DEFAULTS.config_document_bytes + 1
    assert description == (
        f"{resource}: the configuration document big.json is {size:,} bytes; "
        f"the limit is {DEFAULTS.config_document_bytes:,} bytes (ConfigDocumentSize)"
    )
    # One definition: the synth-time default is the limit the Lambdas enforce on every load.
    assert DEFAULTS.config_document_bytes == MAX_DOCUMENT_BYTES == 5 * 1024 * 1024


def test_policy_size_is_minified_and_intrinsics_count_at_their_longest():
    document = {
        "Statement": [{"Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::b"]]}}]
    }
    # {"Statement":[{"Resource":"arn:xxxxxxxxxx:s3:::b"}]} : white space is not counted.
    assert policy_characters(document) == len('{"Statement":[{"Resource":"arn:' + "x" * 10 + ':s3:::b"}]}')
    pretty = json.loads(json.dumps(document, indent=4))
    assert policy_characters(pretty) == policy_characters(document)


def _role_template(tmp_path: Path, name: str, roles: int) -> str:
    path = tmp_path / f"{name}.template.json"
    resources = {f"R{i}": {"Type": "AWS::IAM::Role", "Properties": {}} for i in range(roles)}
    path.write_text(json.dumps({"Resources": resources}))
    return str(path)


def test_roles_are_counted_across_every_stack_of_one_account(tmp_path: Path):
    manifest = {"artifacts": {}}
    paths = []
    for name, account, roles in (
        ("A", "111111111111", 400),
        ("B", "111111111111", 400),
        ("C", "111111111111", 201),
        ("D", "222222222222", 450),
    ):
        paths.append(_role_template(tmp_path, name, roles))
        manifest["artifacts"][name] = {
            "type": "aws:cloudformation:stack",
            "environment": f"aws://{account}/us-east-1",
            "properties": {"templateFile": f"{name}.template.json"},
        }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (finding,) = check_roles_per_account(load_templates(paths), DEFAULTS)
    assert finding.figure == 1001
    assert finding.limit == 1000
    assert "111111111111" in finding.description
    assert finding.resource == "R200"  # the 1,001st role: the first one over the limit
    assert check_roles_per_account(load_templates(paths), Limits(roles_per_account=5000)) == []


def test_roles_per_account_fails_synth(tmp_path: Path):
    app = App(outdir=str(tmp_path))
    for name, account in (("One", "666666666666"), ("Two", "666666666666"), ("Other", "777777777777")):
        stack = Stack(app, name, env=Environment(account=account, region="us-east-1"))
        for i in range(2):
            iam.CfnRole(stack, f"Role{i}", assume_role_policy_document=_trust(1))
    register_limits(app, Limits(roles_per_account=3))
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    (violation,) = _violations(tmp_path).values()
    assert "4 roles; the limit is 3 roles" in violation["description"]
    assert "666666666666" in violation["description"]


def test_the_real_configuration_passes(cloud_assembly: Path, cdk_context: dict[str, Any]):
    limits = load_config(cdk_context["kernel-access"]).limits
    paths = [str(p) for p in sorted(cloud_assembly.glob("*.template.json"))]
    assert paths
    assert check(paths, limits) == []
    assert _violations(cloud_assembly) == {}


def test_a_lowered_limit_fails_the_real_synth_naming_the_resource(
    tmp_path: Path, cdk_context: dict[str, Any]
):
    context = copy.deepcopy(cdk_context)
    context["kernel-access"]["limits"] = {"trust_policy_characters": 300}
    with pytest.raises(Exception, match="ValidationFailed"):
        synth(tmp_path, context, builtin_validation=False)
    violations = _violations(tmp_path)
    trust = {rule: v for rule, v in violations.items() if rule.startswith("TrustPolicySize[")}
    assert trust
    for rule, violation in trust.items():
        resource = rule.split("[", 1)[1].rstrip("]")
        assert violation["description"].startswith(f"{resource}: the trust policy")
        assert "the limit is 300 characters" in violation["description"]
        (construct,) = violation["violatingConstructs"]
        assert construct["cloudFormationResource"]["logicalId"] == resource
    assert any(
        v["violatingConstructs"][0]["cloudFormationResource"]["templatePath"].startswith(KERNEL_STACK)
        for v in trust.values()
    )
    # The external partner's role is in a nested stack: found there, named by its nested logical id.
    (external,) = [
        v["violatingConstructs"][0]
        for v in trust.values()
        if v["violatingConstructs"][0]["cloudFormationResource"]["templatePath"].endswith(
            ".nested.template.json"
        )
    ]
    assert external["constructPath"].endswith("/External-acme-analytics/Resource")


def test_a_lowered_document_limit_fails_the_real_synth_naming_the_document(
    tmp_path: Path, cdk_context: dict[str, Any]
):
    context = copy.deepcopy(cdk_context)
    context["kernel-access"]["limits"] = {"config_document_bytes": 100}
    with pytest.raises(Exception, match="ValidationFailed"):
        synth(tmp_path, context, builtin_validation=False)
    found = {r: v for r, v in _violations(tmp_path).items() if r.startswith("ConfigDocumentSize[")}
    descriptions = sorted(v["description"] for v in found.values())
    assert len(descriptions) == 2
    assert "the configuration document exchange/config.json is " in descriptions[0]
    assert descriptions[1].startswith("VendingPolicyDocumentDeployment")
    assert "the configuration document vending/policy.json is " in descriptions[1]
    assert all("the limit is 100 bytes" in d for d in descriptions)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"trust_policy_characters": 4097}, "limits.trust_policy_characters"),
        ({"roles_per_account": 5001}, "limits.roles_per_account"),
        ({"template_resources": 501}, "limits.template_resources"),
        ({"roles_per_account": 0}, "limits.roles_per_account"),
        ({"trust_policy": 2048}, "limits.trust_policy"),
        ({"config_document_bytes": 5 * 1024 * 1024 + 1}, "limits.config_document_bytes"),
    ],
)
def test_limits_above_the_aws_quota_are_config_errors(cdk_context, limits, field):
    raw = copy.deepcopy(cdk_context["kernel-access"])
    raw["limits"] = limits
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(raw)


def test_quota_raisable_limits_are_configurable(cdk_context):
    raw = copy.deepcopy(cdk_context["kernel-access"])
    raw["limits"] = {"trust_policy_characters": 4096, "roles_per_account": 5000}
    limits = load_config(raw).limits
    assert (limits.trust_policy_characters, limits.roles_per_account) == (4096, 5000)
    assert QUOTA_MAXIMA["inline_policy_characters_per_role"] == DEFAULTS.inline_policy_characters_per_role


def test_session_rate_limit_cannot_exceed_the_partner_limit(cdk_context):
    raw = copy.deepcopy(cdk_context["kernel-access"])
    raw["rate_limit"] = {"requests": 10, "session_requests": 11}
    with pytest.raises(ConfigError, match=r"rate_limit\.session_requests"):
        load_config(raw)
    raw["rate_limit"] = {"requests": 10}
    assert load_config(raw).rate_limit_session_requests == 10


def test_an_inline_template_body_over_51200_bytes_is_caught(tmp_path: Path):
    """A StackSet's ``TemplateBody`` is limited to 51,200 bytes (a template from S3 is not)."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "StackSets", env=Environment(account="444444444444", region="us-east-1"))

    def body(size: int) -> str:
        padding = "x" * (size - len('{"Description":"","Resources":{}}'))
        text = json.dumps({"Description": padding, "Resources": {}}, separators=(",", ":"))
        assert len(text.encode()) == size
        return text

    for name, size in (("AtTheLimit", DEFAULTS.template_body_bytes), ("OverTheLimit", 51_201)):
        cfn.CfnStackSet(
            stack, name, permission_model="SERVICE_MANAGED", stack_set_name=name, template_body=body(size)
        )
    register_limits(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    violations = _violations(tmp_path)
    assert set(violations) == {"TemplateBodySize[OverTheLimit]"}
    assert violations["TemplateBodySize[OverTheLimit]"]["description"] == (
        "OverTheLimit: the inline TemplateBody is 51,201 bytes; the limit is 51,200 bytes (TemplateBodySize)"
    )
