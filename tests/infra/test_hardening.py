"""Target roles stay out of kernel-access's own resources; the audit trail resists tampering.

Read from the template synthesized from cdk.json (what ``cdk synth`` deploys): the permissions
boundary every target role carries and what it denies, the least-privilege example reader, the audit
table's resource policy, stream and key, and the Object Lock archive fed by the stream.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kernel_access import settings
from kernel_access_cdk.config import ConfigError, load_config

from tests.infra.conftest import REPO, of_type

BREAK_GLASS_DEFAULT = "kernel-access-audit-break-glass"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _target_names(cdk_context: dict[str, Any]) -> set[str]:
    config = cdk_context["kernel-access"]
    suffix = config.get("name_suffix", "")
    return {role["name"] + suffix for role in config["target_roles"]}


def _target_roles(resources: dict[str, Any], names: set[str]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: role
        for logical_id, role in of_type(resources, "AWS::IAM::Role").items()
        if role["Properties"].get("RoleName") in names
    }


@pytest.fixture(scope="module")
def boundary(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """(logical id, statements) of the one boundary every target role carries."""
    refs = {
        json.dumps(role["Properties"].get("PermissionsBoundary"), sort_keys=True)
        for role in _target_roles(kernel_resources, _target_names(cdk_context)).values()
    }
    assert len(refs) == 1, refs
    ref = json.loads(refs.pop())
    assert isinstance(ref, dict), ref
    assert set(ref) == {"Ref"}, ref
    policy = kernel_resources[ref["Ref"]]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return ref["Ref"], list(policy["Properties"]["PolicyDocument"]["Statement"])


def _denies(statements: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Deny" and f"{service}:*" in _as_list(s["Action"])]


def _stack_name_pattern(service: str, resource: str) -> str:
    """How the boundary names every resource whose name CloudFormation generated from the stack name."""
    arn = f"arn:aws:{service}:us-east-1:111111111111:{resource}"
    return json.dumps({"Fn::Join": ["", [arn, {"Ref": "AWS::StackName"}, "-*"]]})


def _denied_text(statements: list[dict[str, Any]], service: str) -> str:
    """Resources and conditions of the unconditional-by-resource denies of ``service``, as JSON."""
    return json.dumps([s["Resource"] for s in _denies(statements, service) if "Condition" not in s])


# --- item: target roles ------------------------------------------------------------------------


def test_every_target_role_carries_the_boundary(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    names = _target_names(cdk_context)
    roles = _target_roles(kernel_resources, names)
    assert {r["Properties"]["RoleName"] for r in roles.values()} == names
    for role in roles.values():
        assert role["Properties"]["PermissionsBoundary"] == {"Ref": boundary[0]}


def test_boundary_allows_only_what_the_role_itself_grants(boundary: tuple[str, list[Any]]) -> None:
    """A boundary is a ceiling: its one Allow is everything, its Denies carve kernel-access out."""
    allows = [s for s in boundary[1] if s["Effect"] == "Allow"]
    assert allows == [
        {"Sid": "CeilingIsTheRolesOwnPolicies", "Effect": "Allow", "Action": "*", "Resource": "*"}
    ]


def test_boundary_denies_every_kernel_access_table(
    kernel_resources: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    tables = of_type(kernel_resources, "AWS::DynamoDB::Table")
    # audit, rate limit, revocation, replay, issued tokens
    assert len(tables) >= 5
    denied = _denied_text(boundary[1], "dynamodb")
    # Generated names are "<stack name>-<id>-<suffix>": one pattern covers them (and their indexes
    # and streams) whatever their number; a literal name is listed itself.
    assert _stack_name_pattern("dynamodb", "table/") in denied
    for logical_id, table in tables.items():
        name = table["Properties"].get("TableName")
        assert name is None or f":table/{name}*" in denied, logical_id


def test_boundary_denies_every_kernel_access_log_group(
    kernel_resources: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    denied = _denied_text(boundary[1], "logs")
    groups = of_type(kernel_resources, "AWS::Logs::LogGroup")
    assert groups
    assert _stack_name_pattern("logs", "log-group:") in denied
    for logical_id, group in groups.items():
        name = group["Properties"].get("LogGroupName")
        assert name is None or f":log-group:{name}*" in denied, logical_id


def test_boundary_denies_every_kernel_access_parameter(
    kernel_resources: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    """Anything under /kernel-access (the kernel stack itself creates no parameter now)."""
    denied = _denied_text(boundary[1], "ssm")
    assert ":parameter/kernel-access*" in denied
    parameters = of_type(kernel_resources, "AWS::SSM::Parameter")
    for parameter in parameters.values():
        assert parameter["Properties"]["Name"].startswith("/kernel-access"), parameter


def test_boundary_denies_every_kernel_access_key(
    kernel_resources: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    keys = of_type(kernel_resources, "AWS::KMS::Key")
    assert keys
    statements = _denies(boundary[1], "kms")
    text = json.dumps(statements)
    for logical_id in keys:
        assert f'"{logical_id}"' in text, logical_id
    # Direct use is denied; use by a service on a caller's behalf (kms:ViaService) is left to the
    # denies of that service's resources.
    assert any(s.get("Condition") == {"Null": {"kms:ViaService": "true"}} for s in statements)


def test_boundary_denies_every_kernel_access_function(
    kernel_resources: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    """Functions cannot be named by reference (their environment names the target roles, which
    carry the boundary: a cycle); the stack's generated-name prefix and CloudFormation's own stack
    tag name them instead. A function with a fixed name would escape the prefix: there is none."""
    statements = _denies(boundary[1], "lambda")
    by_prefix = [s for s in statements if "Condition" not in s]
    assert '{"Ref": "AWS::StackName"}' in json.dumps(by_prefix)
    by_tag = [s for s in statements if "Condition" in s]
    assert [s["Condition"] for s in by_tag] == [
        {"StringEquals": {"aws:ResourceTag/aws:cloudformation:stack-id": {"Ref": "AWS::StackId"}}}
    ]
    functions = of_type(kernel_resources, "AWS::Lambda::Function")
    assert functions
    assert not [f for f in functions.values() if "FunctionName" in f["Properties"]]


def test_boundary_denies_every_kernel_access_role(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    denied = _denied_text(boundary[1], "iam")
    assert ":role/kernel-access*" in denied
    targets = _target_roles(kernel_resources, _target_names(cdk_context))
    for logical_id, role in of_type(kernel_resources, "AWS::IAM::Role").items():
        name = role["Properties"].get("RoleName")
        if logical_id in targets:
            # By name: a reference would make the boundary depend on the role that carries it.
            assert f":role/{name}" in denied, logical_id
        elif isinstance(name, str) and name.startswith("kernel-access"):
            # The partner-facing roles (one per external partner) are covered by the name pattern,
            # so the boundary does not grow with the number of partners.
            assert f'"{logical_id}"' not in denied, logical_id
        else:
            assert f'"{logical_id}"' in denied, logical_id


def test_boundary_denies_the_buckets_and_the_stack_itself(
    kernel_resources: dict[str, Any], boundary: tuple[str, list[Any]]
) -> None:
    """The audit archive and the config bucket: a target session able to write the vending policy
    or the exchange configuration could grant itself anything."""
    buckets = of_type(kernel_resources, "AWS::S3::Bucket")
    assert {b.split("Bucket")[0] for b in buckets} == {"AuditArchive", "Config"}
    denied = _denied_text(boundary[1], "s3")
    for bucket_id in buckets:
        assert f'"{bucket_id}"' in denied
        assert f'[{{"Fn::GetAtt": ["{bucket_id}", "Arn"]}}, "/*"]' in denied
    assert '{"Ref": "AWS::StackId"}' in _denied_text(boundary[1], "cloudformation")


def test_example_config_grants_no_aws_managed_read_only_policy(cdk_context: dict[str, Any]) -> None:
    config = cdk_context["kernel-access"]
    text = json.dumps(config)
    assert "arn:aws:iam::aws:policy/ReadOnlyAccess" not in text
    reader = next(r for r in config["target_roles"] if r["name"] == "kernel-reader")
    assert not reader.get("managed_policy_arns")
    for statement in reader["inline_policy"]["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            assert ":" in action, action
            assert not action.endswith(":*"), action
        for resource in _as_list(statement["Resource"]):
            assert resource != "*"


def test_example_reader_role_carries_its_inline_policy(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = cdk_context["kernel-access"]
    reader = next(r for r in config["target_roles"] if r["name"] == "kernel-reader")
    [role] = _target_roles(kernel_resources, {"kernel-reader" + config.get("name_suffix", "")}).values()
    assert "ManagedPolicyArns" not in role["Properties"]
    [policy] = role["Properties"]["Policies"]
    assert policy["PolicyDocument"]["Statement"] == reader["inline_policy"]["Statement"]


# --- item: audit integrity ---------------------------------------------------------------------


def _audit_table(resources: dict[str, Any]) -> dict[str, Any]:
    [table] = [
        t for name, t in of_type(resources, "AWS::DynamoDB::Table").items() if name.startswith("AuditTable")
    ]
    return table


def test_audit_table_key_is_the_request_id_alone(kernel_resources: dict[str, Any]) -> None:
    """``attribute_not_exists(request_id)`` can only make a request id unique if it is the key."""
    props = _audit_table(kernel_resources)["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]


AUDIT_ITEM_TAMPERING = {
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}
AUDIT_TABLE_TAMPERING = {
    "dynamodb:DeleteTable",
    "dynamodb:DeleteBackup",
    "dynamodb:DeleteResourcePolicy",
    "dynamodb:DisableKinesisStreamingDestination",
}
AUDIT_TABLE_DEPLOYMENT = {
    "dynamodb:UpdateTable",
    "dynamodb:PutResourcePolicy",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:UpdateContinuousBackups",
}


def _break_glass_arn(cdk_context: dict[str, Any]) -> str:
    config = cdk_context["kernel-access"]
    name = config["audit"].get("break_glass_role", BREAK_GLASS_DEFAULT)
    return f"arn:aws:iam::{config['kernel_account']}:role/{name}"


def test_audit_table_policy_denies_tampering_to_all_but_break_glass(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    break_glass = _break_glass_arn(cdk_context)
    document = _audit_table(kernel_resources)["Properties"]["ResourcePolicy"]["PolicyDocument"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert all(s["Effect"] == "Deny" and s["Principal"] == {"AWS": "*"} for s in statements.values())
    items = statements["DenyRecordChangesButBreakGlass"]
    assert set(items["Action"]) == AUDIT_ITEM_TAMPERING
    assert items["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": break_glass}}
    table = statements["DenyTableChangesButBreakGlass"]
    assert set(table["Action"]) == AUDIT_TABLE_TAMPERING
    assert table["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": break_glass}}
    deploy = statements["DenyTableUpdatesButBreakGlassAndDeployment"]
    assert set(deploy["Action"]) == AUDIT_TABLE_DEPLOYMENT
    [(operator, values)] = deploy["Condition"].items()
    assert operator == "ArnNotLike"
    assert values["aws:PrincipalArn"][0] == break_glass
    assert len(values["aws:PrincipalArn"]) == 2
    # The writers' PutItem is not denied (that is how records are appended).
    assert not any("dynamodb:PutItem" in _as_list(s["Action"]) for s in statements.values())


def test_audit_table_streams_old_and_new_images(kernel_resources: dict[str, Any]) -> None:
    props = _audit_table(kernel_resources)["Properties"]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_archive_bucket_is_locked_in_compliance_mode(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    days = cdk_context["kernel-access"]["audit"]["archive_retention_days"]
    (bucket,) = [
        r for n, r in of_type(kernel_resources, "AWS::S3::Bucket").items() if n.startswith("AuditArchive")
    ]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_archive_bucket_policy_admits_only_the_archive_writer(kernel_resources: dict[str, Any]) -> None:
    (policy,) = [
        r
        for n, r in of_type(kernel_resources, "AWS::S3::BucketPolicy").items()
        if n.startswith("AuditArchive")
    ]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    writes = statements["OnlyTheArchiveWriterPuts"]
    assert writes["Effect"] == "Deny"
    assert writes["Action"] == "s3:PutObject"
    [writer] = writes["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert writer["Fn::GetAtt"][1] == "Arn"
    changes = statements["DenyObjectChangesButBreakGlass"]
    assert {
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:PutObjectRetention",
        "s3:PutObjectLegalHold",
    } <= set(changes["Action"])


def test_archive_function_reads_the_audit_stream_and_only_puts(kernel_resources: dict[str, Any]) -> None:
    (mapping,) = of_type(kernel_resources, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    audit_id = next(
        n for n in of_type(kernel_resources, "AWS::DynamoDB::Table") if n.startswith("AuditTable")
    )
    assert props["EventSourceArn"] == {"Fn::GetAtt": [audit_id, "StreamArn"]}
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["BisectBatchOnFunctionError"] is True
    assert "OnFailure" in props["DestinationConfig"]
    function = kernel_resources[props["FunctionName"]["Ref"]]["Properties"]
    assert function["Handler"] == "kernel_access.handlers.audit_archive.handler"
    assert settings.AUDIT_ARCHIVE_BUCKET in function["Environment"]["Variables"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    actions = {
        action
        for policy in of_type(kernel_resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in _as_list(s["Action"])
        if action.startswith("s3:")
    }
    assert actions == {"s3:PutObject"}


# --- the docs' examples are the example configuration ------------------------------------------


def _json_blocks(page: str) -> list[Any]:
    text = (REPO / "docs" / page).read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```json\n")[1:]]
    return [json.loads("{" + block + "}") for block in blocks]


def test_docs_show_the_example_configuration(cdk_context: dict[str, Any]) -> None:
    config = cdk_context["kernel-access"]
    reader, session = _json_blocks("target-roles.md")
    assert reader["target_roles"] == [r for r in config["target_roles"] if r["name"] == "kernel-reader"]
    [rule] = [r for r in config["policy"]["rules"] if r["id"] == "partners-read"]
    assert session["session_policy"] == rule["session_policy"]
    [audit] = _json_blocks("audit-integrity.md")
    assert audit["audit"] == config["audit"]


# --- configuration ------------------------------------------------------------------------------


def _reader(config: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in config["target_roles"] if r["name"] == "kernel-reader")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda c: _reader(c)["inline_policy"].update(Statement=[]),
            "target_roles[0].inline_policy.Statement",
        ),
        (
            lambda c: _reader(c)["inline_policy"]["Statement"][0].update(NotAction="s3:*"),
            "target_roles[0].inline_policy.Statement[0].NotAction",
        ),
        (
            lambda c: _reader(c)["inline_policy"]["Statement"][0].pop("Resource"),
            "target_roles[0].inline_policy.Statement[0].Resource",
        ),
        (
            lambda c: _reader(c)["inline_policy"]["Statement"][0].update(Resource=["x" * 11_000]),
            "target_roles[0].inline_policy",
        ),
        (lambda c: _reader(c).pop("inline_policy"), "target_roles[0]"),
        (lambda c: c["audit"].update(break_glass_role="no spaces"), "audit.break_glass_role"),
        (lambda c: c["audit"].update(archive_retention_days=30), "audit.archive_retention_days"),
        (lambda c: c["audit"].update(archive_days=30), "audit.archive_days"),
    ],
)
def test_config_refuses_what_would_weaken_the_target_roles_or_the_archive(
    context_copy: dict[str, Any], change: Any, field: str
) -> None:
    config = context_copy["kernel-access"]
    change(config)
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert error.value.field == field
