"""``TokenExchange`` on a small stack: authorizers, routes, IAM least privilege, tables, cdk-nag."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template
from kernel_access import contract, settings
from kernel_access.exchange.minting import SESSION_TAG_KEYS
from kernel_access_cdk.audit_table import AuditTable
from kernel_access_cdk.nag import register_nag
from kernel_access_cdk.roles import set_trust_statements
from kernel_access_cdk.token_exchange import TokenExchange

from tests.infra.conftest import stack_documents
from tests.runtime.exchange.conftest import AUDIENCE, DEPLOY_ROLE, GITHUB, GITLAB, example_config

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def revocation_table(stack: Stack) -> dynamodb.Table:
    return dynamodb.Table(
        stack,
        "Revocation",
        partition_key=dynamodb.Attribute(name="subject", type=dynamodb.AttributeType.STRING),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
    )


def build(
    config: dict[str, Any] | None = None, *, nag: bool = False, **props: Any
) -> tuple[App, Stack, TokenExchange]:
    app = App()
    if nag:
        register_nag(app)
    stack = Stack(app, "ExchangeTest", env={"account": "111111111111", "region": "us-east-1"})
    audit = AuditTable(stack, "Audit")
    rate = dynamodb.Table(
        stack,
        "Rate",
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute="expires_at",
    )
    reader = iam.Role(stack, "Reader", assumed_by=iam.AccountRootPrincipal())
    publisher = iam.Role(stack, "Publisher", assumed_by=iam.AccountRootPrincipal())
    exchange = TokenExchange(
        stack,
        "Exchange",
        exchange_config=config or example_config(),
        audit_table=audit,
        rate_limit_table=rate,
        revocation_table=revocation_table(stack),
        codeartifact_reader_role=reader,
        codeartifact_publisher_role=publisher,
        codeartifact_domain_owner="111111111111",
        code=CODE,
        **props,
    )
    return app, stack, exchange


@pytest.fixture(scope="module")
def synthesized() -> tuple[Stack, TokenExchange, Template]:
    _app, stack, exchange = build()
    return stack, exchange, Template.from_stack(stack)


def test_one_jwt_authorizer_per_issuer(synthesized: tuple[Stack, TokenExchange, Template]) -> None:
    _, _, template = synthesized
    template.resource_count_is("AWS::ApiGatewayV2::Authorizer", 2)
    for name, issuer, audiences in (
        ("github", GITHUB, [AUDIENCE, "kernel-access"]),
        ("gitlab", GITLAB, ["kernel-access"]),
    ):
        template.has_resource_properties(
            "AWS::ApiGatewayV2::Authorizer",
            {
                "AuthorizerType": "JWT",
                "Name": f"oidc-{name}",
                "IdentitySource": ["$request.header.Authorization"],
                "JwtConfiguration": {"Issuer": issuer, "Audience": audiences},
            },
        )


def test_one_post_route_per_issuer_with_its_own_authorizer(
    synthesized: tuple[Stack, TokenExchange, Template],
) -> None:
    stack, exchange, template = synthesized
    routes = template.find_resources("AWS::ApiGatewayV2::Route")
    keys = sorted(r["Properties"]["RouteKey"] for r in routes.values())
    assert keys == [contract.exchange_route("github").route_key, contract.exchange_route("gitlab").route_key]
    for name, route in exchange.routes.items():
        props = template.to_json()["Resources"][stack.get_logical_id(route.node.default_child)]["Properties"]
        assert props["AuthorizationType"] == "JWT"
        assert props["AuthorizerId"] == {"Ref": _authorizer_logical_id(template, f"oidc-{name}")}


def _authorizer_logical_id(template: Template, name: str) -> str:
    found = template.find_resources("AWS::ApiGatewayV2::Authorizer", {"Properties": {"Name": name}})
    [logical_id] = found
    return logical_id


def test_function_mirrors_the_vending_function(synthesized: tuple[Stack, TokenExchange, Template]) -> None:
    _, _, template = synthesized
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": contract.EXCHANGE_HANDLER,
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        settings.CONFIG_BUCKET: Match.any_value(),
                        settings.EXCHANGE_CONFIG_OBJECT_KEY: contract.EXCHANGE_CONFIG_KEY,
                        settings.REPLAY_TABLE_NAME: Match.any_value(),
                        settings.ISSUED_TOKENS_TABLE_NAME: Match.any_value(),
                        settings.AUDIT_TABLE_NAME: Match.any_value(),
                        settings.RATE_LIMIT_TABLE_NAME: Match.any_value(),
                        settings.REVOCATION_TABLE_NAME: Match.any_value(),
                        settings.CODEARTIFACT_READER_ROLE_ARN: Match.any_value(),
                        settings.CODEARTIFACT_PUBLISHER_ROLE_ARN: Match.any_value(),
                        settings.CODEARTIFACT_DOMAIN_OWNER: "111111111111",
                    }
                )
            },
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 365})
    [function] = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": contract.EXCHANGE_HANDLER}}
    ).values()
    assert "AWSLambdaPowertoolsPythonV3-python313-arm64" in json.dumps(function["Properties"]["Layers"])


def test_tables_have_ttl_encryption_and_pitr(synthesized: tuple[Stack, TokenExchange, Template]) -> None:
    _, _, template = synthesized
    for key in ("jti", "fingerprint"):
        template.has_resource_properties(
            "AWS::DynamoDB::Table",
            {
                "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "BillingMode": "PAY_PER_REQUEST",
            },
        )


def test_config_object_holds_the_validated_configuration(
    synthesized: tuple[Stack, TokenExchange, Template],
) -> None:
    stack, _, template = synthesized
    assert template.find_resources("AWS::SSM::Parameter") == {}
    documents = stack_documents(stack)
    assert list(documents) == [contract.EXCHANGE_CONFIG_KEY]
    document = documents[contract.EXCHANGE_CONFIG_KEY]
    assert document["issuers"]["github"]["issuer"] == GITHUB
    # Exactly the document the runtime parser validated at synth (deploy-time values aside).
    assert document == example_config()
    [bucket] = template.find_resources("AWS::S3::Bucket").values()
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    [deployment] = template.find_resources("Custom::CDKBucketDeployment").values()
    assert deployment["Properties"]["Prune"] is False


def _function_policy_statements(
    stack: Stack, exchange: TokenExchange, template: Template
) -> list[dict[str, Any]]:
    policy_id = stack.get_logical_id(
        exchange.function_role.node.find_child("DefaultPolicy").node.default_child
    )
    return template.to_json()["Resources"][policy_id]["Properties"]["PolicyDocument"]["Statement"]


def test_iam_least_privilege(synthesized: tuple[Stack, TokenExchange, Template]) -> None:
    stack, exchange, template = synthesized
    statements = _function_policy_statements(stack, exchange, template)
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(
        a.endswith("*") and a != "dynamodb:*" for a in actions if a.startswith(("sts", "dynamodb", "ssm"))
    )
    assert "dynamodb:*" not in actions
    assert "dynamodb:Scan" not in actions
    assert "dynamodb:DeleteItem" not in actions
    assume = [s for s in statements if "sts:AssumeRole" in s["Action"]]
    [statement] = assume
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    # The trust-policy target (deploy) and both minting roles; never the target without a trust policy.
    assert DEPLOY_ROLE in resources
    assert "arn:aws:iam::111111111111:role/unused" not in resources
    assert len(resources) == 3
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity"]
    # Tagging only with the exchange's own keys (revocation keys on the exchanged-token tag).
    [tagging] = [s for s in statements if s["Action"] == "sts:TagSession"]
    assert tagging["Resource"] == statement["Resource"]
    assert tagging["Condition"] == {"ForAllValues:StringEquals": {"aws:TagKeys": list(SESSION_TAG_KEYS)}}
    assert "exchanged-token" in SESSION_TAG_KEYS
    # The revocation list: read, never written, by the function.
    [revocations] = [s for s in statements if "dynamodb:BatchGetItem" in s["Action"]]
    assert sorted(revocations["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
    assert "Revocation" in json.dumps(revocations["Resource"])
    assert not any(a.startswith("ssm:") for a in actions)
    # The configuration: GetObject of its one object, nothing else of the bucket.
    [document] = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert stack.resolve(document["Resource"]) == stack.resolve(exchange.config_document.object_arn)
    assert "exchange/config.json" in json.dumps(document["Resource"])
    assert not [a for a in actions if a.startswith("s3:") and a != "s3:GetObject"]


def test_role_targets_by_key_and_read_only_configs_need_no_publisher() -> None:
    config = example_config()
    config["targets"]["deploy"] = {"type": "aws_role", "role": "deployer"}
    del config["trust_policies"]["packages"][0]  # the publish policy
    app = App()
    stack = Stack(app, "S", env={"account": "111111111111", "region": "us-east-1"})
    deployer = iam.Role(stack, "Deployer", assumed_by=iam.AccountRootPrincipal())
    # Like the vending construct's target roles: trust document written at L1, one statement.
    set_trust_statements(
        deployer,
        [
            iam.PolicyStatement(
                sid="VendingServiceOnly", actions=["sts:AssumeRole"], principals=[iam.AccountRootPrincipal()]
            )
        ],
    )
    audit = AuditTable(stack, "Audit")
    rate = dynamodb.Table(
        stack, "Rate", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    exchange = TokenExchange(
        stack,
        "Exchange",
        exchange_config=config,
        audit_table=audit,
        rate_limit_table=rate,
        revocation_table=revocation_table(stack),
        target_roles={"deployer": deployer},
        codeartifact_reader_role=iam.Role(stack, "R", assumed_by=iam.AccountRootPrincipal()),
        code=CODE,
    )
    assert exchange.config.codeartifact_levels() == ("read",)
    template = Template.from_stack(stack)
    statements = _function_policy_statements(stack, exchange, template)
    [assume] = [s for s in statements if "sts:AssumeRole" in s["Action"]]
    rendered = json.dumps(assume["Resource"])
    assert stack.get_logical_id(deployer.node.default_child) in rendered
    assert "placeholder" not in rendered
    assert "000000000000" not in rendered
    [document] = stack_documents(stack).values()
    assert "000000000000" not in json.dumps(document)  # the placeholder ARN was for validation only
    assert "Fn::GetAtt" in document["targets"]["deploy"]["role_arn"]
    # The referenced role now trusts the exchange function too, and keeps its own statement.
    trust = template.to_json()["Resources"][stack.get_logical_id(deployer.node.default_child)]["Properties"][
        "AssumeRolePolicyDocument"
    ]["Statement"]
    assert [statement["Sid"] for statement in trust] == ["VendingServiceOnly", "TokenExchangeOnly"]
    function_role_id = stack.get_logical_id(exchange.function_role.node.default_child)
    assert trust[1]["Principal"] == {"AWS": {"Fn::GetAtt": [function_role_id, "Arn"]}}
    assert sorted(trust[1]["Action"]) == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


def test_invalid_configuration_fails_at_synth_listing_every_error() -> None:
    config = example_config()
    config["issuers"]["github"]["issuer"] = "http://insecure.example.com"
    config["trust_policies"]["deploy"][0]["token_ttl"] = 99999
    with pytest.raises(ValueError) as info:
        build(config)
    message = str(info.value)
    assert "issuers.github.issuer" in message
    assert "trust_policies.deploy[0].token_ttl" in message
    config = example_config()
    config["targets"]["deploy"] = {"type": "aws_role", "role": "nope"}
    with pytest.raises(ValueError, match="not a key of the target_roles prop"):
        build(config)
    with pytest.raises(ValueError, match="issuers is empty"):
        build({"version": "1"})


def test_cdk_nag_passes() -> None:
    app, _stack, _exchange = build(nag=True)
    app.synth()  # raises when a finding is not acknowledged


def test_routes_on_an_existing_api() -> None:
    from aws_cdk import aws_apigatewayv2 as apigwv2

    app = App()
    stack = Stack(app, "S2", env={"account": "111111111111", "region": "us-east-1"})
    api = apigwv2.HttpApi(stack, "Existing")
    audit = AuditTable(stack, "Audit")
    rate = dynamodb.Table(
        stack, "Rate", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    exchange = TokenExchange(
        stack,
        "Exchange",
        exchange_config=example_config(),
        audit_table=audit,
        rate_limit_table=rate,
        revocation_table=revocation_table(stack),
        http_api=api,
        code=CODE,
    )
    assert exchange.stage is None
    Template.from_stack(stack).resource_count_is("AWS::ApiGatewayV2::Route", 2)


def test_template_snapshot_and_determinism(snapshot: Any) -> None:
    from syrupy.extensions.json import JSONSnapshotExtension

    first = Template.from_stack(build()[1]).to_json()
    second = Template.from_stack(build()[1]).to_json()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first == snapshot(extension_class=JSONSnapshotExtension)


def test_issuer_without_audiences_gets_the_deployment_audience() -> None:
    """No shared audience by default: the authorizer admits only tokens minted for this exchange."""
    config = example_config()
    del config["issuers"]["github"]["audiences"]
    config["trust_policies"]["deploy"][0].pop("audience")
    _app, stack, exchange = build(config)
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    exchange.grant_revoke_issued(operator)
    template = Template.from_stack(stack)
    expected = "kernel-access:111111111111:us-east-1:exchange"
    assert exchange.default_audience == expected
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {"Name": "oidc-github", "JwtConfiguration": {"Issuer": GITHUB, "Audience": [expected]}},
    )
    outputs = template.find_outputs("*")
    assert [o["Value"] for k, o in outputs.items() if "DefaultAudience" in k] == [expected]
    [document] = stack_documents(stack).values()
    assert expected in json.dumps(document)
    # What `kernel-access exchange revoke` needs, on the AWS-role targets only.
    policies = template.find_resources("AWS::IAM::Policy")
    [document] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in policies.values()
        if "Operator" in json.dumps(p["Properties"]["Roles"])
    ]
    cutoff = next(s for s in document if "iam:PutRolePolicy" in s["Action"])
    assert cutoff["Resource"] == DEPLOY_ROLE
    revocations = next(s for s in document if s["Action"] == "dynamodb:PutItem")
    assert revocations["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["caller#oidc:*", "token#*"]}
    }
