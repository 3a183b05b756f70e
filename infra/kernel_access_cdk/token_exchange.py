"""``TokenExchange``: the OIDC token exchange — JWT-authorized routes, its Lambda, tables and IAM.

One HTTP API JWT authorizer per trusted issuer (issuer https, audiences from the issuer's central
rules) guards that issuer's own route ``POST /exchange/{issuer-name}`` (``contract.exchange_route``),
so the Lambda only ever sees tokens the issuer's authorizer verified, and the route key it sees
names the issuer. The exchange configuration (central issuer rules, trust policies, targets) is
validated at synth with the runtime's own parser (``kernel_access.exchange.parse_exchange_config``)
and deployed as JSON to one object of the config bucket (``ConfigDocument``).

Least privilege: the function may assume exactly the AWS-role targets some trust policy names and
the CodeArtifact minting roles for the access levels the trust policies can grant, and tag those
sessions only with the exchange's own tag keys (``sts:TagSession`` conditioned on ``aws:TagKeys``);
it may only PutItem into the replay and issued-tokens tables, append to the audit table, count in
the rate-limit table, read the revocation table and read its one configuration object.

Audience: an issuer without ``audiences`` gets the deployment's own audience
(``kernel-access:<account>:<region>:exchange<name_suffix>``, output ``DefaultAudience``); the
parser refuses audiences other relying parties share, such as ``sts.amazonaws.com``.

AWS-role targets in the configuration name a role either by ARN (``"role_arn"``) or, for roles
created in the same app, by a key of the ``target_roles`` prop (``"role": KEY``). Every target role
must trust this construct's ``function_role`` for ``sts:AssumeRole``, ``sts:SetSourceIdentity`` and
``sts:TagSession``; :meth:`TokenExchange.trust_statement` gives the statement to add.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final, cast

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from kernel_access import contract, settings, telemetry
from kernel_access.exchange import ExchangeConfig, ExchangeConfigError, parse_exchange_config
from kernel_access.exchange.config import default_audience as deployment_audience
from kernel_access.exchange.config import with_default_audiences
from kernel_access.exchange.minting import SESSION_TAG_KEYS

from .audit_table import AuditTable, pitr
from .codeartifact import CodeArtifactRegistry
from .config_store import ConfigBucket, ConfigDocument
from .service_api import AccessLogSettings
from .vending import (
    ASSUME_ACTIONS,
    DEFAULT_POWERTOOLS_LAYER_VERSION,
    finish_function,
    function_role,
    kernel_access_function,
)

#: Placeholder account used only to validate documents whose role ARNs are CDK tokens.
_PLACEHOLDER_ACCOUNT: Final = "000000000000"

#: Access log of the exchange API: who (issuer + subject from the verified token) did what.
ACCESS_LOG_FORMAT: Final = json.dumps(
    {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTime",
        "routeKey": "$context.routeKey",
        "issuer": "$context.authorizer.claims.iss",
        "subject": "$context.authorizer.claims.sub",
        "sourceIp": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "status": "$context.status",
        "responseLatency": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
    },
    separators=(",", ":"),
)


def _construct_id(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").split("-"))


def _fill_audiences(document: Mapping[str, Any], audience: str) -> tuple[bool, dict[str, Any]]:
    """(whether some issuer lists no audiences, the document with ``audience`` filled in there)."""
    issuers = document.get("issuers")
    missing = isinstance(issuers, Mapping) and any(
        isinstance(spec, Mapping) and "audiences" not in spec for spec in issuers.values()
    )
    return missing, with_default_audiences(document, audience)


def resolve_targets(
    document: Mapping[str, Any], target_roles: Mapping[str, iam.IRole]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(document with real role ARNs — maybe tokens —, the same with placeholder ARNs to validate).

    ``{"type": "aws_role", "role": KEY}`` becomes ``"role_arn": target_roles[KEY].role_arn``.
    """
    deployed = copy.deepcopy(dict(document))
    checkable = copy.deepcopy(dict(document))
    errors: list[str] = []
    targets = deployed.get("targets")
    if isinstance(targets, dict):
        for name, spec in targets.items():
            if not isinstance(spec, dict) or spec.get("type") != "aws_role" or "role" not in spec:
                continue
            key = spec["role"]
            role = target_roles.get(key) if isinstance(key, str) else None
            if role is None:
                errors.append(f"targets.{name}.role: {key!r} is not a key of the target_roles prop")
                continue
            spec.pop("role")
            spec["role_arn"] = role.role_arn
            check = checkable["targets"][name]
            check.pop("role")
            check["role_arn"] = f"arn:aws:iam::{_PLACEHOLDER_ACCOUNT}:role/{key}"
    if errors:
        raise ValueError("TokenExchange: " + "; ".join(errors))
    return deployed, checkable


