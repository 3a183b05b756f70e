"""``CredentialVendingService``: the vending Lambda behind an IAM-authorized HTTP API.

Everything the Lambda reads is set here from one source: env-var names from
``kernel_access.settings``, routes and handler from ``kernel_access.contract``, table schemas defined
here once. The function's role is least privilege: assume only the configured target roles and
the CodeArtifact minting roles, append (PutItem) to the audit table, count in the rate-limit table,
read the revocation table and the one policy document (an object of the config bucket).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from aws_cdk import CfnElement, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from kernel_access import contract, settings, telemetry
from kernel_access.policy import PolicyValidationError, parse_policy
from kernel_access.ratelimit import DEFAULT_LIMIT, DEFAULT_SESSION_LIMIT

from .audit_table import AuditTable, pitr
from .boundary import TargetRoleBoundary
from .codeartifact import CodeArtifactRegistry
from .config import TargetRoleConfig
from .config_store import ConfigBucket, ConfigDocument
from .lambda_asset import kernel_access_code
from .nag import IAM4, IAM5, acknowledge
from .roles import MAX_SESSION, KernelAccessRoles, set_trust_statements
from .service_api import KernelServiceApi

#: Version N of ``AWSLambdaPowertoolsPythonV3-python313-arm64`` (Powertools 3.2x, 2026).
DEFAULT_POWERTOOLS_LAYER_VERSION: Final = 27
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
ASSUME_ACTIONS: Final = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")


def _wildcard_findings(document: Mapping[str, Any] | None) -> list[str]:
    """The cdk-nag IAM5 finding ids of the wildcards in a target role's configured inline policy."""
    findings: list[str] = []
    for statement in (document or {}).get("Statement", []):
        for kind, key in (("Action", "Action"), ("Resource", "Resource")):
            values = statement.get(key, [])
            for value in [values] if isinstance(values, str) else values:
                if "*" in value and f"{kind}::{value}" not in findings:
                    findings.append(f"{kind}::{value}")
    return findings


def powertools_layer_arn(scope: Construct, version: int) -> str:
    stack = Stack.of(scope)
    return (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-python313-arm64:{version}"
    )


def kernel_access_function(
    scope: Construct,
    *,
    description: str,
    handler: str,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    environment: Mapping[str, str],
    code: lambda_.Code | None,
    memory_size: int,
    timeout: Duration | None,
    reserved_concurrent_executions: int | None,
    powertools_layer_version: int,
) -> lambda_.Function:
    """The one shape of every kernel-access handler function (child ids ``Function`` and
    ``PowertoolsLayer``): Python 3.13 on arm64, the ``kernel_access`` asset, the AWS-managed
    Powertools layer, active tracing, its own log group. Call :func:`finish_function` once its role
    has every grant."""
    return lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=lambda_.Runtime.PYTHON_3_13,
        architecture=lambda_.Architecture.ARM_64,
        handler=handler,
        code=code or kernel_access_code(),
        role=role,
        memory_size=memory_size,
        timeout=timeout or Duration.seconds(15),
        tracing=lambda_.Tracing.ACTIVE,
        log_group=log_group,
        reserved_concurrent_executions=reserved_concurrent_executions,
        layers=[
            lambda_.LayerVersion.from_layer_version_arn(
                scope, "PowertoolsLayer", powertools_layer_arn(scope, powertools_layer_version)
            )
        ],
        environment=dict(environment),
    )


