"""Security properties of the synthesised kernel stack (cdk.json's example configuration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Match, Template
from kernel_access import contract, settings
from kernel_access.policy import parse_policy

from tests.infra.conftest import KERNEL_STACK, deployed_documents, deployed_resources, of_type

TRUST_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


def _role(resources: dict[str, Any], role_name: str) -> dict[str, Any]:
    matches = [
        r
        for r in of_type(resources, "AWS::IAM::Role").values()
        if r["Properties"].get("RoleName") == role_name
    ]
    assert len(matches) == 1, role_name
    return matches[0]["Properties"]


def _logical_id(resources: dict[str, Any], role_name: str) -> str:
    return next(
        name
        for name, r in of_type(resources, "AWS::IAM::Role").items()
        if r["Properties"].get("RoleName") == role_name
    )


def _statements_for_role(resources: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- KernelAccessRoles -------------------------------------------------------------------------


def test_in_org_role_trusts_the_organization_with_one_statement(kernel_resources: dict[str, Any]) -> None:
    role = _role(kernel_resources, "kernel-access")
    assert role["MaxSessionDuration"] == 3600
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Sid": "OrganizationPartners",
            "Effect": "Allow",
            "Action": TRUST_ACTIONS,
            "Principal": {"AWS": "*"},
            "Condition": {
                "StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"},
                "StringNotEquals": {"aws:PrincipalAccount": "111111111111"},
                "StringLike": {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"},
                "StringLikeIfExists": {"sts:SourceIdentity": "${aws:PrincipalAccount}.*"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["workload", "job", "environment"]},
            },
        }
    ]


def test_external_role_binds_exactly_one_account_to_exactly_one_external_id(
    kernel_resources: dict[str, Any],
) -> None:
    role = _role(kernel_resources, "kernel-access-external-acme-analytics")
    assert role["MaxSessionDuration"] == 3600
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Sid": "ExternalPartner",
            "Effect": "Allow",
            "Action": TRUST_ACTIONS,
            "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
            "Condition": {
                "StringEquals": {"sts:ExternalId": "ka-acme-7f3c9e2a4b6d48e1a0c5d9b2e8f1a3c7"},
                "StringLike": {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"},
                "StringLikeIfExists": {"sts:SourceIdentity": "${aws:PrincipalAccount}.*"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["workload", "job", "environment"]},
            },
        }
    ]


def test_kernel_access_roles_may_only_invoke_granted_routes(kernel_resources: dict[str, Any]) -> None:
    """Every kernel-access role carries the one shared invoke policy and no other permission."""
    vending_api = next(
        n for n in of_type(kernel_resources, "AWS::ApiGatewayV2::Api") if n.startswith("Vending")
    )
    # (The default kernel has no example service, so the vending routes are all there is.)
    expected = sorted(f"{vending_api}/*/{r.method}{r.path}" for r in contract.VENDING_ROUTES)
    (policy_id, policy), *others = of_type(kernel_resources, "AWS::IAM::ManagedPolicy").items()
    assert not [n for n, _ in others if n.startswith("KernelAccessRoles")]
    assert policy_id.startswith("KernelAccessRolesInvokePolicy")
    rendered = []
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Action"] == "execute-api:Invoke"
        for resource in _as_list(statement["Resource"]):
            prefix, ref, suffix = resource["Fn::Join"][1]
            assert prefix == "arn:aws:execute-api:us-east-1:111111111111:"
            rendered.append(ref["Ref"] + suffix)
    assert sorted(rendered) == expected
    for role_name in ("kernel-access", "kernel-access-external-acme-analytics"):
        role = _role(kernel_resources, role_name)
        assert role["ManagedPolicyArns"] == [{"Ref": policy_id}]
        assert "Policies" not in role
        assert _statements_for_role(kernel_resources, _logical_id(kernel_resources, role_name)) == []


# --- every AssumeRole is scoped ------------------------------------------------------------------


def test_no_identity_policy_allows_assume_role_on_a_wildcard(kernel_resources: dict[str, Any]) -> None:
    for policy in of_type(kernel_resources, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            if any(a.startswith("sts:AssumeRole") or a == "sts:*" or a == "*" for a in actions):
                for resource in _as_list(statement["Resource"]):
                    assert resource != "*"
                    assert "*" not in json.dumps(resource)


def test_vending_function_role_is_least_privilege(kernel_resources: dict[str, Any]) -> None:
    function = next(
        iter(
            r
            for n, r in of_type(kernel_resources, "AWS::Lambda::Function").items()
            if n.startswith("Vending")
        )
    )
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _statements_for_role(kernel_resources, role_id)
    by_action = {tuple(_as_list(s["Action"])): s for s in statements}
    assert set(by_action) == {
        ("logs:CreateLogStream", "logs:PutLogEvents"),
        ("xray:PutTelemetryRecords", "xray:PutTraceSegments"),
        ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
        ("dynamodb:PutItem",),
        ("dynamodb:GetItem", "dynamodb:UpdateItem"),
        ("dynamodb:BatchGetItem", "dynamodb:GetItem"),
        ("s3:GetObject",),
    }
    assumable = {
        r["Fn::GetAtt"][0]
        for r in by_action[("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")]["Resource"]
    }
    target_and_minting = {
        _logical_id(kernel_resources, name)
        for name in (
            "kernel-reader",
            "kernel-deployer",
            "kernel-access-codeartifact-reader",
            "kernel-access-codeartifact-publisher",
        )
    }
    assert assumable == target_and_minting
    audit_table = next(
        n for n in of_type(kernel_resources, "AWS::DynamoDB::Table") if n.startswith("AuditTable")
    )
    assert by_action[("dynamodb:PutItem",)]["Resource"] == {"Fn::GetAtt": [audit_table, "Arn"]}
    rate_limit = next(n for n in of_type(kernel_resources, "AWS::DynamoDB::Table") if "RateLimit" in n)
    revocation = next(n for n in of_type(kernel_resources, "AWS::DynamoDB::Table") if "Revocation" in n)
    assert by_action[("dynamodb:GetItem", "dynamodb:UpdateItem")]["Resource"] == {
        "Fn::GetAtt": [rate_limit, "Arn"]
    }
    assert by_action[("dynamodb:BatchGetItem", "dynamodb:GetItem")]["Resource"] == {
        "Fn::GetAtt": [revocation, "Arn"]
    }
    # The policy document's one object: no other key, no bucket-level action, no other version.
    bucket = next(n for n in of_type(kernel_resources, "AWS::S3::Bucket") if n.startswith("ConfigBucket"))
    assert by_action[("s3:GetObject",)]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{contract.POLICY_DOCUMENT_KEY}"]]
    }


def _function_role(resources: dict[str, Any], prefix: str) -> str:
    """Logical id of the execution role of the function whose logical id starts with ``prefix``."""
    [function] = [r for n, r in of_type(resources, "AWS::Lambda::Function").items() if n.startswith(prefix)]
    role: str = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return role


def _trust(sid: str, role_logical_id: str) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": TRUST_ACTIONS,
        "Principal": {"AWS": {"Fn::GetAtt": [role_logical_id, "Arn"]}},
    }


def _minting_trust(role_logical_id: str) -> dict[str, Any]:
    """The vending service may mint only as an attributable partner session: SourceIdentity set
    and a ``partner`` session tag, and no other tag."""
    return {
        **_trust("VendingServiceOnly", role_logical_id),
        "Condition": {
            "Null": {"sts:SourceIdentity": "false", "aws:RequestTag/partner": "false"},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["partner"]},
        },
    }


def test_target_and_minting_roles_trust_only_the_vending_and_named_exchange_roles(
    kernel_resources: dict[str, Any],
) -> None:
    """Every target/minting role trusts the vending function; the exchange function is added only
    to the roles cdk.json's exchange trust policies can reach (kernel-deployer, CodeArtifact read)."""
    vending = _function_role(kernel_resources, "Vending")
    exchange = _function_role(kernel_resources, "TokenExchange")
    expected = {
        "kernel-reader": [_trust("VendingServiceOnly", vending)],
        "kernel-deployer": [_trust("VendingServiceOnly", vending), _trust("TokenExchangeOnly", exchange)],
        "kernel-access-codeartifact-reader": [_minting_trust(vending), _trust("TokenExchangeOnly", exchange)],
        "kernel-access-codeartifact-publisher": [_minting_trust(vending)],
    }
    for name, statements in expected.items():
        role = _role(kernel_resources, name)
        assert role["MaxSessionDuration"] == 3600
        assert role["AssumeRolePolicyDocument"]["Statement"] == statements, name
    # Least privilege: the example reader has its own inline policy, no AWS-managed one.
    assert "ManagedPolicyArns" not in _role(kernel_resources, "kernel-reader")


