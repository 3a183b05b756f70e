"""Construct behaviour outside the example app: options, proxy routes, grants, the asset."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import kernel_access
import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from kernel_access_cdk.audit_table import AuditTable
from kernel_access_cdk.config import PartnerConfig
from kernel_access_cdk.lambda_asset import package_directory, stage_package
from kernel_access_cdk.roles import KernelAccessRoles
from kernel_access_cdk.service_api import CALLER_ACCOUNT_HEADER, CALLER_ARN_HEADER, KernelServiceApi
from kernel_access_cdk.stacks import PartnerAccountStack
from kernel_access_cdk.vending import CredentialVendingService

from tests.infra.conftest import deployed_resources, load_cdk_context, of_type

PARTNERS = (
    PartnerConfig("alpha", "444444444444", True, "us-east-1"),
    PartnerConfig("beta", "555555555555", False, "us-east-1", "beta-external-id-1"),
    PartnerConfig("gamma", "666666666666", False, "us-east-1", "gamma-external-id-2"),
)


def feature_flags() -> dict[str, Any]:
    """cdk.json's feature flags without the example configuration."""
    return {k: v for k, v in load_cdk_context().items() if k != "kernel-access"}


@pytest.fixture(scope="module")
def custom() -> dict[str, Any]:
    """One stack exercising the options the example config does not use (synthesised once)."""
    app = App(context=feature_flags())
    stack = Stack(app, "Custom", env={"account": "111111111111", "region": "eu-west-1"})
    boundary = iam.ManagedPolicy(
        stack, "Boundary", statements=[iam.PolicyStatement(actions=["execute-api:Invoke"], resources=["*"])]
    )
    roles = KernelAccessRoles(
        stack,
        "Roles",
        partners=PARTNERS,
        organization_id="o-abcdefghij",
        name_suffix="-staging",
        permissions_boundary=boundary,
    )
    key = kms.Key(stack, "AuditKey", enable_key_rotation=True)
    audit = AuditTable(stack, "Audit", encryption_key=key)
    api = KernelServiceApi(stack, "Service", throttling_rate_limit=7, throttling_burst_limit=9)
    api.add_http_proxy_route("GET", "/orders/{id}", "https://backend.example.com/orders/{id}")
    api.add_http_proxy_route("POST", "/orders", "https://backend.example.com/orders")
    reader = iam.Role(stack, "Reader", assumed_by=iam.AccountPrincipal("111111111111"))
    api.grant_invoke(reader, routes=[("GET", "/orders/{id}")])
    writer = iam.Role(stack, "Writer", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    audit.grant_append(writer)
    CredentialVendingService(
        stack,
        "Vending",
        kernel_roles=roles,
        policy_document={"version": "1", "partners": {}, "rules": []},
        audit_table=audit,
        reserved_concurrent_executions=5,
        memory_size=1024,
        powertools_layer_version=99,
        name_suffix="-staging",
        policy_key="staging/vending/policy.json",
    )
    PartnerAccountStack(
        app,
        "Partner",
        partner=PARTNERS[1],
        kernel_account="111111111111",
        kernel_region="eu-west-1",
        name_suffix="-staging",
        vending_api_url="https://abc123.execute-api.eu-west-1.amazonaws.com/",
        workload_principal=iam.AccountPrincipal("555555555555"),
    )
    assembly = app.synth()
    template: dict[str, Any] = assembly.get_stack_by_name("Custom").template
    # External partners' roles are in nested stacks: the account's resources as deployed.
    template["Resources"] = deployed_resources(template, Path(assembly.directory))
    template["partner"] = assembly.get_stack_by_name("Partner").template
    return template


def _role_props(template: dict[str, Any], name: str) -> dict[str, Any]:
    return next(
        r["Properties"]
        for r in of_type(template["Resources"], "AWS::IAM::Role").values()
        if r["Properties"].get("RoleName") == name
    )


def test_one_role_per_external_partner_with_its_own_external_id(custom: dict[str, Any]) -> None:
    found = []
    for partner, account, external_id in (
        ("beta", "555555555555", "beta-external-id-1"),
        ("gamma", "666666666666", "gamma-external-id-2"),
    ):
        role = _role_props(custom, f"kernel-access-external-staging-{partner}")
        (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
        found.append((statement["Principal"]["AWS"], statement["Condition"]["StringEquals"]))
        assert found[-1] == (f"arn:aws:iam::{account}:root", {"sts:ExternalId": external_id})
        assert statement["Condition"]["StringLike"] == {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"}


def test_suffix_and_permissions_boundary(custom: dict[str, Any]) -> None:
    for name in (
        "kernel-access-staging",
        "kernel-access-external-staging-beta",
        "kernel-access-external-staging-gamma",
    ):
        role = _role_props(custom, name)
        assert role["PermissionsBoundary"]["Ref"].startswith("Boundary")
        assert role["MaxSessionDuration"] == 3600


def test_http_proxy_routes_overwrite_identity_headers(custom: dict[str, Any]) -> None:
    integrations = {
        n: r
        for n, r in of_type(custom["Resources"], "AWS::ApiGatewayV2::Integration").items()
        if n.startswith("Service")
    }
    assert len(integrations) == 2
    for integration in integrations.values():
        parameters = integration["Properties"]["RequestParameters"]
        assert {k: v for k, v in parameters.items() if k.startswith("overwrite:")} == {
            f"overwrite:header.{CALLER_ARN_HEADER}": "$context.identity.userArn",
            f"overwrite:header.{CALLER_ACCOUNT_HEADER}": "$context.identity.accountId",
        }
        # every other spelling a WSGI-style backend reads as the same header is removed
        # (API Gateway matches header names case-insensitively, so case needs no entry)
        assert {k for k in parameters if k.startswith("remove:")} == {
            f"remove:header.{spelling}"
            for spelling in (
                "x_kernel_caller_arn",
                "x-kernel_caller_arn",
                "x_kernel-caller_arn",
                "x_kernel_caller-arn",
                "x-kernel-caller_arn",
                "x-kernel_caller-arn",
                "x_kernel-caller-arn",
                "x_kernel_caller_account",
                "x-kernel_caller_account",
                "x_kernel-caller_account",
                "x_kernel_caller-account",
                "x-kernel-caller_account",
                "x-kernel_caller-account",
                "x_kernel-caller-account",
            )
        }
    for route in of_type(custom["Resources"], "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"]["AuthorizationType"] == "AWS_IAM"
    (stage,) = [
        r
        for n, r in of_type(custom["Resources"], "AWS::ApiGatewayV2::Stage").items()
        if n.startswith("Service")
    ]
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": 9,
        "ThrottlingRateLimit": 7,
    }


def _wsgi_environ_of_forwarded_request(
    request_parameters: dict[str, str], client_headers: list[tuple[str, str]]
):
    """Forward one request through the local gateway's HTTP_PROXY emulation (with the template's
    parameter mappings) to a backend that names headers the way WSGI does (``HTTP_`` + upper
    case, ``-`` → ``_``). Every value received under each WSGI name is kept: which duplicate a
    real server keeps (first, last, comma-joined) differs between servers, so any forged
    duplicate is a failure."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from kernel_access.local.gateway import Gateway, Integration

    environ: dict[str, list[str]] = {}

    class Backend(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            for name, value in self.headers.items():
                environ.setdefault("HTTP_" + name.upper().replace("-", "_"), []).append(value)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gateway = Gateway(
            [],
            account_id="111111111111",
            region="us-east-1",
            lookup_key=lambda _k: None,
            principal_org_id=None,
            runner=None,  # type: ignore[arg-type]
        )
        integration = Integration(
            kind="HTTP_PROXY",
            function=None,
            uri=f"http://127.0.0.1:{server.server_address[1]}/",
            payload_version="1.0",
            request_parameters=request_parameters,
            timeout_ms=5000,
        )
        event = {
            "requestContext": {
                "authorizer": {
                    "iam": {
                        "userArn": "arn:aws:sts::222222222222:assumed-role/r/real",
                        "accountId": "222222222222",
                    }
                },
                "http": {"sourceIp": "127.0.0.1"},
                "requestId": "req-1",
            }
        }
        reply = gateway._proxy(
            integration=integration,
            method="GET",
            raw_query="",
            path_params={},
            headers=client_headers,
            body=b"",
            event=event,
        )
        assert reply.status == 200
    finally:
        server.shutdown()
        server.server_close()
    return environ


@pytest.mark.parametrize(
    "forged_name",
    [
        "x_kernel_caller_arn",
        "X_KERNEL_CALLER_ARN",
        "X-Kernel_Caller-Arn",
        "x-kernel-caller_arn",
        "X-KERNEL-CALLER-ARN",
    ],
)
def test_forged_identity_header_spellings_never_reach_a_wsgi_backend(
    custom: dict[str, Any], forged_name: str
) -> None:
    (integration, *_) = [
        r
        for n, r in of_type(custom["Resources"], "AWS::ApiGatewayV2::Integration").items()
        if n.startswith("Service")
    ]
    environ = _wsgi_environ_of_forwarded_request(
        integration["Properties"]["RequestParameters"],
        [
            (forged_name, "arn:aws:sts::999999999999:assumed-role/r/forged"),
            ("x_kernel_caller_account", "999999999999"),
        ],
    )
    assert environ["HTTP_X_KERNEL_CALLER_ARN"] == ["arn:aws:sts::222222222222:assumed-role/r/real"]
    assert environ["HTTP_X_KERNEL_CALLER_ACCOUNT"] == ["222222222222"]
    assert "999999999999" not in json.dumps(environ)


def test_grant_invoke_only_on_the_named_route(custom: dict[str, Any]) -> None:
    policies = [
        p["Properties"]
        for p in of_type(custom["Resources"], "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"][0]["Ref"].startswith("Reader")
    ]
    (policy,) = policies
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"]["Fn::Join"][1][2] == "/*/GET/orders/{id}"


def test_grant_append_is_put_item_only_plus_the_cmk(custom: dict[str, Any]) -> None:
    (policy,) = [
        p["Properties"]
        for p in of_type(custom["Resources"], "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"][0]["Ref"].startswith("Writer")
    ]
    actions = sorted(
        a
        for s in policy["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    )
    assert actions == ["dynamodb:PutItem", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"]
    (table,) = [
        r for n, r in of_type(custom["Resources"], "AWS::DynamoDB::Table").items() if n.startswith("Audit")
    ]
    sse = table["Properties"]["SSESpecification"]
    assert sse["SSEEnabled"] is True
    assert sse["SSEType"] == "KMS"
    assert sse["KMSMasterKeyId"]["Fn::GetAtt"][0].startswith("AuditKey")


def test_vending_options_and_no_codeartifact(custom: dict[str, Any]) -> None:
    (function,) = [
        r["Properties"]
        for n, r in of_type(custom["Resources"], "AWS::Lambda::Function").items()
        if n.startswith("Vending")
    ]
    assert function["ReservedConcurrentExecutions"] == 5
    assert function["MemorySize"] == 1024
    assert function["Layers"] == [
        "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:99"
    ]
    variables = function["Environment"]["Variables"]
    assert not any("CODEARTIFACT" in name for name in variables)
    assert variables["KERNEL_ACCESS_IN_ORG_ROLE_NAME"] == "kernel-access-staging"
    assert variables["KERNEL_ACCESS_EXTERNAL_ROLE_NAME"] == "kernel-access-external-staging"
    assert variables["KERNEL_ACCESS_TARGET_ROLES"] == "{}"
    # Its own config bucket (none was passed) and the policy under the key given.
    (bucket_id,) = of_type(custom["Resources"], "AWS::S3::Bucket")
    assert variables["KERNEL_ACCESS_CONFIG_BUCKET"] == {"Ref": bucket_id}
    assert variables["KERNEL_ACCESS_POLICY_OBJECT_KEY"] == "staging/vending/policy.json"
    assert of_type(custom["Resources"], "AWS::SSM::Parameter") == {}


def test_partner_stack_with_vending_url_and_custom_principal(custom: dict[str, Any]) -> None:
    resources = custom["partner"]["Resources"]
    names = {
        p["Properties"]["Name"]: p["Properties"]["Value"]
        for p in of_type(resources, "AWS::SSM::Parameter").values()
    }
    assert names["/kernel-access/vending-api-url"] == "https://abc123.execute-api.eu-west-1.amazonaws.com/"
    assert (
        names["/kernel-access/kernel-role-arn"]
        == "arn:aws:iam::111111111111:role/kernel-access-external-staging-beta"
    )
    assert names["/kernel-access/external-id"] == "beta-external-id-1"
    (role,) = of_type(resources, "AWS::IAM::Role").values()
    assert role["Properties"]["RoleName"] == "kernel-access-client-staging"
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::555555555555:root"}


def test_grant_invoke_rejects_unknown_routes() -> None:
    stack = Stack(App(), "S")
    api = KernelServiceApi(stack, "Api")
    role = iam.Role(stack, "R", assumed_by=iam.AccountPrincipal("111111111111"))
    with pytest.raises(ValueError, match="no routes"):
        api.grant_invoke(role)
    api.add_lambda_route(
        "GET",
        "/x",
        lambda_.Function(
            stack,
            "F",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(e, c): return 1"),
        ),
    )
    with pytest.raises(ValueError, match="not defined"):
        api.grant_invoke(role, routes=[("POST", "/x")])
    with pytest.raises(ValueError, match="already defined"):
        api.add_http_proxy_route("GET", "/x", "https://example.com")


def test_kernel_access_roles_need_partners() -> None:
    with pytest.raises(ValueError, match="partners"):
        KernelAccessRoles(Stack(App(), "S"), "Roles", partners=(), organization_id="o-abcdefghij")


# --- the Lambda asset -----------------------------------------------------------------------------


def test_asset_holds_only_kernel_access_sources(tmp_path: Path) -> None:
    staged = stage_package(tmp_path)
    assert staged.files
    for name in staged.files:
        assert name.startswith("kernel_access/")
        assert name.endswith((".py", "py.typed"))
        assert "__pycache__" not in name
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(staged.files)
    assert "kernel_access/handlers/vending.py" in staged.files
    assert not any(name.startswith(("kernel_access_cdk", "tests")) for name in staged.files)


def test_asset_hash_is_stable_and_content_addressed(tmp_path: Path) -> None:
    first = stage_package(tmp_path / "a")
    second = stage_package(tmp_path / "b")
    assert first.sha256 == second.sha256
    assert first.files == second.files
    assert package_directory() == Path(kernel_access.__file__).parent


def test_asset_skips_byte_code_and_hashes_content_not_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src" / "fakepkg"
    (source / "__pycache__").mkdir(parents=True)
    (source / "sub").mkdir()
    (source / "handlers").mkdir()
    (source / "__init__.py").write_text("X = 1\n")
    (source / "handlers" / "__init__.py").write_text("")
    (source / "handlers" / "entry.py").write_text("def handler():\n    from fakepkg.sub import mod\n")
    (source / "sub" / "mod.py").write_text("Y = 2\n")
    (source / "unused.py").write_text("Z = 3\n")  # imported by no handler: not shipped
    (source / "py.typed").write_text("")
    (source / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    (source / "notes.txt").write_text("not code")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    importlib.invalidate_caches()
    first = stage_package(tmp_path / "a", "fakepkg")
    assert first.files == (
        "fakepkg/__init__.py",
        "fakepkg/handlers/__init__.py",
        "fakepkg/handlers/entry.py",
        "fakepkg/py.typed",
        "fakepkg/sub/mod.py",
    )
    os.utime(source / "__init__.py", (1, 1))
    assert stage_package(tmp_path / "b", "fakepkg").sha256 == first.sha256
    (source / "sub" / "mod.py").write_text("Y = 3\n")
    assert stage_package(tmp_path / "c", "fakepkg").sha256 != first.sha256


def test_vending_function_uses_the_staged_asset(cloud_assembly: Path, templates: dict[str, Any]) -> None:
    function = next(
        r
        for n, r in of_type(templates["KernelAccessKernel"]["Resources"], "AWS::Lambda::Function").items()
        if n.startswith("Vending")
    )
    asset_dir = cloud_assembly / function["Metadata"]["aws:asset:path"]
    files = sorted(p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file())
    staged = stage_package(cloud_assembly.parent / "restage")
    assert files == sorted(staged.files)
    assert json.dumps(function).count("kernel_access.handlers.vending.handler") == 1


def test_an_invalid_policy_document_fails_at_synth_listing_every_error() -> None:
    """What the construct deploys is what the Lambda's parser accepts: never a policy it would refuse."""
    stack = Stack(App(), "Invalid", env={"account": "111111111111", "region": "eu-west-1"})
    roles = KernelAccessRoles(stack, "Roles", partners=PARTNERS, organization_id="o-abcdefghij")
    document = {
        "version": "1",
        "partners": {},
        "rules": [{"id": "a", "effect": "maybe"}, {"id": "b", "effect": "allow", "partners": ["nobody"]}],
    }
    with pytest.raises(ValueError, match="invalid policy_document") as info:
        CredentialVendingService(stack, "Vending", kernel_roles=roles, policy_document=document)
    assert "'a'" in str(info.value)
    assert "nobody" in str(info.value)


def test_every_construct_the_reference_documents_is_exported_by_the_package() -> None:
    """docs/constructs.md has one section per construct (``## `Name` ``); each is importable from
    ``kernel_access_cdk`` itself, as the examples there import it."""
    import re

    import kernel_access_cdk

    page = (Path(__file__).resolve().parents[2] / "docs" / "constructs.md").read_text()
    documented = {
        name for heading in re.findall(r"^## (.+)$", page, re.M) for name in re.findall(r"`(\w+)`", heading)
    }
    assert len(documented) >= 10
    assert documented <= set(kernel_access_cdk.__all__)
    assert all(hasattr(kernel_access_cdk, name) for name in documented)