def function_role(
    scope: Construct, construct_id: str, log_group: logs.ILogGroup, description: str
) -> iam.Role:
    """An execution role that may write to ``log_group`` only (no AWSLambdaBasicExecutionRole,
    whose logs permissions cover every log group of the account)."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )
    log_group.grant_write(role)
    return role


def depend_on_policy_only(function: lambda_.Function) -> None:
    """Keep the function's DependsOn on its role's policy only.

    CDK makes a function depend on its role *and* the role's DefaultPolicy; the role dependency is
    already implied by ``Fn::GetAtt Role.Arn`` and cfn-lint reports it (W3005). The policy one
    matters (the function must not run before it may write its logs), so it stays.
    """
    role = function.role
    policy = role.node.try_find_child("DefaultPolicy") if role is not None else None
    if policy is None:
        return
    policy_resource = cast(CfnElement, policy.node.default_child)
    cfn_function = cast(lambda_.CfnFunction, function.node.default_child)
    cfn_function.add_override("DependsOn", [Stack.of(function).get_logical_id(policy_resource)])


def finish_function(function: lambda_.Function) -> None:
    """Template hygiene and the cdk-nag findings that come from the deliberate runtime and
    invocation model of our functions (call once the function's role has its DefaultPolicy)."""
    role = function.role
    if role is not None:
        acknowledge(
            role,
            f"{IAM5}[Resource::*]",
            "Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords accept only "
            "Resource '*' (X-Ray has no resource-level permissions).",
        )
    depend_on_policy_only(function)
    for rule in ("AwsSolutions::AwsSolutions-L1", "Serverless::Serverless-LambdaLatestVersion"):
        acknowledge(
            function,
            rule,
            "Pinned to Python 3.13 on purpose: the AWS-managed Powertools layer we use is built for "
            "python313-arm64, and the runtime code is tested on 3.11 and 3.13.",
        )
    acknowledge(
        function,
        "Serverless::Serverless-LambdaDLQ",
        "Invoked synchronously by API Gateway only; a dead-letter queue applies to asynchronous "
        "invocations, and failures are returned to the caller and recorded in the audit table.",
    )


class CredentialVendingService(Construct):
    """The credential-vending Lambda and its HTTP API.

    Props (keyword-only):
        kernel_roles: the ``KernelAccessRoles``; their sessions are the API's callers (they get
            ``execute-api:Invoke`` on the vending routes). Their names go into the environment.
        policy_document: the vending policy (``{"version", "partners", "rules"}``). Validated at
            synth with the runtime's parser (an invalid document fails with every error listed) and
            deployed as JSON to the object ``policy_key`` of ``config_bucket``.
        target_roles: kernel roles to create and vend sessions of. Default: none.
        audit_table: Default: a new ``AuditTable`` (child "AuditTable").
        codeartifact: registry whose tokens are minted; its minting roles are created trusted by
            this function's role. Default: none (token route denies).
        config_bucket: the ``ConfigBucket`` holding the policy. Default: a new one (child "ConfigBucket").
        policy_key: object key of the policy. Default: ``kernel_access.contract.POLICY_DOCUMENT_KEY``
            ("vending/policy.json").
        name_suffix: appended to physical names (roles). Default: "".
        policy_max_staleness_seconds: Default: 300.
        rate_limit_requests / rate_limit_window_seconds: per partner. Default: 100 per 60 s.
        rate_limit_session_requests: per session (caller ARN) inside the partner's budget, at
            most ``rate_limit_requests``. Default: 50 (or ``rate_limit_requests`` if lower).
        audit_retention_days: TTL of audit records. Default: 400.
        log_retention: function and access logs. Default: one year.
        memory_size: MB. Default: 512. timeout: Default: 15 s.
        reserved_concurrent_executions: Default: none (unreserved).
        powertools_layer_version: N of the AWS-managed Powertools layer. Default: 27.
        throttling_rate_limit / throttling_burst_limit: API stage. Default: 50 / 100.
        code: Lambda code. Default: the installed ``kernel_access`` package (``kernel_access_code``).
        log_level: POWERTOOLS_LOG_LEVEL. Default: "INFO".
        metrics_namespace: POWERTOOLS_METRICS_NAMESPACE. Default: "KernelAccess".

    Attributes: ``function``, ``function_role``, ``log_group``, ``api`` (``KernelServiceApi``),
    ``audit_table``, ``rate_limit_table``, ``revocation_table``, ``config_bucket``,
    ``policy_document`` (the ``ConfigDocument``),
    ``target_roles`` (name -> ``iam.Role``), ``target_role_boundary`` (``TargetRoleBoundary``, the
    permissions boundary of every target role), ``url``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        kernel_roles: KernelAccessRoles,
        policy_document: Mapping[str, Any],
        target_roles: Sequence[TargetRoleConfig] = (),
        audit_table: AuditTable | None = None,
        codeartifact: CodeArtifactRegistry | None = None,
        config_bucket: ConfigBucket | None = None,
        policy_key: str = contract.POLICY_DOCUMENT_KEY,
        name_suffix: str = "",
        policy_max_staleness_seconds: int = 300,
        rate_limit_requests: int = DEFAULT_LIMIT,
        rate_limit_session_requests: int | None = None,
        rate_limit_window_seconds: int = 60,
        audit_retention_days: int = 400,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        memory_size: int = 512,
        timeout: Duration | None = None,
        reserved_concurrent_executions: int | None = None,
        powertools_layer_version: int = DEFAULT_POWERTOOLS_LAYER_VERSION,
        throttling_rate_limit: int = 50,
        throttling_burst_limit: int = 100,
        code: lambda_.Code | None = None,
        log_level: str = "INFO",
        metrics_namespace: str = "KernelAccess",
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.audit_table = audit_table or AuditTable(self, "AuditTable")
        self.rate_limit_table = dynamodb.Table(
            self,
            "RateLimitTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr(),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expires_at",
            # Counters of fixed windows: nothing to keep once the stack is gone.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.revocation_table = dynamodb.Table(
            self,
            "RevocationTable",
            partition_key=dynamodb.Attribute(name="subject", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr(),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        policy_json = json.dumps(policy_document, sort_keys=True, separators=(",", ":"))
        try:
            parse_policy(policy_json)  # exactly the bytes deployed and read by the Lambda
        except PolicyValidationError as error:
            raise ValueError(f"CredentialVendingService: invalid policy_document: {error}") from None
        self.config_bucket = config_bucket or ConfigBucket(self, "ConfigBucket")
        self.policy_document: ConfigDocument = self.config_bucket.add_document(
            self, "PolicyDocument", key=policy_key, body=policy_json
        )

        self.log_group = logs.LogGroup(
            self, "FunctionLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.function_role = function_role(
            self, "FunctionRole", self.log_group, "Execution role of the kernel-access vending Lambda"
        )

        # Target roles: trusted by this function's role only; their ARNs go into TARGET_ROLES. Each
        # carries the boundary that keeps it out of kernel-access's own resources.
        self.target_roles: dict[str, iam.Role] = {}
        self.target_role_boundary = TargetRoleBoundary(self, "TargetRoleBoundary")
        for target in target_roles:
            inline = target.inline_policy
            role = iam.Role(
                self,
                f"TargetRole-{target.name}",
                role_name=f"{target.name}{name_suffix}",
                description=target.description or None,
                assumed_by=iam.ArnPrincipal(self.function_role.role_arn),
                max_session_duration=MAX_SESSION,
                permissions_boundary=self.target_role_boundary.policy,
                managed_policies=[
                    iam.ManagedPolicy.from_managed_policy_arn(self, f"{target.name}-policy-{i}", arn)
                    for i, arn in enumerate(target.managed_policy_arns)
                ],
                inline_policies=(
                    {"kernel-access-target": iam.PolicyDocument.from_json(inline)}
                    if inline is not None
                    else None
                ),
            )
            self.target_role_boundary.register(role)
            for finding in _wildcard_findings(inline):
                acknowledge(
                    role,
                    f"{IAM5}[{finding}]",
                    f"Target role {target.name!r}: a pattern of the role's own inline policy, chosen by the "
                    "platform team in the kernel-access config (target_roles[].inline_policy); the role's "
                    "permissions boundary denies every kernel-access resource whatever the pattern matches.",
                )
            set_trust_statements(
                role,
                [
                    iam.PolicyStatement(
                        sid="VendingServiceOnly",
                        actions=list(ASSUME_ACTIONS),
                        principals=[iam.ArnPrincipal(self.function_role.role_arn)],
                    )
                ],
            )
            for arn in target.managed_policy_arns:
                if arn.startswith("arn:aws:iam::aws:policy/"):
                    acknowledge(
                        role,
                        f"{IAM4}[Policy::{arn}]",
                        f"Target role {target.name!r}: the AWS-managed policy is chosen by the platform "
                        "team in the kernel-access config; vended sessions are further narrowed by the "
                        "policy rule's session policy, and the role's permissions boundary denies every "
                        "kernel-access resource.",
                    )
            self.target_roles[target.name] = role

        assumable = [role.role_arn for role in self.target_roles.values()]
        environment: dict[str, str] = {
            settings.AUDIT_TABLE_NAME: self.audit_table.table_name,
            settings.RATE_LIMIT_TABLE_NAME: self.rate_limit_table.table_name,
            settings.REVOCATION_TABLE_NAME: self.revocation_table.table_name,
            settings.CONFIG_BUCKET: self.policy_document.bucket.bucket_name,
            settings.POLICY_OBJECT_KEY: self.policy_document.key,
            settings.POLICY_MAX_STALENESS_SECONDS: str(policy_max_staleness_seconds),
            settings.TARGET_ROLES: stack.to_json_string(
                {name: role.role_arn for name, role in self.target_roles.items()}
            ),
            settings.RATE_LIMIT_REQUESTS: str(rate_limit_requests),
            settings.RATE_LIMIT_SESSION_REQUESTS: str(
                min(
                    rate_limit_requests,
                    DEFAULT_SESSION_LIMIT
                    if rate_limit_session_requests is None
                    else rate_limit_session_requests,
                )
            ),
            settings.RATE_LIMIT_WINDOW_SECONDS: str(rate_limit_window_seconds),
            settings.AUDIT_RETENTION_DAYS: str(audit_retention_days),
            settings.IN_ORG_ROLE_NAME: kernel_roles.in_org_role_name,
            settings.EXTERNAL_ROLE_NAME: kernel_roles.external_role_name,
            settings.KERNEL_ACCOUNT_ID: stack.account,
            settings.PARTITION: stack.partition,
            "POWERTOOLS_SERVICE_NAME": telemetry.VENDING_SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
        self.codeartifact = codeartifact
        if codeartifact is not None:
            if codeartifact.reader_role is None or codeartifact.publisher_role is None:
                reader, publisher = codeartifact.enable_minting(self.function_role)
            else:
                reader, publisher = codeartifact.reader_role, codeartifact.publisher_role
            environment[settings.CODEARTIFACT_READER_ROLE_ARN] = reader.role_arn
            environment[settings.CODEARTIFACT_PUBLISHER_ROLE_ARN] = publisher.role_arn
            environment[settings.CODEARTIFACT_DOMAIN_OWNER] = codeartifact.domain_owner
            assumable += [reader.role_arn, publisher.role_arn]

        self.function = kernel_access_function(
            self,
            description="kernel-access credential vending",
            handler=contract.VENDING_HANDLER,
            role=self.function_role,
            log_group=self.log_group,
            environment=environment,
            code=code,
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrent_executions,
            powertools_layer_version=powertools_layer_version,
        )
        finish_function(self.function)

        # Least privilege for the function role.
        if assumable:
            iam.Grant.add_to_principal(
                grantee=self.function_role, actions=list(ASSUME_ACTIONS), resource_arns=assumable
            )
        self.audit_table.grant_append(self.function_role)
        iam.Grant.add_to_principal(
            grantee=self.function_role,
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
            resource_arns=[self.rate_limit_table.table_arn],
        )
        iam.Grant.add_to_principal(
            grantee=self.function_role,
            actions=["dynamodb:BatchGetItem", "dynamodb:GetItem"],
            resource_arns=[self.revocation_table.table_arn],
        )
        self.policy_document.grant_read(self.function_role)

        self.api = KernelServiceApi(
            self,
            "Api",
            description="kernel-access credential vending (IAM-authorized)",
            throttling_rate_limit=throttling_rate_limit,
            throttling_burst_limit=throttling_burst_limit,
            log_retention=log_retention,
        )
        for route in contract.VENDING_ROUTES:
            if route.auth != "IAM":  # pragma: no cover - guards a future contract change
                raise ValueError(f"vending route {route.route_key} must be IAM-authorized")
            self.api.add_lambda_route(route.method, route.path, self.function)
        self.api.grant_invoke_to_policy(kernel_roles.invoke_policy)
        CfnOutput(self, "ApiUrl", value=self.api.url, description="URL of the kernel-access vending API")

    @property
    def url(self) -> str:
        return self.api.url

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """``execute-api:Invoke`` on every vending route."""
        return self.api.grant_invoke(grantee)

    def metric_errors(self) -> cloudwatch.Metric:
        """Function errors (sum): unhandled exceptions, which the handler should never let out."""
        return self.function.metric_errors(statistic="Sum")

    def metric_throttles(self) -> cloudwatch.Metric:
        return self.function.metric_throttles(statistic="Sum")

    def metric_duration(self) -> cloudwatch.Metric:
        return self.function.metric_duration()

    def metric_api_client_errors(self) -> cloudwatch.Metric:
        return self.api.metric_client_errors()