# --- vending function and API -------------------------------------------------------------------


def test_vending_function_runtime_tracing_layer_and_environment(
    kernel: Template, kernel_resources: dict[str, Any]
) -> None:
    kernel.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": contract.VENDING_HANDLER,
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "MemorySize": 512,
            "Timeout": 15,
            "TracingConfig": {"Mode": "Active"},
            "Layers": [
                Match.string_like_regexp(
                    r"^arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:\d+$"
                )
            ],
            "LoggingConfig": {"LogGroup": {"Ref": Match.string_like_regexp("^VendingFunctionLogs")}},
        },
    )
    function = next(
        iter(
            r
            for n, r in of_type(kernel_resources, "AWS::Lambda::Function").items()
            if n.startswith("Vending")
        )
    )
    variables = function["Properties"]["Environment"]["Variables"]
    expected_names = {
        settings.AUDIT_TABLE_NAME,
        settings.RATE_LIMIT_TABLE_NAME,
        settings.REVOCATION_TABLE_NAME,
        settings.CONFIG_BUCKET,
        settings.POLICY_OBJECT_KEY,
        settings.POLICY_MAX_STALENESS_SECONDS,
        settings.TARGET_ROLES,
        settings.RATE_LIMIT_REQUESTS,
        settings.RATE_LIMIT_SESSION_REQUESTS,
        settings.RATE_LIMIT_WINDOW_SECONDS,
        settings.AUDIT_RETENTION_DAYS,
        settings.CODEARTIFACT_READER_ROLE_ARN,
        settings.CODEARTIFACT_PUBLISHER_ROLE_ARN,
        settings.CODEARTIFACT_DOMAIN_OWNER,
        settings.IN_ORG_ROLE_NAME,
        settings.EXTERNAL_ROLE_NAME,
        settings.KERNEL_ACCOUNT_ID,
        settings.PARTITION,
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_LOG_LEVEL",
    }
    assert set(variables) == expected_names
    assert variables[settings.IN_ORG_ROLE_NAME] == "kernel-access"
    assert variables[settings.EXTERNAL_ROLE_NAME] == "kernel-access-external"
    # The function's own account and partition: sessions of any other resolve to no partner.
    assert variables[settings.KERNEL_ACCOUNT_ID] == "111111111111"
    assert variables[settings.PARTITION] == "aws"
    assert variables[settings.RATE_LIMIT_REQUESTS] == "100"
    assert variables[settings.RATE_LIMIT_SESSION_REQUESTS] == "50"
    assert variables[settings.RATE_LIMIT_WINDOW_SECONDS] == "60"
    assert variables[settings.AUDIT_RETENTION_DAYS] == "400"
    assert variables[settings.POLICY_MAX_STALENESS_SECONDS] == "300"
    assert variables[settings.CODEARTIFACT_DOMAIN_OWNER] == "111111111111"
    target_roles = variables[settings.TARGET_ROLES]["Fn::Join"][1]
    assert target_roles[0] == '{"kernel-reader":"'
    assert target_roles[-1] == '"}'


