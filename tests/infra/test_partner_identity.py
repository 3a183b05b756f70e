"""Partner identity in the kernel stack: trust policies that do not grow with the number of partners,
every cross-account statement bound to the organization or to one account and one external ID,
SourceIdentity and session tags constrained, and configurations whose identities collide refused.

The scale test synthesises one kernel stack with 1,000 in-organization and 200 external partners
(the partner stacks are not built: they do not depend on the number of partners).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from kernel_access_cdk.config import ConfigError, load_config
from kernel_access_cdk.stacks import KernelAccountStack

from tests.infra.conftest import deployed_resources, of_type

#: IAM's default quota for a role trust policy (characters, whitespace excluded).
TRUST_POLICY_LIMIT = 2048
CFN_RESOURCES_LIMIT = 500
CFN_TEMPLATE_BYTES_LIMIT = 1_000_000
IN_ORG, EXTERNAL = 1000, 200


def _scaled_context(base: dict[str, Any], in_org: int, external: int) -> dict[str, Any]:
    context = copy.deepcopy(base["kernel-access"])
    partners: list[dict[str, Any]] = []
    for index in range(in_org):
        partners.append(
            {"name": f"org-{index:04d}-" + "x" * 22, "account_id": f"5{index:011d}", "in_organization": True}
        )
    for index in range(external):
        partners.append(
            {
                "name": f"ext-{index:04d}-" + "y" * 22,
                "account_id": f"6{index:011d}",
                "in_organization": False,
                # The longest external ID STS accepts.
                "external_id": f"{index:04d}" + "e" * 1220,
            }
        )
    context["partners"] = partners
    # Rules may name partners of the example; keep those that still exist.
    for rule in context["policy"]["rules"]:
        rule.pop("partners", None)
    return context


def _kernel_template(context: dict[str, Any], outdir: Path) -> dict[str, Any]:
    """The kernel stack's template with its nested stacks (external partners' roles) merged in;
    ``"Files"`` holds the size and resource count of every template file CloudFormation would get."""
    app = App(outdir=str(outdir))
    stack = KernelAccountStack(app, "KernelAccessKernel", config=load_config(context))
    assembly = app.synth()
    template: dict[str, Any] = assembly.get_stack_by_name(stack.stack_name).template
    files = {
        path.name: (path.stat().st_size, len(json.loads(path.read_text())["Resources"]))
        for path in outdir.glob("*.template.json")
    }
    return {"Resources": deployed_resources(template, outdir), "Files": files}


def _trust_policies(template: dict[str, Any]) -> dict[str, str]:
    return {
        logical_id: json.dumps(role["Properties"]["AssumeRolePolicyDocument"], separators=(",", ":"))
        for logical_id, role in of_type(template["Resources"], "AWS::IAM::Role").items()
    }


@pytest.fixture(scope="module")
def scaled(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _kernel_template(_scaled_context(cdk_context, IN_ORG, EXTERNAL), tmp_path_factory.mktemp("scaled"))


def test_no_trust_policy_exceeds_the_limit_at_1000_in_org_and_200_external_partners(
    scaled: dict[str, Any],
) -> None:
    sizes = {logical_id: len(text) for logical_id, text in _trust_policies(scaled).items()}
    too_big = {logical_id: size for logical_id, size in sizes.items() if size > TRUST_POLICY_LIMIT}
    assert not too_big, too_big


def test_the_scaled_kernel_templates_stay_under_cloudformation_limits(scaled: dict[str, Any]) -> None:
    files = scaled["Files"]
    nested = [name for name in files if name.endswith(".nested.template.json")]
    assert nested, "external partners' roles are in nested stacks"
    for name, (size, resources) in files.items():
        assert resources <= CFN_RESOURCES_LIMIT, name
        assert size <= CFN_TEMPLATE_BYTES_LIMIT, name
    # Every external partner has its role, whichever nested stack holds it.
    external = [
        r
        for r in of_type(scaled["Resources"], "AWS::IAM::Role").values()
        if str(r["Properties"].get("RoleName", "")).startswith("kernel-access-external-")
    ]
    assert len(external) == EXTERNAL


def test_in_org_trust_policy_is_the_same_for_one_partner_and_a_thousand(
    scaled: dict[str, Any], kernel_resources: dict[str, Any]
) -> None:
    def in_org(resources: dict[str, Any]) -> Any:
        (role,) = [
            r
            for r in of_type(resources, "AWS::IAM::Role").values()
            if r["Properties"].get("RoleName") == "kernel-access"
        ]
        return role["Properties"]["AssumeRolePolicyDocument"]

    assert in_org(scaled["Resources"]) == in_org(kernel_resources)


def test_every_cross_account_statement_is_bound_to_the_org_or_one_account_and_one_external_id(
    scaled: dict[str, Any], kernel_resources: dict[str, Any]
) -> None:
    for resources in (scaled["Resources"], kernel_resources):
        for logical_id, role in of_type(resources, "AWS::IAM::Role").items():
            name = role["Properties"].get("RoleName", "")
            if not isinstance(name, str) or not name.startswith("kernel-access"):
                continue
            if name.startswith(("kernel-access-codeartifact", "kernel-access-client")):
                continue
            for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                condition = statement["Condition"]
                equals = condition.get("StringEquals", {})
                if name == "kernel-access":
                    assert statement["Principal"] == {"AWS": "*"}, logical_id
                    assert equals["aws:PrincipalOrgID"] == "o-a1b2c3d4e5"
                    assert set(condition["StringNotEquals"]) == {"aws:PrincipalAccount"}
                else:
                    # One account (a literal ARN, or arn:${Partition}:iam::<account>:root when the
                    # stack has no fixed environment), one external ID.
                    principal = json.dumps(statement["Principal"]["AWS"])
                    assert principal.count(":root") == 1, logical_id
                    assert principal.count(":iam::") == 1, logical_id
                    assert isinstance(equals["sts:ExternalId"], str)


def test_source_identity_and_session_tags_are_constrained(kernel_resources: dict[str, Any]) -> None:
    """SetSourceIdentity only with a SourceIdentity under the caller's own account prefix; TagSession
    only with allow-listed keys; the session name bound to the caller's account."""
    from kernel_access.validation import PARTNER_SESSION_TAG_KEYS

    seen = 0
    for role in of_type(kernel_resources, "AWS::IAM::Role").values():
        name = role["Properties"].get("RoleName")
        if name != "kernel-access" and not str(name).startswith("kernel-access-external"):
            continue  # the kernel's own roles (trusting its own functions) are tested elsewhere
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            condition = statement.get("Condition", {})
            if "sts:SetSourceIdentity" in actions:
                assert condition["StringLikeIfExists"] == {"sts:SourceIdentity": "${aws:PrincipalAccount}.*"}
            if "sts:TagSession" in actions:
                assert condition["ForAllValues:StringEquals"] == {
                    "aws:TagKeys": list(PARTNER_SESSION_TAG_KEYS)
                }
            if any(a in actions for a in ("sts:SetSourceIdentity", "sts:TagSession")):
                assert condition["StringLike"] == {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"}
                seen += 1
    assert seen == 2  # kernel-access and kernel-access-external-acme-analytics


def test_external_partners_get_one_role_each(kernel_resources: dict[str, Any]) -> None:
    names = sorted(
        r["Properties"]["RoleName"]
        for r in of_type(kernel_resources, "AWS::IAM::Role").values()
        if str(r["Properties"].get("RoleName", "")).startswith("kernel-access-external")
    )
    assert names == ["kernel-access-external-acme-analytics"]


# --- configurations whose identities collide -------------------------------------------------------


def _partner(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in config["partners"] if p["name"] == name)


@pytest.mark.parametrize(
    ("mutate", "partner", "field", "words"),
    [
        pytest.param(
            lambda c: c["partners"].append(
                {"name": "payments-twin", "account_id": "222222222222", "in_organization": True}
            ),
            "payments-twin",
            "account_id",
            "payments",
            id="two-partners-one-account",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(account_id="111111111111"),
            "payments",
            "account_id",
            "kernel account",
            id="kernel-account-as-partner",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(name="exchange"),
            "exchange",
            "name",
            "reserved",
            id="partner-named-exchange",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(name="kernel-access"),
            "kernel-access",
            "name",
            "reserved",
            id="partner-named-kernel-access",
        ),
    ],
)
def test_colliding_identities_are_refused(
    context_copy: dict[str, Any], mutate: Any, partner: str, field: str, words: str
) -> None:
    config = context_copy["kernel-access"]
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.partner == partner
    assert caught.value.field == field
    assert words in str(caught.value)


def test_target_roles_named_kernel_access_are_refused(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    config["target_roles"].append({"name": "kernel-access-external-payments"})
    with pytest.raises(ConfigError, match=r"target_roles\[2\]\.name.*kernel-access"):
        load_config(config)


def test_external_role_names_must_fit_iam(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    config["name_suffix"] = "-long-suffix"
    _partner(config, "acme-analytics")["name"] = "a" * 32
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.partner == "a" * 32
