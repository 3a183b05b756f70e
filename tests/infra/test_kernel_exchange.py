"""The OIDC token exchange wired into the kernel stack from cdk.json's ``exchange`` section.

Template assertions on the session synth (what `cdk synth` produces) for every security-relevant
property: one JWT authorizer per issuer, one route per issuer on that authorizer, IAM limited to
the roles the trust policies name; plus config errors that name the field, and "no section = no
exchange".
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from kernel_access import contract, settings
from kernel_access.exchange import parse_exchange_config
from kernel_access.exchange.config import default_audience
from kernel_access.exchange.minting import SESSION_TAG_KEYS
from kernel_access_cdk.config import ConfigError, load_config
from kernel_access_cdk.stacks import KernelAccountStack

from tests.infra.conftest import KERNEL_STACK, deployed_documents, of_type

Mutation = Callable[[dict[str, Any]], None]
GITHUB = "https://token.actions.githubusercontent.com"


def _exchange_config(cdk_context: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = cdk_context["kernel-access"]["exchange"]
    return section


def _exchange(resources: dict[str, Any], cfn_type: str) -> dict[str, Any]:
    return {n: r for n, r in of_type(resources, cfn_type).items() if n.startswith("TokenExchange")}


def _role_logical_id(resources: dict[str, Any], role_name: str) -> str:
    [logical_id] = [
        n
        for n, r in of_type(resources, "AWS::IAM::Role").items()
        if r["Properties"].get("RoleName") == role_name
    ]
    return logical_id


def _exchange_function(resources: dict[str, Any]) -> dict[str, Any]:
    [function] = _exchange(resources, "AWS::Lambda::Function").values()
    assert function["Properties"]["Handler"] == contract.EXCHANGE_HANDLER
    return function


def _exchange_statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    role = _exchange_function(resources)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert not any(
        r["Properties"].get("ManagedPolicyArns")
        for n, r in of_type(resources, "AWS::IAM::Role").items()
        if n == role
    )
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- the wired construct ----------------------------------------------------------------------


def test_one_jwt_authorizer_per_configured_issuer(kernel: Template, cdk_context: dict[str, Any]) -> None:
    issuers = _exchange_config(cdk_context)["issuers"]
    kernel.resource_count_is("AWS::ApiGatewayV2::Authorizer", len(issuers))
    raw = cdk_context["kernel-access"]
    # cdk.json lists no audiences: each issuer gets the deployment's own (never a shared one).
    own = default_audience(raw["kernel_account"], raw["region"], raw.get("name_suffix", ""))
    for name, issuer in issuers.items():
        assert issuer["issuer"].startswith("https://")
        kernel.has_resource_properties(
            "AWS::ApiGatewayV2::Authorizer",
            {
                "AuthorizerType": "JWT",
                "Name": f"oidc-{name}",
                "IdentitySource": ["$request.header.Authorization"],
                "JwtConfiguration": {"Issuer": issuer["issuer"], "Audience": issuer.get("audiences", [own])},
            },
        )
    outputs = kernel.find_outputs("*")
    assert [o["Value"] for n, o in outputs.items() if n.startswith("TokenExchangeDefaultAudience")] == [own]


def test_one_post_route_per_issuer_on_its_own_authorizer_and_the_exchange_api(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    issuers = _exchange_config(cdk_context)["issuers"]
    [api_id] = _exchange(kernel_resources, "AWS::ApiGatewayV2::Api")
    authorizers = {
        r["Properties"]["Name"]: n
        for n, r in of_type(kernel_resources, "AWS::ApiGatewayV2::Authorizer").items()
    }
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in of_type(kernel_resources, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["AuthorizationType"] == "JWT"
    }
    assert set(routes) == {contract.exchange_route(name).route_key for name in issuers}
    for name in issuers:
        route = routes[contract.exchange_route(name).route_key]
        assert route["AuthorizerId"] == {"Ref": authorizers[f"oidc-{name}"]}
        assert route["ApiId"] == {"Ref": api_id}
    # The JWT routes live on their own API, never on the IAM-authorized vending API.
    for authorizer in of_type(kernel_resources, "AWS::ApiGatewayV2::Authorizer").values():
        assert authorizer["Properties"]["ApiId"] == {"Ref": api_id}


def test_exchange_may_assume_only_the_roles_its_trust_policies_name(kernel_resources: dict[str, Any]) -> None:
    """cdk.json: `deployer` -> kernel-deployer, `packages` -> CodeArtifact read. Not kernel-reader
    (no exchange target), not the publisher minting role (no policy grants publish)."""
    statements = _exchange_statements(kernel_resources)
    assume = [s for s in statements if any(a.startswith("sts:") for a in _as_list(s["Action"]))]
    assert len(assume) == 2
    assert sorted(_as_list(assume[0]["Action"])) == ["sts:AssumeRole", "sts:SetSourceIdentity"]
    # Session tags (what revocation keys on): the exchange's own keys only, on the same roles.
    assert assume[1]["Action"] == "sts:TagSession"
    assert assume[1]["Resource"] == assume[0]["Resource"]
    assert assume[1]["Condition"] == {"ForAllValues:StringEquals": {"aws:TagKeys": list(SESSION_TAG_KEYS)}}
    reached = sorted(r["Fn::GetAtt"][0] for r in _as_list(assume[0]["Resource"]))
    assert reached == sorted(
        [
            _role_logical_id(kernel_resources, "kernel-deployer"),
            _role_logical_id(kernel_resources, "kernel-access-codeartifact-reader"),
        ]
    )
    # Nothing else with a wildcard resource but X-Ray (which has no resource-level permissions).
    for statement in statements:
        if "*" in _as_list(statement["Resource"]):
            assert sorted(_as_list(statement["Action"])) == [
                "xray:PutTelemetryRecords",
                "xray:PutTraceSegments",
            ]
        assert not any(a.startswith(("iam:", "codeartifact:")) for a in _as_list(statement["Action"]))


def test_exchange_writes_shared_audit_and_rate_limit_tables_and_its_own(
    kernel_resources: dict[str, Any],
) -> None:
    statements = _exchange_statements(kernel_resources)

    def resources_of(action: str) -> list[str]:
        return sorted(
            r["Fn::GetAtt"][0]
            for s in statements
            if action in _as_list(s["Action"])
            for r in _as_list(s["Resource"])
            if isinstance(r, dict) and "Fn::GetAtt" in r
        )

    audit = next(n for n in of_type(kernel_resources, "AWS::DynamoDB::Table") if n.startswith("AuditTable"))
    rate = next(
        n for n in of_type(kernel_resources, "AWS::DynamoDB::Table") if n.startswith("VendingRateLimit")
    )
    own = sorted(_exchange(kernel_resources, "AWS::DynamoDB::Table"))
    assert resources_of("dynamodb:PutItem") == sorted([audit, *own])
    assert resources_of("dynamodb:UpdateItem") == [rate]
    assert not any(
        a in ("dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:*")
        for s in statements
        for a in _as_list(s["Action"])
    )


def test_exchange_function_environment_reuses_shared_resources(
    kernel_resources: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    variables = _exchange_function(kernel_resources)["Properties"]["Environment"]["Variables"]
    assert variables[settings.AUDIT_TABLE_NAME]["Ref"].startswith("AuditTable")
    assert variables[settings.RATE_LIMIT_TABLE_NAME]["Ref"].startswith("VendingRateLimitTable")
    assert variables[settings.REPLAY_TABLE_NAME]["Ref"].startswith("TokenExchangeReplayTable")
    assert variables[settings.ISSUED_TOKENS_TABLE_NAME]["Ref"].startswith("TokenExchangeIssuedTokensTable")
    # The vending service's revocation table: one kill switch for both (read-only here).
    assert variables[settings.REVOCATION_TABLE_NAME]["Ref"].startswith("VendingRevocationTable")
    reader = _role_logical_id(kernel_resources, "kernel-access-codeartifact-reader")
    assert variables[settings.CODEARTIFACT_READER_ROLE_ARN] == {"Fn::GetAtt": [reader, "Arn"]}
    assert settings.CODEARTIFACT_PUBLISHER_ROLE_ARN not in variables
    assert variables[settings.CODEARTIFACT_DOMAIN_OWNER] == cdk_context["kernel-access"]["kernel_account"]
    limits = _exchange_config(cdk_context)["rate_limit"]
    assert variables[settings.RATE_LIMIT_REQUESTS] == str(limits["requests"])
    assert variables[settings.RATE_LIMIT_WINDOW_SECONDS] == str(limits["window_seconds"])
    assert variables[settings.POLICY_MAX_STALENESS_SECONDS] == "300"
    # No CodeArtifact roles of the exchange's own: the registry's are reused.
    assert not [
        r
        for r in of_type(kernel_resources, "AWS::IAM::Role").values()
        if "exchange-codeartifact" in str(r["Properties"].get("RoleName", ""))
    ]


def test_exchange_object_holds_the_cdk_json_document_with_role_arns(
    cloud_assembly: Path, templates: dict[str, dict[str, Any]], cdk_context: dict[str, Any]
) -> None:
    document = deployed_documents(cloud_assembly, templates[KERNEL_STACK])[contract.EXCHANGE_CONFIG_KEY]
    deployer = _role_logical_id(templates[KERNEL_STACK]["Resources"], "kernel-deployer")
    # The role ARN is a deploy-time value the deployment substitutes into the staged text.
    assert json.loads(document["targets"]["deployer"]["role_arn"]) == {"Fn::GetAtt": [deployer, "Arn"]}
    placeholder = "arn:aws:iam::111111111111:role/kernel-deployer"
    document["targets"]["deployer"]["role_arn"] = placeholder
    expected = {
        k: v for k, v in _exchange_config(cdk_context).items() if k not in ("rate_limit", "api_throttling")
    }
    expected = copy.deepcopy(expected)
    expected["targets"]["deployer"] = {"type": "aws_role", "role_arn": placeholder}
    raw = cdk_context["kernel-access"]
    own = default_audience(raw["kernel_account"], raw["region"], raw.get("name_suffix", ""))
    expected["issuers"]["github"]["audiences"] = [own]
    assert document == expected
    parse_exchange_config(document)  # what the Lambda will parse


def test_exchange_tables_replay_and_issued_tokens(kernel_resources: dict[str, Any]) -> None:
    tables = {n: r["Properties"] for n, r in _exchange(kernel_resources, "AWS::DynamoDB::Table").items()}
    keys = sorted(p["KeySchema"][0]["AttributeName"] for p in tables.values())
    assert keys == ["fingerprint", "jti"]
    for props in tables.values():
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_exchange_url_is_an_output(templates: dict[str, dict[str, Any]]) -> None:
    outputs = templates["KernelAccessKernel"]["Outputs"]
    assert any(name.startswith("TokenExchangeApiUrl") for name in outputs)


def test_no_exchange_section_means_no_exchange(cdk_context: dict[str, Any]) -> None:
    raw = copy.deepcopy(cdk_context["kernel-access"])
    del raw["exchange"]
    config = load_config(raw)
    assert config.exchange is None
    app = App(context={k: v for k, v in cdk_context.items() if k != "kernel-access"})
    stack = KernelAccountStack(
        app, "NoExchange", config=config, example_service=False, code=lambda_.Code.from_inline("x = 1")
    )
    assert stack.token_exchange is None
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::ApiGatewayV2::Authorizer", 0)
    for function in template.find_resources("AWS::Lambda::Function").values():
        assert function["Properties"]["Handler"] != contract.EXCHANGE_HANDLER
    for role in template.find_resources("AWS::IAM::Role").values():
        sids = [s.get("Sid") for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
        assert "TokenExchangeOnly" not in sids


# --- configuration errors name the field ------------------------------------------------------


def _set(path: list[str | int], value: Any) -> Mutation:
    def mutate(config: dict[str, Any]) -> None:
        node: Any = config["exchange"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: list[str | int]) -> Mutation:
    def mutate(config: dict[str, Any]) -> None:
        node: Any = config["exchange"]
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(
            _set(["issuers", "github", "issuer"], "http://token.actions.githubusercontent.com"),
            "exchange.issuers.github.issuer",
            id="issuer-not-https",
        ),
        pytest.param(
            _set(["issuers", "github", "audiences"], []),
            "exchange.issuers.github.audiences",
            id="no-audiences",
        ),
        pytest.param(
            _set(["issuers", "github", "audiences"], ["sts.amazonaws.com"]),
            "exchange.issuers.github.audiences[0]",
            id="shared-audience",
        ),
        pytest.param(
            _delete(["issuers", "github", "max_permissions"]),
            "exchange.issuers.github.max_permissions",
            id="max-permissions-missing",
        ),
        pytest.param(
            _set(["issuers", "github", "required_claims"], {"sub": "repo:(unclosed"}),
            "exchange.issuers.github.required_claims.sub",
            id="bad-required-claim-regex",
        ),
        pytest.param(_set(["issuers"], {}), "exchange.issuers", id="no-issuers"),
        pytest.param(
            _set(["issuers", "GitHub"], {"issuer": GITHUB, "audiences": ["x"], "max_permissions": []}),
            "exchange.issuers.GitHub",
            id="issuer-name",
        ),
        pytest.param(_set(["colour"], "red"), "exchange.colour", id="unknown-field"),
        pytest.param(
            _set(["targets", "deployer", "role"], "kernel-admin"),
            "exchange.targets.deployer.role",
            id="unknown-target-role",
        ),
        pytest.param(
            _set(["targets", "deployer", "role_arn"], "arn:aws:iam::111111111111:role/x"),
            "exchange.targets.deployer.role",
            id="role-and-role-arn",
        ),
        pytest.param(
            _set(["targets", "packages", "domain"], "elsewhere"),
            "exchange.targets.packages.domain",
            id="foreign-codeartifact-domain",
        ),
        pytest.param(
            _set(["targets", "packages", "domain_owner"], "999999999999"),
            "exchange.targets.packages.domain_owner",
            id="foreign-domain-owner",
        ),
        pytest.param(
            _set(["trust_policies", "deployer", 0, "issuer"], "https://gitlab.example.com"),
            "exchange.trust_policies.deployer[0].issuer",
            id="policy-issuer-not-configured",
        ),
        pytest.param(
            _set(["trust_policies", "deployer", 0, "subject_pattern"], "repo:.*"),
            "exchange.trust_policies.deployer[0].subject",
            id="subject-and-subject-pattern",
        ),
        pytest.param(
            _set(["trust_policies", "deployer", 0, "token_ttl"], 7200),
            "exchange.trust_policies.deployer[0].token_ttl",
            id="ttl-over-role-chaining-cap",
        ),
        pytest.param(
            _set(["trust_policies", "packages", 0, "permissions"], ["publish"]),
            "exchange.trust_policies.packages[0].permissions[0]",
            id="publish-on-read-target",
        ),
        pytest.param(
            _set(["trust_policies", "nowhere"], [{"name": "x"}]),
            "exchange.trust_policies.nowhere",
            id="policy-for-unknown-target",
        ),
        pytest.param(
            _set(["rate_limit", "requests"], 0), "exchange.rate_limit.requests", id="rate-limit-range"
        ),
        pytest.param(
            _set(["api_throttling", "burst"], 5),
            "exchange.api_throttling.burst",
            id="unknown-throttling-field",
        ),
    ],
)
def test_exchange_errors_name_the_field(context_copy: dict[str, Any], mutate: Mutation, field: str) -> None:
    config = context_copy["kernel-access"]
    mutate(config)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.field == field
    assert field in str(raised.value)


def test_codeartifact_target_needs_the_registry(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    del config["codeartifact"]
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.field == "exchange.targets.packages"
    assert "codeartifact" in raised.value.message


def test_exchange_settings_from_the_example(cdk_context: dict[str, Any]) -> None:
    exchange = load_config(cdk_context["kernel-access"]).exchange
    assert exchange is not None
    assert exchange.codeartifact_levels == ("read",)
    assert (exchange.rate_limit_requests, exchange.rate_limit_window_seconds) == (20, 60)
    assert (exchange.api_throttling_rate_limit, exchange.api_throttling_burst_limit) == (20, 40)
    # The document keeps `"role": NAME` (the construct substitutes the token ARN) and no settings.
    assert exchange.document["targets"]["deployer"] == {"type": "aws_role", "role": "kernel-deployer"}
    assert set(exchange.document) == {"version", "issuers", "trust_policies", "targets"}