def test_every_route_is_iam_authorized_except_the_jwt_exchange_routes(
    kernel_resources: dict[str, Any],
) -> None:
    routes = of_type(kernel_resources, "AWS::ApiGatewayV2::Route")
    exchange = {n: r for n, r in routes.items() if n.startswith("TokenExchange")}
    others = {n: r for n, r in routes.items() if n not in exchange}
    assert {r["Properties"]["RouteKey"] for r in others.values()} == {
        r.route_key for r in contract.VENDING_ROUTES
    }
    for route in others.values():
        assert route["Properties"]["AuthorizationType"] == "AWS_IAM"
    assert {r["Properties"]["RouteKey"] for r in exchange.values()} == {"POST /exchange/github"}
    for route in exchange.values():
        assert route["Properties"]["AuthorizationType"] == "JWT"


def test_stages_throttle_and_write_json_access_logs(kernel_resources: dict[str, Any]) -> None:
    stages = of_type(kernel_resources, "AWS::ApiGatewayV2::Stage")
    assert len(stages) == 2  # vending, token exchange
    for name, stage in stages.items():
        props = stage["Properties"]
        assert props["StageName"] == "$default"
        log_format = json.loads(props["AccessLogSettings"]["Format"])
        assert log_format["requestId"] == "$context.requestId"
        assert log_format["routeKey"] == "$context.routeKey"
        assert log_format["status"] == "$context.status"
        assert log_format["responseLatency"] == "$context.responseLatency"
        if name.startswith("TokenExchange"):
            # cdk.json exchange.api_throttling; the caller is the verified token's issuer + subject.
            assert props["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 40, "ThrottlingRateLimit": 20}
            assert log_format["issuer"] == "$context.authorizer.claims.iss"
            assert log_format["subject"] == "$context.authorizer.claims.sub"
        else:
            assert props["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50}
            assert log_format["callerArn"] == "$context.identity.userArn"


def test_every_log_group_has_retention_and_is_retained(kernel_resources: dict[str, Any]) -> None:
    groups = of_type(kernel_resources, "AWS::Logs::LogGroup")
    # vending and exchange: each a function log group and an access log group; the audit archive's;
    # the config documents' deployment handler's
    assert len(groups) == 6
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 365
        assert group["DeletionPolicy"] == "Retain"


def test_api_url_is_an_output(templates: dict[str, dict[str, Any]]) -> None:
    outputs = templates["KernelAccessKernel"]["Outputs"]
    assert any(name.startswith("VendingApiUrl") for name in outputs)


def test_policy_object_holds_the_config_policy(
    cloud_assembly: Path, templates: dict[str, dict[str, Any]], cdk_context: dict[str, Any]
) -> None:
    document = deployed_documents(cloud_assembly, templates[KERNEL_STACK])[contract.POLICY_DOCUMENT_KEY]
    parse_policy(json.dumps(document))  # what the Lambda will load is valid
    config = cdk_context["kernel-access"]
    assert document["version"] == config["policy"]["version"]
    assert document["rules"] == config["policy"]["rules"]
    assert document["partners"] == {
        "payments": {
            "account_id": "222222222222",
            "in_organization": True,
            "organization_id": "o-a1b2c3d4e5",
        },
        "acme-analytics": {"account_id": "333333333333", "in_organization": False},
    }


def test_config_bucket_is_versioned_private_encrypted_and_ssl_only(kernel_resources: dict[str, Any]) -> None:
    [(bucket_id, bucket)] = [
        (n, r)
        for n, r in of_type(kernel_resources, "AWS::S3::Bucket").items()
        if n.startswith("ConfigBucket")
    ]
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}  # every earlier document is kept
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert "LifecycleConfiguration" not in props  # no version expires
    assert bucket["DeletionPolicy"] == "Retain"
    [policy] = [
        p
        for p in of_type(kernel_resources, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_both_documents_are_deployed_to_the_config_bucket_never_pruned(
    kernel_resources: dict[str, Any], templates: dict[str, dict[str, Any]]
) -> None:
    bucket = next(n for n in of_type(kernel_resources, "AWS::S3::Bucket") if n.startswith("ConfigBucket"))
    deployments = of_type(kernel_resources, "Custom::CDKBucketDeployment")
    assert sorted(n.split("Deployment")[0] for n in deployments) == [
        "TokenExchangeConfigDocument",
        "VendingPolicyDocument",
    ]
    for deployment in deployments.values():
        props = deployment["Properties"]
        assert props["DestinationBucketName"] == {"Ref": bucket}
        assert (props["Prune"], props["RetainOnDelete"]) == (False, True)
        assert "DestinationBucketKeyPrefix" not in props
    outputs = templates[KERNEL_STACK]["Outputs"]
    locations = sorted(json.dumps(o["Value"]) for n, o in outputs.items() if "DocumentLocation" in n)
    assert len(locations) == 2
    assert contract.EXCHANGE_CONFIG_KEY in locations[0]
    assert contract.POLICY_DOCUMENT_KEY in locations[1]
    assert of_type(kernel_resources, "AWS::SSM::Parameter") == {}


# --- tables -------------------------------------------------------------------------------------


def _table(resources: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(r for n, r in of_type(resources, "AWS::DynamoDB::Table").items() if n.startswith(prefix))


def test_audit_table_schema_encryption_pitr_protection_ttl(kernel_resources: dict[str, Any]) -> None:
    table = _table(kernel_resources, "AuditTable")
    props = table["Properties"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["DeletionProtectionEnabled"] is True
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i["KeySchema"] for i in props["GlobalSecondaryIndexes"]}
    assert indexes == {
        "by-caller": [
            {"AttributeName": "caller_arn", "KeyType": "HASH"},
            {"AttributeName": "recorded_at", "KeyType": "RANGE"},
        ],
        "by-access-key": [
            {"AttributeName": "access_key_id", "KeyType": "HASH"},
            {"AttributeName": "recorded_at", "KeyType": "RANGE"},
        ],
        "by-partner": [
            {"AttributeName": "partner", "KeyType": "HASH"},
            {"AttributeName": "recorded_at", "KeyType": "RANGE"},
        ],
    }


def test_rate_limit_and_revocation_tables(kernel_resources: dict[str, Any]) -> None:
    rate = _table(kernel_resources, "VendingRateLimitTable")["Properties"]
    assert rate["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert rate["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    revocation_table = _table(kernel_resources, "VendingRevocationTable")
    revocation = revocation_table["Properties"]
    assert revocation["KeySchema"] == [{"AttributeName": "subject", "KeyType": "HASH"}]
    assert revocation["DeletionProtectionEnabled"] is True
    assert revocation_table["DeletionPolicy"] == "Retain"
    for props in (rate, revocation):
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}


# --- CodeArtifact -------------------------------------------------------------------------------


def test_codeartifact_domain_kms_and_org_policy(kernel_resources: dict[str, Any]) -> None:
    (domain,) = of_type(kernel_resources, "AWS::CodeArtifact::Domain").values()
    props = domain["Properties"]
    key_id = props["EncryptionKey"]["Fn::GetAtt"][0]
    key = kernel_resources[key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    (statement,) = props["PermissionsPolicyDocument"]["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
    assert "codeartifact:GetAuthorizationToken" in statement["Action"]
    repositories = {
        r["Properties"]["RepositoryName"]: r["Properties"]
        for r in of_type(kernel_resources, "AWS::CodeArtifact::Repository").values()
    }
    assert repositories["pypi-store"]["ExternalConnections"] == ["public:pypi"]
    assert repositories["npmjs-store"]["ExternalConnections"] == ["public:npmjs"]
    assert repositories["internal"]["Upstreams"] == ["pypi-store", "npmjs-store"]


def test_minting_roles_get_bearer_token_only_for_codeartifact(kernel_resources: dict[str, Any]) -> None:
    for name, publishes in (
        ("kernel-access-codeartifact-reader", False),
        ("kernel-access-codeartifact-publisher", True),
    ):
        statements = _statements_for_role(kernel_resources, _logical_id(kernel_resources, name))
        bearer = [s for s in statements if s["Action"] == "sts:GetServiceBearerToken"]
        assert bearer == [
            {
                "Action": "sts:GetServiceBearerToken",
                "Effect": "Allow",
                "Resource": "*",
                "Condition": {"StringEquals": {"sts:AWSServiceName": "codeartifact.amazonaws.com"}},
            }
        ]
        actions = {a for s in statements for a in _as_list(s["Action"])}
        assert ("codeartifact:PublishPackageVersion" in actions) is publishes
        publish = [s for s in statements if "codeartifact:PublishPackageVersion" in _as_list(s["Action"])]
        for statement in publish:
            assert (
                statement["Resource"]
                == "arn:aws:codeartifact:us-east-1:111111111111:package/kernel/internal/*"
            )


# --- the example service: absent by default, complete and nag-clean when configured --------------


def test_default_kernel_has_no_example_service(kernel_resources: dict[str, Any]) -> None:
    assert not [
        lid for lid in kernel_resources if lid.startswith(("EchoService", "EchoFunction", "EchoLogs"))
    ]
    for logical_id, function in of_type(kernel_resources, "AWS::Lambda::Function").items():
        if not logical_id.startswith("CustomCDKBucketDeployment"):  # aws-cdk-lib's deployment handler
            assert function["Properties"].get("Handler") != "index.handler"


def test_configured_example_service_is_built_and_passes_cdk_nag(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    """``"example_service": true`` adds EchoService: an IAM-only route the partner roles may invoke,
    a throttled stage with access logs, retained log groups, and no unacknowledged cdk-nag finding."""
    from aws_cdk import App
    from kernel_access_cdk.app import CONTEXT_KEY
    from kernel_access_cdk.config import load_config
    from kernel_access_cdk.nag import register_nag
    from kernel_access_cdk.stacks import build_stacks

    raw = {**cdk_context[CONTEXT_KEY], contract.EXAMPLE_SERVICE_FLAG: True}
    del raw["exchange"]  # not what is under test; keeps this synth small
    app = App(outdir=str(tmp_path), context={k: v for k, v in cdk_context.items() if k != CONTEXT_KEY})
    kernel, _ = build_stacks(app, load_config(raw))
    assert kernel.echo_service is not None
    register_nag(app)
    app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    resources = deployed_resources(Template.from_stack(kernel).to_json(), tmp_path)
    echo = {n: r for n, r in resources.items() if n.startswith(("EchoService", "EchoFunction", "EchoLogs"))}
    (route,) = of_type(echo, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "GET /echo"
    assert route["Properties"]["AuthorizationType"] == "AWS_IAM"
    (stage,) = of_type(echo, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": 100,
        "ThrottlingRateLimit": 50,
    }
    assert (
        json.loads(stage["Properties"]["AccessLogSettings"]["Format"])["callerArn"]
        == "$context.identity.userArn"
    )
    groups = of_type(echo, "AWS::Logs::LogGroup")
    assert len(groups) == 2  # the function's and the access log
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 365
        assert group["DeletionPolicy"] == "Retain"
    (api,) = of_type(echo, "AWS::ApiGatewayV2::Api")
    # The route is granted in the one invoke policy every kernel-access role carries.
    ((policy_id, policy),) = (
        (n, p)
        for n, p in of_type(resources, "AWS::IAM::ManagedPolicy").items()
        if n.startswith("KernelAccessRoles")
    )
    granted = [
        r["Fn::Join"][1][1]["Ref"] + r["Fn::Join"][1][2]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        for r in _as_list(s["Resource"])
    ]
    assert f"{api}/*/GET/echo" in granted
    for role_name in ("kernel-access", "kernel-access-external-acme-analytics"):
        assert _role(resources, role_name)["ManagedPolicyArns"] == [{"Ref": policy_id}]
