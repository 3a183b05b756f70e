"""Partner rollout by a service-managed StackSet: the rollout stack's StackSet, its account-agnostic
template (the same resources as a partner stack), cdk-nag and cfn-lint on both, the app's stacks at
300 partners, and the ``partner_rollout`` configuration's errors."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from kernel_access_cdk import PartnerStackSet
from kernel_access_cdk import partner_stackset as partner_stackset_module
from kernel_access_cdk.app import build_app
from kernel_access_cdk.config import ConfigError, PartnerConfig, load_config
from kernel_access_cdk.limits import Limits, check
from kernel_access_cdk.stacks import PartnerAccountStack

from tests.infra.conftest import of_type, stack_environments, synth

ROLLOUT_STACK = "KernelAccessPartnerRollout"
ADMIN = "999999999999"
OU = "ou-abcd-11111111"
SECTION = {
    "administrator_account": ADMIN,
    "organizational_units": [OU, "ou-abcd-22222222"],
    "regions": ["us-east-1", "eu-west-1"],
    "call_as": "DELEGATED_ADMIN",
    "partners": "in_organization",
}
TWELVE_DIGITS = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


def _with_rollout(context: dict[str, Any], **changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(context)
    result["kernel-access"]["partner_rollout"] = {"stackset": {**SECTION, **changes}}
    return result


@pytest.fixture(scope="module")
def rollout_assembly(tmp_path_factory: pytest.TempPathFactory, cdk_context: dict[str, Any]) -> Path:
    return synth(tmp_path_factory.mktemp("rollout.out"), _with_rollout(cdk_context))


@pytest.fixture(scope="module")
def manifest(rollout_assembly: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((rollout_assembly / "manifest.json").read_text())
    return document


@pytest.fixture(scope="module")
def stack_set(rollout_assembly: Path) -> dict[str, Any]:
    template = json.loads((rollout_assembly / f"{ROLLOUT_STACK}.template.json").read_text())
    (resource,) = of_type(template["Resources"], "AWS::CloudFormation::StackSet").values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


@pytest.fixture(scope="module")
def body(stack_set: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stack_set["TemplateBody"])
    return document


def test_stack_set_is_service_managed_and_follows_the_ous(stack_set: dict[str, Any]) -> None:
    assert stack_set["PermissionModel"] == "SERVICE_MANAGED"
    assert stack_set["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    assert stack_set["CallAs"] == "DELEGATED_ADMIN"
    assert stack_set["ManagedExecution"] == {"Active": True}
    assert stack_set["Capabilities"] == ["CAPABILITY_NAMED_IAM"]
    assert stack_set["StackSetName"] == "kernel-access-partner"
    assert stack_set["StackInstancesGroup"] == [
        {
            "DeploymentTargets": {"OrganizationalUnitIds": [OU, "ou-abcd-22222222"]},
            "Regions": ["us-east-1", "eu-west-1"],
        }
    ]
    assert stack_set["OperationPreferences"] == {
        "FailureTolerancePercentage": 10,
        "MaxConcurrentPercentage": 25,
        "RegionConcurrencyType": "SEQUENTIAL",
        "RegionOrder": ["us-east-1", "eu-west-1"],
    }
    assert stack_set["Parameters"] == [
        {"ParameterKey": "KernelAccountId", "ParameterValue": "111111111111"},
        {"ParameterKey": "KernelRegion", "ParameterValue": "us-east-1"},
        {"ParameterKey": "WorkloadRoleRegion", "ParameterValue": "us-east-1"},
    ]


def test_covered_partners_get_no_stack_and_the_rollout_stack_goes_to_the_administrator(
    manifest: dict[str, Any],
) -> None:
    assert stack_environments(manifest) == {
        "KernelAccessKernel": "aws://111111111111/us-east-1",
        # external: outside the organization, so never behind the StackSet
        "KernelAccessPartner-acme-analytics": "aws://333333333333/eu-west-1",
        ROLLOUT_STACK: f"aws://{ADMIN}/us-east-1",
    }


def _partner_stack_template(**props: Any) -> dict[str, Any]:
    app = App()
    partner = PartnerConfig("payments", "222222222222", True, "us-east-1")
    PartnerAccountStack(
        app, "P", partner=partner, kernel_account="111111111111", kernel_region="us-east-1", **props
    )
    template: dict[str, Any] = app.synth().get_stack_by_name("P").template
    return template


def test_template_holds_the_partner_stack_resources_with_parameters_for_values(body: dict[str, Any]) -> None:
    partner = _partner_stack_template()["Resources"]
    resources = body["Resources"]
    # The same resources (same logical ids) as a partner stack, minus the partner's name.
    name_parameter = {
        k for k, r in partner.items() if r["Properties"].get("Name") == "/kernel-access/partner-name"
    }
    assert len(name_parameter) == 1
    assert set(resources) == set(partner) - name_parameter
    for logical_id, resource in resources.items():
        expected = partner[logical_id]
        assert resource["Type"] == expected["Type"]
        if resource["Type"] == "AWS::SSM::Parameter":
            assert resource["Properties"]["Name"] == expected["Properties"]["Name"]
    role = next(iter(of_type(resources, "AWS::IAM::Role").values()))
    assert role["Properties"]["RoleName"] == "kernel-access-client"
    (policy,) = of_type(resources, "AWS::IAM::Policy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    assert statement["Resource"] == {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "KernelAccountId"}, ":role/kernel-access"],
        ]
    }
    values = {
        r["Properties"]["Name"]: r["Properties"]["Value"]
        for r in of_type(resources, "AWS::SSM::Parameter").values()
    }
    assert values["/kernel-access/kernel-account-id"] == {"Ref": "KernelAccountId"}
    assert values["/kernel-access/region"] == {"Ref": "KernelRegion"}
    assert set(body["Parameters"]) == {"KernelAccountId", "KernelRegion", "WorkloadRoleRegion"}


def test_template_names_no_account_and_no_partner(stack_set: dict[str, Any], body: dict[str, Any]) -> None:
    text = stack_set["TemplateBody"]
    assert TWELVE_DIGITS.findall(text) == []
    for name in ("payments", "acme-analytics", "partner-name", "external-id", "us-east-1", "eu-west-1"):
        assert name not in text
    # Nothing a CDK bootstrap would have to provide: no BootstrapVersion, no assets, no CDK metadata.
    assert "BootstrapVersion" not in text
    assert "Rules" not in body
    assert "aws:cdk:path" not in text
    assert of_type(body["Resources"], "AWS::CDK::Metadata") == {}


def test_the_global_role_is_created_in_the_first_region_only(body: dict[str, Any]) -> None:
    assert body["Conditions"] == {
        "InWorkloadRoleRegion": {"Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "WorkloadRoleRegion"}]}
    }
    conditioned = {
        logical_id: resource.get("Condition") for logical_id, resource in body["Resources"].items()
    }
    for logical_id, condition in conditioned.items():
        is_iam = body["Resources"][logical_id]["Type"].startswith("AWS::IAM::")
        assert condition == ("InWorkloadRoleRegion" if is_iam else None), logical_id


def test_nag_passes_on_the_rollout(rollout_assembly: Path) -> None:
    # (The template itself passed the packs when PartnerStackSet synthesised it: see below.)
    report = json.loads((rollout_assembly / "validation-report.json").read_text())
    plugins = {p["pluginName"]: p for p in report["pluginReports"]}
    for name in ("AwsSolutions", "Serverless"):
        assert plugins[name]["conclusion"] == "success", plugins[name]["violations"]


def test_the_limits_check_measures_the_template_body(
    rollout_assembly: Path, stack_set: dict[str, Any]
) -> None:
    rollout = [str(rollout_assembly / f"{ROLLOUT_STACK}.template.json")]
    assert check(rollout, Limits()) == []
    size = len(stack_set["TemplateBody"].encode())
    assert 1_000 < size < Limits().template_body_bytes
    (finding,) = check(rollout, Limits(template_body_bytes=1_000))
    assert finding.rule.name == "TemplateBodySize"
    assert finding.figure == size
    assert finding.resource.startswith("PartnerStackSet")


def test_a_template_nag_rejects_fails_synth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The template is synthesised with the cdk-nag packs (so every PartnerStackSet built in these
    tests passed them): a finding in it stops the app."""
    real = partner_stackset_module.add_partner_resources

    def with_admin_role(scope: Any, **props: Any) -> Any:
        iam.Role(
            scope,
            "Admin",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AdministratorAccess")],
        )
        return real(scope, **props)

    monkeypatch.setattr(partner_stackset_module, "add_partner_resources", with_admin_role)
    with pytest.raises(Exception, match="ValidationFailed"):
        PartnerStackSet(
            Stack(App(), "S"),
            "Set",
            organizational_units=[OU],
            regions=["us-east-1"],
            kernel_account="111111111111",
            kernel_region="us-east-1",
        )


