"""The partner stacks: workload role scoped to the right kernel role, SSM parameters."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import of_type, stack_environments


def _parameters(template: dict[str, Any]) -> dict[str, str]:
    return {
        p["Properties"]["Name"]: p["Properties"]["Value"]
        for p in of_type(template["Resources"], "AWS::SSM::Parameter").values()
    }


@pytest.mark.parametrize(
    ("stack", "kernel_role", "external_id"),
    [
        ("KernelAccessPartner-payments", "kernel-access", None),
        (
            "KernelAccessPartner-acme-analytics",
            "kernel-access-external-acme-analytics",
            "ka-acme-7f3c9e2a4b6d48e1a0c5d9b2e8f1a3c7",
        ),
    ],
)
def test_partner_stack(
    templates: dict[str, dict[str, Any]], stack: str, kernel_role: str, external_id: str | None
) -> None:
    template = templates[stack]
    role_arn = f"arn:aws:iam::111111111111:role/{kernel_role}"
    (policy,) = of_type(template["Resources"], "AWS::IAM::Policy").values()
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Sid": "AssumeKernelRole",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Resource": role_arn,
        }
    ]
    expected = {
        "/kernel-access/kernel-account-id": "111111111111",
        "/kernel-access/kernel-role-arn": role_arn,
        "/kernel-access/region": "us-east-1",
        "/kernel-access/partner-name": stack.removeprefix("KernelAccessPartner-"),
    }
    if external_id is not None:
        expected["/kernel-access/external-id"] = external_id
    # cdk.json has no vending_api_url yet: the parameter is absent rather than a made-up URL.
    assert _parameters(template) == expected


def test_partner_stacks_have_their_own_environment(cloud_assembly: Any) -> None:
    import json

    manifest = json.loads((cloud_assembly / "manifest.json").read_text())
    assert stack_environments(manifest) == {
        "KernelAccessKernel": "aws://111111111111/us-east-1",
        "KernelAccessPartner-payments": "aws://222222222222/us-east-1",
        "KernelAccessPartner-acme-analytics": "aws://333333333333/eu-west-1",
    }