class TokenExchange(Construct):
    """The OIDC token exchange: CI pipelines trade an OIDC token for scoped, audited credentials.

    Props (keyword-only):
        exchange_config: the exchange configuration document (``{"version", "issuers",
            "trust_policies", "targets"}``; see docs/exchange.md). Validated at synth: an invalid
            document fails with every error listed. AWS-role targets give ``role_arn`` or ``role``
            (a key of ``target_roles``).
        audit_table: the shared ``AuditTable`` (records are appended, fail-closed).
        rate_limit_table: table with partition key ``pk`` and TTL ``expires_at`` (the vending
            service's ``rate_limit_table``). Exchange counters use keys ``caller#oidc:<issuer>:<sub>#…``
            (requests) and ``caller#refusals:<code>:oidc:<issuer>:<sub>#…`` (refusal counts).
        revocation_table: table with partition key ``subject`` (the vending service's
            ``revocation_table``): the exchange refuses ``caller#oidc:<issuer>:<sub>`` and
            ``token#sha256:<hex>`` entries, and fails closed when it cannot read them.
        default_audience: the audience of issuers that list no ``audiences``. Default:
            ``kernel-access:<stack account>:<stack region>:exchange<name_suffix>``.
        target_roles: roles created in this app that targets may name by key. Default: none.
        codeartifact_reader_role / codeartifact_publisher_role: minting roles to assume for read /
            publish tokens. Default: when ``codeartifact`` is given, this construct creates its
            own minting roles (trusted by its function role only) for the levels the trust
            policies can grant; otherwise none (CodeArtifact targets then fail with 503).
        codeartifact: the ``CodeArtifactRegistry`` (its ``grant_read``/``grant_publish`` and
            domain owner are used). Default: none.
        codeartifact_domain_owner: Default: ``codeartifact.domain_owner`` or none.
        http_api: an existing ``HttpApi`` to add the exchange routes to. Default: a new one
            (child "Api") with a throttled ``$default`` stage and JSON access logs.
        config_bucket: the ``ConfigBucket`` holding the configuration. Default: a new one (child
            "ConfigBucket").
        config_key: object key of the configuration. Default:
            ``kernel_access.contract.EXCHANGE_CONFIG_KEY`` ("exchange/config.json").
        name_suffix: appended to physical names. Default: "".
        policy_max_staleness_seconds: how long the last good configuration may serve when its object is
            unreadable (S3 error or invalid new version). Default: 300.
        rate_limit_requests / rate_limit_window_seconds: per subject. Default: 20 per 60 s.
        audit_retention_days: Default: 400.
        log_retention: function and access logs. Default: one year.
        memory_size: Default: 512. timeout: Default: 15 s.
        reserved_concurrent_executions: Default: none.
        powertools_layer_version: Default: the vending default.
        throttling_rate_limit / throttling_burst_limit: of the created API's stage. Default: 20 / 40.
        code: Lambda code. Default: the installed ``kernel_access`` package.
        log_level: Default: "INFO". metrics_namespace: Default: "KernelAccess".

    Attributes: ``function``, ``function_role``, ``log_group``, ``http_api``, ``stage`` (None when
    an API was passed in), ``authorizers`` (issuer name -> ``HttpJwtAuthorizer``), ``routes``
    (issuer name -> ``HttpRoute``), ``replay_table``, ``issued_tokens_table``,
    ``config_bucket``, ``config_document`` (the ``ConfigDocument``), ``config`` (the parsed
    ``ExchangeConfig``), ``reader_role`` /
    ``publisher_role`` (or None), ``url``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        exchange_config: Mapping[str, Any],
        audit_table: AuditTable,
        rate_limit_table: dynamodb.ITable,
        revocation_table: dynamodb.ITable,
        default_audience: str | None = None,
        target_roles: Mapping[str, iam.IRole] | None = None,
        codeartifact: CodeArtifactRegistry | None = None,
        codeartifact_reader_role: iam.IRole | None = None,
        codeartifact_publisher_role: iam.IRole | None = None,
        codeartifact_domain_owner: str | None = None,
        http_api: apigwv2.HttpApi | None = None,
        config_bucket: ConfigBucket | None = None,
        config_key: str = contract.EXCHANGE_CONFIG_KEY,
        name_suffix: str = "",
        policy_max_staleness_seconds: int = 300,
        rate_limit_requests: int = 20,
        rate_limit_window_seconds: int = 60,
        audit_retention_days: int = 400,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        memory_size: int = 512,
        timeout: Duration | None = None,
        reserved_concurrent_executions: int | None = None,
        powertools_layer_version: int = DEFAULT_POWERTOOLS_LAYER_VERSION,
        throttling_rate_limit: int = 20,
        throttling_burst_limit: int = 40,
        code: lambda_.Code | None = None,
        log_level: str = "INFO",
        metrics_namespace: str = "KernelAccess",
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self._metrics_namespace = metrics_namespace
        self._roles_to_trust: list[iam.Role] = []
        self.default_audience = default_audience or deployment_audience(
            stack.account, stack.region, name_suffix
        )
        uses_default, exchange_config = _fill_audiences(exchange_config, self.default_audience)
        deployed, checkable = resolve_targets(exchange_config, target_roles or {})
        try:
            self.config: ExchangeConfig = parse_exchange_config(checkable)
        except ExchangeConfigError as error:
            raise ValueError(f"TokenExchange: {error}") from None
        if not self.config.issuers:
            raise ValueError("TokenExchange: exchange_config.issuers is empty; no route could be created")

        # Roles created in this app and named by a target with trust policies must trust us.
        for key in self._referenced_role_keys(exchange_config):
            role = (target_roles or {})[key]
            if isinstance(role, iam.Role):
                self._roles_to_trust.append(role)

        self.replay_table, self.issued_tokens_table = self._tables()
        # The deployed document differs from the validated one only in the role ARNs (deploy-time
        # tokens there, placeholders in ``checkable``), which the deployment substitutes. Serialised
        # with json.dumps so each token stays a string inside the text: the deployment then gets the
        # text with one marker per ARN, not the whole document as one deploy-time value.
        self.config_bucket = config_bucket or ConfigBucket(self, "ConfigBucket")
        self.config_document: ConfigDocument = self.config_bucket.add_document(
            self,
            "ConfigDocument",
            key=config_key,
            body=json.dumps(deployed, sort_keys=True, separators=(",", ":")),
        )

        # --- function ---
        self.log_group = logs.LogGroup(
            self, "FunctionLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
        )
        self.function_role = function_role(
            self, "FunctionRole", self.log_group, "Execution role of the kernel-access OIDC token exchange"
        )
        levels = self.config.codeartifact_levels()
        self.reader_role, self.publisher_role = self._minting_roles(
            codeartifact, codeartifact_reader_role, codeartifact_publisher_role, levels, name_suffix
        )
        domain_owner = codeartifact_domain_owner or (codeartifact.domain_owner if codeartifact else None)

        environment: dict[str, str] = {
            settings.CONFIG_BUCKET: self.config_document.bucket.bucket_name,
            settings.EXCHANGE_CONFIG_OBJECT_KEY: self.config_document.key,
            settings.POLICY_MAX_STALENESS_SECONDS: str(policy_max_staleness_seconds),
            settings.REPLAY_TABLE_NAME: self.replay_table.table_name,
            settings.ISSUED_TOKENS_TABLE_NAME: self.issued_tokens_table.table_name,
            settings.AUDIT_TABLE_NAME: audit_table.table_name,
            settings.RATE_LIMIT_TABLE_NAME: rate_limit_table.table_name,
            settings.REVOCATION_TABLE_NAME: revocation_table.table_name,
            settings.RATE_LIMIT_REQUESTS: str(rate_limit_requests),
            settings.RATE_LIMIT_WINDOW_SECONDS: str(rate_limit_window_seconds),
            settings.AUDIT_RETENTION_DAYS: str(audit_retention_days),
            "POWERTOOLS_SERVICE_NAME": telemetry.EXCHANGE_SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
        if self.reader_role is not None:
            environment[settings.CODEARTIFACT_READER_ROLE_ARN] = self.reader_role.role_arn
        if self.publisher_role is not None:
            environment[settings.CODEARTIFACT_PUBLISHER_ROLE_ARN] = self.publisher_role.role_arn
        if domain_owner:
            environment[settings.CODEARTIFACT_DOMAIN_OWNER] = domain_owner

        self.function = kernel_access_function(
            self,
            description="kernel-access OIDC token exchange",
            handler=contract.EXCHANGE_HANDLER,
            role=self.function_role,
            log_group=self.log_group,
            environment=environment,
            code=code,
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrent_executions,
            powertools_layer_version=powertools_layer_version,
        )

        # --- least privilege ---
        role_arns = self._assumable_role_arns(deployed)
        self._target_role_arns = list(role_arns)
        if self.reader_role is not None and "read" in levels:
            role_arns.append(self.reader_role.role_arn)
        if self.publisher_role is not None and "publish" in levels:
            role_arns.append(self.publisher_role.role_arn)
        self._grant_assume(role_arns)
        iam.Grant.add_to_principal(
            grantee=self.function_role,
            actions=["dynamodb:PutItem"],
            resource_arns=[self.replay_table.table_arn, self.issued_tokens_table.table_arn],
        )
        audit_table.grant_append(self.function_role)
        iam.Grant.add_to_principal(
            grantee=self.function_role,
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
            resource_arns=[rate_limit_table.table_arn],
        )
        iam.Grant.add_to_principal(
            grantee=self.function_role,
            actions=["dynamodb:BatchGetItem", "dynamodb:GetItem"],
            resource_arns=[revocation_table.table_arn],
        )
        self._revocation_table = revocation_table
        self.config_document.grant_read(self.function_role)
        finish_function(self.function)
        for role in self._roles_to_trust:
            self.allow_assume(role)

        self._add_api(http_api, log_retention, throttling_rate_limit, throttling_burst_limit)
        self._output_audience(uses_default)

    def _output_audience(self, uses_default: bool) -> None:
        """Tell operators the audience workflows must request, when the default is in use."""
        if uses_default:
            CfnOutput(
                self,
                "DefaultAudience",
                value=self.default_audience,
                description="Audience workflows must request for their OIDC token (unique to this exchange)",
            )

    def _grant_assume(self, role_arns: list[str]) -> None:
        """Assume ``role_arns`` and tag the sessions, with the exchange's own tag keys only: the
        ``exchanged-token`` tag is what revocation keys on, so no other key may be set."""
        if not role_arns:
            return
        untagged = [action for action in ASSUME_ACTIONS if action != "sts:TagSession"]
        iam.Grant.add_to_principal(grantee=self.function_role, actions=untagged, resource_arns=role_arns)
        self.function_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sts:TagSession"],
                resources=role_arns,
                conditions={"ForAllValues:StringEquals": {"aws:TagKeys": list(SESSION_TAG_KEYS)}},
            )
        )

    def _tables(self) -> tuple[dynamodb.Table, dynamodb.Table]:
        replay = dynamodb.Table(
            self,
            "ReplayTable",
            partition_key=dynamodb.Attribute(name="jti", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr(),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expires_at",
            # Entries matter only until the token they record expires (minutes).
            removal_policy=RemovalPolicy.DESTROY,
        )
        issued = dynamodb.Table(
            self,
            "IssuedTokensTable",
            partition_key=dynamodb.Attribute(name="fingerprint", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=pitr(),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expires_at",
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        return replay, issued

    def _add_api(
        self,
        http_api: apigwv2.HttpApi | None,
        log_retention: logs.RetentionDays,
        throttling_rate_limit: int,
        throttling_burst_limit: int,
    ) -> None:
        """One JWT authorizer and one route per trusted issuer (on ``http_api`` or a new API)."""
        self.stage: apigwv2.HttpStage | None = None
        if http_api is None:
            http_api = apigwv2.HttpApi(
                self,
                "Api",
                description="kernel-access OIDC token exchange (JWT-authorized per issuer)",
                create_default_stage=False,
            )
            access_logs = logs.LogGroup(
                self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.RETAIN
            )
            self.stage = apigwv2.HttpStage(
                self,
                "DefaultStage",
                http_api=http_api,
                auto_deploy=True,
                throttle=apigwv2.ThrottleSettings(
                    rate_limit=throttling_rate_limit, burst_limit=throttling_burst_limit
                ),
                access_log_settings=AccessLogSettings(access_logs, ACCESS_LOG_FORMAT),
            )
        self.http_api = http_api
        integration = integrations.HttpLambdaIntegration("ExchangeIntegration", self.function)
        self.authorizers: dict[str, authorizers.HttpJwtAuthorizer] = {}
        self.routes: dict[str, apigwv2.HttpRoute] = {}
        for name, issuer in sorted(self.config.issuers.items()):
            route = contract.exchange_route(name)
            if route.auth != "JWT":  # pragma: no cover - guards a future contract change
                raise ValueError(f"exchange route {route.route_key} must be JWT-authorized")
            authorizer = authorizers.HttpJwtAuthorizer(
                f"{_construct_id(name)}Authorizer",
                issuer.issuer,
                jwt_audience=list(issuer.audiences),
                authorizer_name=f"oidc-{name}",
            )
            [http_route] = http_api.add_routes(
                path=route.path,
                methods=[apigwv2.HttpMethod(route.method)],
                integration=integration,
                authorizer=authorizer,
            )
            self.authorizers[name] = authorizer
            self.routes[name] = http_route
        if self.stage is not None:
            CfnOutput(
                self, "ApiUrl", value=self.stage.url, description="URL of the kernel-access token exchange"
            )

    def _minting_roles(
        self,
        codeartifact: CodeArtifactRegistry | None,
        reader: iam.IRole | None,
        publisher: iam.IRole | None,
        levels: tuple[str, ...],
        name_suffix: str,
    ) -> tuple[iam.IRole | None, iam.IRole | None]:
        """The given minting roles, or (with a registry) our own for the levels policies can grant."""
        if codeartifact is not None:
            if reader is None and "read" in levels:
                reader = self._minting_role("CodeArtifactReaderRole", "reader", name_suffix)
                codeartifact.grant_read(reader)
            if publisher is None and "publish" in levels:
                publisher = self._minting_role("CodeArtifactPublisherRole", "publisher", name_suffix)
                codeartifact.grant_publish(publisher)
        return reader, publisher

    def _minting_role(self, construct_id: str, kind: str, name_suffix: str) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            role_name=f"kernel-access-exchange-codeartifact-{kind}{name_suffix}",
            description=f"Assumed by the kernel-access token exchange to mint CodeArtifact {kind} tokens",
            assumed_by=iam.ArnPrincipal(self.function_role.role_arn),
            max_session_duration=Duration.hours(1),
        )
        from .roles import set_trust_statements

        set_trust_statements(role, [self.trust_statement()])
        return role

    def _referenced_role_keys(self, document: Mapping[str, Any]) -> list[str]:
        targets = document.get("targets", {})
        keys: list[str] = []
        for name in sorted(self.config.trust_policies):
            spec = targets.get(name, {})
            if spec.get("type") == "aws_role" and "role" in spec and self.config.trust_policies[name]:
                keys.append(spec["role"])
        return keys

    def _assumable_role_arns(self, deployed: Mapping[str, Any]) -> list[str]:
        """ARNs of the aws_role targets some trust policy names (the only roles it may assume)."""
        targets = deployed.get("targets", {})
        arns: list[str] = []
        for name in sorted(self.config.trust_policies):
            spec = targets.get(name, {})
            if spec.get("type") == "aws_role" and self.config.trust_policies[name]:
                arns.append(spec["role_arn"])
        return arns

    def allow_assume(self, role: iam.Role) -> None:
        """Add :meth:`trust_statement` to ``role``'s trust policy, keeping its existing statements.

        Works both for roles whose trust document was written with ``set_trust_statements`` (an
        L1 ``PolicyDocument``) and for ordinary ``iam.Role`` trust policies.
        """
        cfn_role = cast(iam.CfnRole, role.node.default_child)
        document = cfn_role.assume_role_policy_document
        if isinstance(document, iam.PolicyDocument):
            document.add_statements(self.trust_statement())
        else:
            role.assume_role_policy.add_statements(self.trust_statement())  # type: ignore[union-attr]

    def trust_statement(self, sid: str = "TokenExchangeOnly") -> iam.PolicyStatement:
        """The trust statement a target role needs so this exchange can assume it."""
        return iam.PolicyStatement(
            sid=sid,
            actions=list(ASSUME_ACTIONS),
            principals=[iam.ArnPrincipal(self.function_role.role_arn)],
        )

    @property
    def url(self) -> str:
        """Base URL of the created stage (``http_api.api_endpoint`` when an API was passed in)."""
        return self.stage.url if self.stage is not None else self.http_api.api_endpoint

    def grant_list_issued(self, grantee: iam.IGrantable) -> iam.Grant:
        """What ``kernel-access exchange list`` needs (Scan/GetItem on the issued-tokens table)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:Scan", "dynamodb:GetItem"],
            resource_arns=[self.issued_tokens_table.table_arn],
        )

    def grant_revoke_issued(self, grantee: iam.IGrantable) -> iam.Grant:
        """What ``kernel-access exchange revoke`` needs: read and mark the issued-tokens table, add
        to the revocation table, and put/delete the cut-off policy on the AWS-role targets."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan"],
            resource_arns=[self.issued_tokens_table.table_arn],
        )
        # Only the exchange's own entries (subjects and tokens), never a vending caller or partner.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem"],
                resources=[self._revocation_table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["caller#oidc:*", "token#*"]}
                },
            )
        )
        if self._target_role_arns:
            grant = grant.combine(
                iam.Grant.add_to_principal(
                    grantee=grantee,
                    actions=["iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRolePolicy"],
                    resource_arns=self._target_role_arns,
                )
            )
        return grant

    def metric_errors(self) -> cloudwatch.Metric:
        return self.function.metric_errors(statistic="Sum")

    def metric_granted(self) -> cloudwatch.Metric:
        """Exchanges granted (EMF metric ``ExchangeGranted`` of the handler)."""
        return cloudwatch.Metric(
            namespace=self._metrics_namespace,
            metric_name=telemetry.EXCHANGE_GRANTED.name,
            dimensions_map={"service": telemetry.EXCHANGE_SERVICE},
            statistic="Sum",
        )