def test_cfn_lint_passes_on_the_rollout_and_its_template(
    rollout_assembly: Path, stack_set: dict[str, Any], tmp_path: Path
) -> None:
    body_file = tmp_path / "partner-stackset.template.json"
    body_file.write_text(json.dumps(json.loads(stack_set["TemplateBody"]), indent=1))
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("cfn-lint")),
            str(rollout_assembly / f"{ROLLOUT_STACK}.template.json"),
            str(body_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_vending_api_url_becomes_a_stack_set_parameter() -> None:
    stack_set = PartnerStackSet(
        Stack(App(), "S"),
        "Set",
        organizational_units=[OU],
        regions=["eu-west-1"],
        kernel_account="111111111111",
        kernel_region="eu-west-1",
        name_suffix="-staging",
        vending_api_url="https://abc123.execute-api.eu-west-1.amazonaws.com/",
    )
    assert stack_set.parameters["VendingApiUrl"] == "https://abc123.execute-api.eu-west-1.amazonaws.com/"
    assert stack_set.stack_set_name == "kernel-access-partner-staging"
    resources = stack_set.template["Resources"]
    values = {
        r["Properties"]["Name"]: r["Properties"]["Value"]
        for r in of_type(resources, "AWS::SSM::Parameter").values()
    }
    assert values["/kernel-access/vending-api-url"] == {"Ref": "VendingApiUrl"}
    role = next(iter(of_type(resources, "AWS::IAM::Role").values()))
    assert role["Properties"]["RoleName"] == "kernel-access-client-staging"
    assert "abc123" not in stack_set.template_body


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"organizational_units": ["r-abcd"]}, "organizational_units"),
        ({"organizational_units": []}, "organizational_units"),
        ({"organizational_units": [f"ou-abcd-{i:08d}" for i in range(51)]}, "organizational_units"),
        ({"regions": ["US-EAST-1"]}, "regions"),
        ({"call_as": "ADMIN"}, "call_as"),
        ({"region_concurrency": "RANDOM"}, "region_concurrency"),
    ],
)
def test_construct_props_are_checked(props: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "organizational_units": [OU],
        "regions": ["us-east-1"],
        "kernel_account": "111111111111",
        "kernel_region": "us-east-1",
        **props,
    }
    with pytest.raises(ValueError, match=f"PartnerStackSet: {message}"):
        PartnerStackSet(Stack(App(), "S"), "Set", **arguments)


