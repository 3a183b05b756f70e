"""The example kernel stack's resources on the local AWS have the properties its template gives them.

Expectations are read straight from the synthesised template (literal properties), never from the
emulator's own resolver, so a property the emulator drops or alters fails here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from kernel_access.local.nested_stacks import merge_nested_stacks

from tests.e2e.conftest import Emulator


@pytest.fixture(scope="module")
def template(kernel_emulator: Emulator) -> Mapping[str, Any]:
    """The kernel template with its nested stacks' resources merged in, as the emulator deploys it
    (the external partners' roles live in nested stacks)."""
    path = Path(kernel_emulator.state["template"])
    return merge_nested_stacks(json.loads(path.read_text()), path.parent)


def _of_type(template: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == kind}


def test_every_table_has_the_template_keys_indexes_ttl_pitr_sse(
    kernel_emulator: Emulator, template: Mapping[str, Any]
) -> None:
    dynamodb = kernel_emulator.client("dynamodb")
    tables = _of_type(template, "AWS::DynamoDB::Table")
    assert set(kernel_emulator.state["tables"]) == set(tables)
    for logical_id, props in tables.items():
        name = kernel_emulator.state["tables"][logical_id]
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == props["KeySchema"], logical_id
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(
            props["AttributeDefinitions"], key=str
        )
        assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
        declared = {
            i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in props.get("GlobalSecondaryIndexes", [])
        }
        created = {
            i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table.get("GlobalSecondaryIndexes", [])
        }
        assert created == declared, logical_id
        assert table.get("DeletionProtectionEnabled", False) == props.get("DeletionProtectionEnabled", False)
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            assert table["SSEDescription"]["Status"] == "ENABLED", logical_id
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in props:
            assert ttl == {
                "TimeToLiveStatus": "ENABLED",
                "AttributeName": props["TimeToLiveSpecification"]["AttributeName"],
            }, logical_id
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED", logical_id
        backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        pitr = backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        wanted = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
        assert pitr == ("ENABLED" if wanted else "DISABLED"), logical_id


def test_every_parameter_holds_the_template_value(
    kernel_emulator: Emulator, template: Mapping[str, Any]
) -> None:
    ssm = kernel_emulator.client("ssm")
    parameters = _of_type(template, "AWS::SSM::Parameter")
    assert set(kernel_emulator.state["parameters"]) == set(parameters)
    for logical_id, props in parameters.items():
        name = kernel_emulator.state["parameters"][logical_id]
        if isinstance(props.get("Name"), str):
            assert name == props["Name"]
        parameter = ssm.get_parameter(Name=name)["Parameter"]
        assert parameter["Type"] == props.get("Type", "String")
        if isinstance(props["Value"], str):
            assert parameter["Value"] == props["Value"], logical_id


def test_every_bucket_deployment_put_its_documents_in_the_local_bucket(
    kernel_emulator: Emulator, template: Mapping[str, Any], kernel_assembly: Path
) -> None:
    """The config documents as a deployment would leave them: the staged asset's files under their
    keys, each deploy-time value (a role ARN) replaced by its local value, in a versioned bucket."""
    from tests.infra.conftest import deployed_documents

    s3 = kernel_emulator.client("s3")
    buckets = kernel_emulator.state["buckets"]
    assert set(buckets) == set(_of_type(template, "AWS::S3::Bucket"))
    staged = deployed_documents(kernel_assembly, dict(template))
    assert set(staged) == {"vending/policy.json", "exchange/config.json"}
    urls = kernel_emulator.state["objects"]
    assert sorted(u.rsplit("/", 2)[-2] + "/" + u.rsplit("/", 1)[-1] for u in urls) == sorted(staged)
    for url in urls:
        bucket, key = url.removeprefix("s3://").split("/", 1)
        assert bucket in buckets.values()
        versioning = s3.get_bucket_versioning(Bucket=bucket)
        assert versioning["Status"] == "Enabled"
        local = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert "<<marker" not in json.dumps(local)
        if key == "vending/policy.json":
            assert local == staged[key]
        else:  # the role ARNs: a template reference in the assembly, a local ARN here
            role_arn = local["targets"]["deployer"]["role_arn"]
            assert role_arn.startswith("arn:aws:iam::111111111111:role/")
            assert json.loads(staged[key]["targets"]["deployer"]["role_arn"])["Fn::GetAtt"][1] == "Arn"


def test_every_role_has_the_template_name_trust_and_limits(
    kernel_emulator: Emulator, template: Mapping[str, Any]
) -> None:
    iam = kernel_emulator.client("iam")
    roles = _of_type(template, "AWS::IAM::Role")
    assert set(kernel_emulator.state["roles"]) == set(roles)
    literal_trust = 0
    for logical_id, props in roles.items():
        name = kernel_emulator.state["roles"][logical_id]
        if isinstance(props.get("RoleName"), str):
            assert name == props["RoleName"]
        role = iam.get_role(RoleName=name)["Role"]
        assert role["MaxSessionDuration"] == props.get("MaxSessionDuration", 3600)
        assert role.get("Description") == props.get("Description")
        trust = props["AssumeRolePolicyDocument"]
        if "Fn::" not in json.dumps(trust):  # no intrinsic: the document must be kept verbatim
            assert role["AssumeRolePolicyDocument"] == trust, logical_id
            literal_trust += 1
    # The partner-facing roles (conditions on session name and external id) are among them.
    assert literal_trust >= 2


def test_inline_policies_are_attached_to_their_roles(
    kernel_emulator: Emulator, template: Mapping[str, Any]
) -> None:
    iam = kernel_emulator.client("iam")
    policies = _of_type(template, "AWS::IAM::Policy")
    assert policies
    for props in policies.values():
        for role in props["Roles"]:
            logical_id = role["Ref"]
            name = kernel_emulator.state["roles"][logical_id]
            assert props["PolicyName"] in iam.list_role_policies(RoleName=name)["PolicyNames"]
