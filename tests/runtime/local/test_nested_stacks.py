"""Nested stacks in the emulator: a nested template found by its asset metadata or by the asset
manifest, merged into its parent with parameters and outputs resolved, and refused when it cannot be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kernel_access.local.nested_stacks import NestedStackError, NestedTemplates, merge_nested_stacks
from kernel_access.local.template import Resolver, StackTemplate

_KEY = "0" * 64 + ".json"
_URL = {"Fn::Join": ["", ["https://s3.us-east-1.", {"Ref": "AWS::URLSuffix"}, f"/cdk-assets/{_KEY}"]]}


def _nested_resource(*, metadata: bool) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "Type": "AWS::CloudFormation::Stack",
        "Properties": {"TemplateURL": _URL, "Parameters": {"PolicyArn": {"Ref": "InvokePolicy"}}},
    }
    if metadata:
        resource["Metadata"] = {"aws:asset:path": "Parent.Shard.nested.template.json"}
    return resource


def _assembly(tmp_path: Path, *, metadata: bool = True) -> dict[str, Any]:
    nested = {
        "Parameters": {"PolicyArn": {"Type": "String"}, "Suffix": {"Type": "String", "Default": "-x"}},
        "Resources": {
            "ExternalRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Fn::Sub": "kernel-access-external-acme${Suffix}"},
                    "ManagedPolicyArns": [{"Ref": "PolicyArn"}],
                    "AssumeRolePolicyDocument": {"Statement": []},
                },
            }
        },
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["ExternalRole", "Arn"]}}},
    }
    (tmp_path / "Parent.Shard.nested.template.json").write_text(json.dumps(nested))
    manifest = {
        "files": {
            "0" * 64: {
                "source": {"path": "Parent.Shard.nested.template.json", "packaging": "file"},
                "destinations": {"current": {"bucketName": "b", "objectKey": _KEY}},
            }
        }
    }
    (tmp_path / "Parent.assets.json").write_text(json.dumps(manifest))
    return {
        "Resources": {
            "InvokePolicy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": {}}},
            "Shard": _nested_resource(metadata=metadata),
            "UsesOutput": {
                "Type": "AWS::SSM::Parameter",
                "DependsOn": ["Shard", "InvokePolicy"],
                "Properties": {"Value": {"Fn::GetAtt": ["Shard", "Outputs.RoleArn"]}, "Type": "String"},
            },
        }
    }


@pytest.mark.parametrize("metadata", [True, False], ids=["asset-metadata", "asset-manifest"])
def test_a_nested_stack_is_merged_with_its_parameters_and_outputs_resolved(tmp_path: Path, metadata: bool):
    merged = merge_nested_stacks(_assembly(tmp_path, metadata=metadata), tmp_path)
    resources = merged["Resources"]
    assert "Shard" not in resources
    role = resources["ExternalRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "InvokePolicy"}]
    assert role["RoleName"] == {"Fn::Sub": ["kernel-access-external-acme${Suffix}", {"Suffix": "-x"}]}
    using = resources["UsesOutput"]
    assert using["Properties"]["Value"] == {"Fn::GetAtt": ["ExternalRole", "Arn"]}
    assert using["DependsOn"] == ["InvokePolicy"]
    # The emulator's resolver then names and links them like the parent's own resources.
    resolver = Resolver(StackTemplate("Parent", "111111111111", "us-east-1", merged))
    assert resolver.physical_name("ExternalRole") == "kernel-access-external-acme-x"
    assert resolver.resource_properties("ExternalRole")["ManagedPolicyArns"] == [
        "arn:aws:iam::111111111111:policy/Parent-InvokePolicy"
    ]
    assert resolver.resource_properties("UsesOutput")["Value"] == (
        "arn:aws:iam::111111111111:role/kernel-access-external-acme-x"
    )


def test_a_nested_stack_whose_template_is_missing_is_refused(tmp_path: Path):
    body = _assembly(tmp_path)
    (tmp_path / "Parent.Shard.nested.template.json").unlink()
    assert [path for _, _, path in NestedTemplates(tmp_path).of(body)] == [None]
    with pytest.raises(NestedStackError, match="Shard: its template is not in"):
        merge_nested_stacks(body, tmp_path)


def test_a_nested_logical_id_that_is_taken_is_refused(tmp_path: Path):
    body = _assembly(tmp_path)
    body["Resources"]["ExternalRole"] = {"Type": "AWS::SNS::Topic"}
    with pytest.raises(NestedStackError, match="ExternalRole is taken"):
        merge_nested_stacks(body, tmp_path)


def test_a_parameter_without_a_value_is_refused(tmp_path: Path):
    body = _assembly(tmp_path)
    body["Resources"]["Shard"]["Properties"]["Parameters"] = {}
    with pytest.raises(NestedStackError, match="no value for its parameter PolicyArn"):
        merge_nested_stacks(body, tmp_path)