# ----------------------------------------------------------------------------- the app at scale


def _many_partners(context: dict[str, Any], in_org: int, external: int) -> dict[str, Any]:
    result = copy.deepcopy(context)
    partners = result["kernel-access"]["partners"]
    partners += [
        {"name": f"team-{i:03d}", "account_id": f"{400000000000 + i}", "in_organization": True}
        for i in range(in_org)
    ]
    partners += [
        {
            "name": f"vendor-{i:02d}",
            "account_id": f"{500000000000 + i}",
            "in_organization": False,
            "external_id": f"ka-vendor-{i:02d}-0123456789abcdef",
        }
        for i in range(external)
    ]
    return result


def _stack_ids(app: App) -> list[str]:
    return sorted(child.node.id for child in app.node.children if Stack.is_stack(child))


def test_300_partners_behind_the_stack_set_are_one_rollout_stack(cdk_context: dict[str, Any]) -> None:
    context = _with_rollout(_many_partners(cdk_context, in_org=300, external=3))
    app = build_app(context)
    assert _stack_ids(app) == [
        "KernelAccessKernel",
        "KernelAccessPartner-acme-analytics",
        *(f"KernelAccessPartner-vendor-{i:02d}" for i in range(3)),
        ROLLOUT_STACK,
    ]
    rollout = app.node.find_child(ROLLOUT_STACK)
    assert len(rollout.rollout.partners) == 301  # type: ignore[attr-defined]
    # The template does not grow with the partners: the same body as with one in-org partner.
    small = build_app(_with_rollout(cdk_context)).node.find_child(ROLLOUT_STACK)
    assert rollout.stack_set.template_body == small.stack_set.template_body  # type: ignore[attr-defined]


def test_without_the_section_every_partner_keeps_its_stack(cdk_context: dict[str, Any]) -> None:
    app = build_app(_many_partners(cdk_context, in_org=3, external=1))
    assert ROLLOUT_STACK not in _stack_ids(app)
    assert len(_stack_ids(app)) == 1 + 2 + 3 + 1


def test_a_listed_subset_leaves_the_other_in_org_partners_their_stacks(cdk_context: dict[str, Any]) -> None:
    app = build_app(_with_rollout(_many_partners(cdk_context, in_org=2, external=0), partners=["team-001"]))
    assert _stack_ids(app) == [
        "KernelAccessKernel",
        "KernelAccessPartner-acme-analytics",
        "KernelAccessPartner-payments",
        "KernelAccessPartner-team-000",
        ROLLOUT_STACK,
    ]


# ----------------------------------------------------------------------------- configuration


def test_defaults(cdk_context: dict[str, Any]) -> None:
    context = _with_rollout(cdk_context)
    stackset = context["kernel-access"]["partner_rollout"]["stackset"]
    for optional in ("call_as", "partners"):
        del stackset[optional]
    rollout = load_config(context["kernel-access"]).partner_rollout
    assert rollout is not None
    assert rollout.call_as == "SELF"
    assert rollout.partners == ("payments",)
    assert rollout.administrator_region == "us-east-1"
    assert (rollout.failure_tolerance_percentage, rollout.max_concurrent_percentage) == (10, 25)
    assert rollout.region_concurrency == "SEQUENTIAL"
    assert load_config(cdk_context["kernel-access"]).partner_rollout is None


S = "partner_rollout.stackset"


@pytest.mark.parametrize(
    ("changes", "partner", "field", "message"),
    [
        ({"administrator_account": None}, None, f"{S}.administrator_account", "12"),
        ({"administrator_account": "111111111111"}, None, f"{S}.administrator_account", "kernel account"),
        ({"administrator_account": "222222222222"}, None, f"{S}.administrator_account", "'payments'"),
        ({"administrator_region": "Mars"}, None, f"{S}.administrator_region", "region name"),
        (
            {"organizational_units": ["r-abcd"]},
            None,
            f"{S}.organizational_units[0]",
            "organizational unit id",
        ),
        (
            {"organizational_units": ["ou-ab-11111111"]},
            None,
            f"{S}.organizational_units[0]",
            "organizational",
        ),
        ({"organizational_units": []}, None, f"{S}.organizational_units", "1 to 50"),
        (
            {"organizational_units": [f"ou-abcd-{i:08d}" for i in range(51)]},
            None,
            f"{S}.organizational_units",
            "1 to 50",
        ),
        ({"organizational_units": [OU, OU]}, None, f"{S}.organizational_units", "twice"),
        ({"regions": ["us-east-1", "eu_west_1"]}, None, f"{S}.regions[1]", "region"),
        ({"regions": "us-east-1"}, None, f"{S}.regions", "list"),
        ({"call_as": "ROOT"}, None, f"{S}.call_as", "SELF"),
        ({"partners": ["acme-analytics"]}, "acme-analytics", f"{S}.partners", "outside the organization"),
        ({"partners": ["nobody"]}, None, f"{S}.partners[0]", "unknown partner"),
        ({"partners": []}, None, f"{S}.partners", "in_organization"),
        ({"partners": "all"}, None, f"{S}.partners", "list"),
        ({"regions": ["eu-west-1"]}, "payments", "region", "not among"),
        ({"accounts": ["222222222222"]}, None, f"{S}.accounts", "unknown field"),
        (
            {"operation_preferences": {"failure_tolerance_percentage": 101}},
            None,
            f"{S}.operation_preferences.failure_tolerance_percentage",
            "0..100",
        ),
        (
            {"operation_preferences": {"max_concurrent_percentage": 0}},
            None,
            "max_concurrent_percentage",
            "1..100",
        ),
        ({"operation_preferences": {"region_concurrency": "ALL"}}, None, "region_concurrency", "SEQUENTIAL"),
        (
            {"operation_preferences": {"max_concurrent_count": 5}},
            None,
            "max_concurrent_count",
            "unknown field",
        ),
    ],
)
def test_config_errors_name_the_field(
    cdk_context: dict[str, Any], changes: dict[str, Any], partner: str | None, field: str, message: str
) -> None:
    context = _with_rollout(cdk_context, **changes)
    with pytest.raises(ConfigError) as raised:
        load_config(context["kernel-access"])
    assert raised.value.partner == partner
    assert raised.value.field.endswith(field)
    assert message in raised.value.message


def test_the_section_needs_its_stackset_object(cdk_context: dict[str, Any]) -> None:
    context = copy.deepcopy(cdk_context)
    context["kernel-access"]["partner_rollout"] = {"stack_set": {}}
    with pytest.raises(ConfigError, match=re.escape("partner_rollout.stack_set: unknown field")):
        load_config(context["kernel-access"])
    context["kernel-access"]["partner_rollout"] = {}
    with pytest.raises(ConfigError, match=re.escape("partner_rollout.stackset: must be an object")):
        load_config(context["kernel-access"])


def test_the_documented_example_is_a_valid_configuration(cdk_context: dict[str, Any]) -> None:
    from tests.docs import doc_section

    text = doc_section("partner-rollout.md", "Configuring it")
    example = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    context = copy.deepcopy(cdk_context)
    context["kernel-access"].update(example)
    rollout = load_config(context["kernel-access"]).partner_rollout
    assert rollout is not None
    assert rollout.organizational_units == ("ou-abcd-11111111",)
    assert rollout.partners == ("payments",)
