"""The two deployable stacks: the kernel account's and each partner account's."""

from __future__ import annotations

from typing import Any, Final

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from .audit_archive import AuditArchive
from .audit_table import AuditTable
from .codeartifact import CodeArtifactRegistry
from .config import KernelAccessConfig, PartnerConfig
from .config_store import ConfigBucket
from .monitoring import DEFAULT_RUNBOOK_URL, KernelAccessMonitoring
from .partner_resources import WORKLOAD_ROLE_NAME, add_partner_resources, kernel_role_name
from .partner_stackset import PartnerRolloutStack, stackset_partner_names
from .roles import KernelAccessRoles
from .service_api import KernelServiceApi, retention_days
from .token_exchange import TokenExchange
from .vending import CredentialVendingService, finish_function, function_role

_ECHO_SOURCE: Final = '''\
import json


def handler(event, context):
    """Echo the verified caller: what a kernel service sees behind the IAM authorizer."""
    identity = event.get("requestContext", {}).get("authorizer", {}).get("iam", {})
    body = {"caller_arn": identity.get("userArn"), "account_id": identity.get("accountId"),
            "route": event.get("routeKey")}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
'''


class KernelAccountStack(Stack):
    """Everything in the kernel account, composed from a ``KernelAccessConfig``.

    Props (keyword-only): ``config``; ``example_service`` (Default: False) adds an ``EchoService``
    ``KernelServiceApi`` with one Lambda route ``GET /echo`` the partner roles may call (example
    code: off unless asked for; the app passes ``config.example_service``, which
    ``kernel-access local`` turns on);
    ``code`` overrides the vending (and exchange) Lambda's code; the rest are ``Stack`` props.

    When the config has an ``exchange`` section, a ``TokenExchange`` (child "TokenExchange") is
    added on its own JWT-authorized HTTP API. It shares the audit table and the vending service's
    rate-limit table, may name the vending target roles by ``"role": NAME`` (those it can reach get
    a ``TokenExchangeOnly`` trust statement) and mints CodeArtifact tokens through the registry's
    existing minting roles (trusted by the exchange only for the levels its trust policies grant).
    Without the section no exchange resource is created.

    A ``KernelAccessMonitoring`` (child "Monitoring") watches the vending service and the exchange:
    alarms to an encrypted SNS topic (or the config's ``monitoring.topic_arn``), email
    subscriptions and thresholds from the optional ``monitoring`` section, a dashboard and saved
    Logs Insights queries. The audit table's stream is archived by an ``AuditArchive`` (child
    "AuditArchive") into an Object Lock bucket; every target role carries the vending service's
    ``TargetRoleBoundary``.

    External partners' roles are not in this stack's own template: ``KernelAccessRoles`` puts them
    in nested stacks (``ExternalPartnerRoles-<nn>``, see ``roles.external_role_shard``), so the
    template does not grow with them.

    The vending policy and the exchange configuration are objects of one versioned ``ConfigBucket``
    (child "ConfigBucket"; keys in ``kernel_access.contract``), deployed by ``cdk deploy``.

    Attributes: ``config``, ``kernel_roles``, ``codeartifact`` (or None), ``audit_table``,
    ``audit_archive``, ``config_bucket``, ``vending``, ``token_exchange`` (or None), ``echo_service``
    (or None), ``monitoring``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: KernelAccessConfig,
        example_service: bool = False,
        code: lambda_.Code | None = None,
        **stack_props: Any,
    ) -> None:
        stack_props.setdefault("env", Environment(account=config.kernel_account, region=config.region))
        stack_props.setdefault("description", "kernel-access: kernel account (roles, vending API, audit)")
        super().__init__(scope, construct_id, **stack_props)
        self.config = config
        retention = retention_days(config.log_retention_days)
        self.kernel_roles = KernelAccessRoles(
            self,
            "KernelAccessRoles",
            partners=config.partners,
            organization_id=config.organization_id,
            name_suffix=config.name_suffix,
        )
        self.codeartifact: CodeArtifactRegistry | None = None
        if config.codeartifact is not None and config.organization_id is not None:
            # (load_config guarantees an organization_id whenever CodeArtifact is configured.)
            self.codeartifact = CodeArtifactRegistry(
                self,
                "CodeArtifact",
                domain_name=config.codeartifact.domain,
                organization_id=config.organization_id,
                repository_name=config.codeartifact.repository,
                upstreams=config.codeartifact.upstreams,
                name_suffix=config.name_suffix,
            )
        self.audit_table = AuditTable(self, "AuditTable", break_glass_role_name=config.audit_break_glass_role)
        extra: dict[str, Any] = {}
        if config.powertools_layer_version is not None:
            extra["powertools_layer_version"] = config.powertools_layer_version
        self.audit_archive = AuditArchive(
            self,
            "AuditArchive",
            audit_table=self.audit_table,
            retention_days=config.audit_archive_retention_days,
            log_retention=retention,
            code=code,
            **extra,
        )
        self.config_bucket = ConfigBucket(self, "ConfigBucket", log_retention=retention)
        self.vending = CredentialVendingService(
            self,
            "Vending",
            kernel_roles=self.kernel_roles,
            policy_document=config.policy_document,
            config_bucket=self.config_bucket,
            target_roles=config.target_roles,
            audit_table=self.audit_table,
            codeartifact=self.codeartifact,
            name_suffix=config.name_suffix,
            policy_max_staleness_seconds=config.policy_max_staleness_seconds,
            rate_limit_requests=config.rate_limit_requests,
            rate_limit_session_requests=config.rate_limit_session_requests,
            rate_limit_window_seconds=config.rate_limit_window_seconds,
            audit_retention_days=config.audit_retention_days,
            log_retention=retention,
            throttling_rate_limit=config.api_throttling_rate_limit,
            throttling_burst_limit=config.api_throttling_burst_limit,
            code=code,
            **extra,
        )
        self.token_exchange: TokenExchange | None = None
        if config.exchange is not None:
            self.token_exchange = self._token_exchange(config, retention, code, extra)
        self.echo_service: KernelServiceApi | None = None
        if example_service:
            self.echo_service = self._echo_service(retention, config)
        monitoring = config.monitoring
        self.monitoring = KernelAccessMonitoring(
            self,
            "Monitoring",
            vending=self.vending,
            token_exchange=self.token_exchange,
            thresholds=monitoring.thresholds,
            topic=(
                sns.Topic.from_topic_arn(self, "AlarmTopic", monitoring.topic_arn)
                if monitoring.topic_arn
                else None
            ),
            email_subscriptions=monitoring.alarm_emails,
            runbook_url=monitoring.runbook_url or DEFAULT_RUNBOOK_URL,
        )

    def _token_exchange(
        self,
        config: KernelAccessConfig,
        retention: logs.RetentionDays,
        code: lambda_.Code | None,
        extra: dict[str, Any],
    ) -> TokenExchange:
        """The OIDC token exchange, reusing the audit table, rate-limit table and minting roles."""
        assert config.exchange is not None
        exchange_settings = config.exchange
        # Reuse the registry's minting roles, but only for the levels some trust policy can grant:
        # the exchange gets neither the assume grant nor the trust for the others.
        reader = publisher = None
        if self.codeartifact is not None:
            if "read" in exchange_settings.codeartifact_levels:
                reader = self.codeartifact.reader_role
            if "publish" in exchange_settings.codeartifact_levels:
                publisher = self.codeartifact.publisher_role
        exchange = TokenExchange(
            self,
            "TokenExchange",
            exchange_config=exchange_settings.document,
            config_bucket=self.config_bucket,
            audit_table=self.audit_table,
            rate_limit_table=self.vending.rate_limit_table,
            revocation_table=self.vending.revocation_table,
            default_audience=exchange_settings.default_audience or None,
            target_roles=self.vending.target_roles,
            codeartifact=self.codeartifact,
            codeartifact_reader_role=reader,
            codeartifact_publisher_role=publisher,
            name_suffix=config.name_suffix,
            policy_max_staleness_seconds=config.policy_max_staleness_seconds,
            rate_limit_requests=exchange_settings.rate_limit_requests,
            rate_limit_window_seconds=exchange_settings.rate_limit_window_seconds,
            audit_retention_days=config.audit_retention_days,
            log_retention=retention,
            throttling_rate_limit=exchange_settings.api_throttling_rate_limit,
            throttling_burst_limit=exchange_settings.api_throttling_burst_limit,
            code=code,
            **extra,
        )
        for role in (reader, publisher):
            if role is not None:
                exchange.allow_assume(role)
        return exchange

    def _echo_service(self, retention: logs.RetentionDays, config: KernelAccessConfig) -> KernelServiceApi:
        log_group = logs.LogGroup(self, "EchoLogs", retention=retention, removal_policy=RemovalPolicy.RETAIN)
        echo = lambda_.Function(
            self,
            "EchoFunction",
            description="Example kernel service: echoes the verified caller",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=lambda_.Code.from_inline(_ECHO_SOURCE),
            role=function_role(
                self, "EchoFunctionRole", log_group, "Execution role of the example echo service"
            ),
            memory_size=256,
            timeout=Duration.seconds(5),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
        )
        finish_function(echo)
        service = KernelServiceApi(
            self,
            "EchoService",
            description="Example kernel service behind the IAM authorizer",
            throttling_rate_limit=config.api_throttling_rate_limit,
            throttling_burst_limit=config.api_throttling_burst_limit,
            log_retention=retention,
        )
        service.add_lambda_route("GET", "/echo", echo)
        service.grant_invoke_to_policy(self.kernel_roles.invoke_policy)
        CfnOutput(self, "EchoServiceUrl", value=service.url, description="URL of the example echo service")
        return service


class PartnerAccountStack(Stack):
    """The partner side: a workload role that may assume the right kernel role, and SSM
    parameters under ``/kernel-access/`` that tell partner applications how to reach the kernel
    (:func:`partner_resources.add_partner_resources`, the definition ``PartnerStackSet``'s template
    shares).

    Props (keyword-only):
        partner: the partner (``config.PartnerConfig``).
        kernel_account: account id of the kernel.
        kernel_region: region of the kernel's APIs.
        name_suffix: suffix of the kernel role names. Default: "".
        vending_api_url: URL of the deployed vending API (the kernel stack's ``ApiUrl`` output).
            Default: None -> the ``vending-api-url`` parameter is not created (an HTTP API id is
            only known after the kernel stack is deployed, and cross-account references do not
            exist); set ``vending_api_url`` in the config and deploy again. Clients then fail with
            ParameterNotFound instead of calling a made-up URL.
        workload_principal: who may assume the workload role. Default: the Lambda service.
        workload_role_name: Default: "kernel-access-client" + name_suffix.

    Attributes: ``workload_role``, ``kernel_role_arn``, ``parameters`` (name -> StringParameter).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        partner: PartnerConfig,
        kernel_account: str,
        kernel_region: str,
        name_suffix: str = "",
        vending_api_url: str | None = None,
        workload_principal: iam.IPrincipal | None = None,
        workload_role_name: str | None = None,
        **stack_props: Any,
    ) -> None:
        stack_props.setdefault("env", Environment(account=partner.account_id, region=partner.region))
        stack_props.setdefault("description", f"kernel-access: partner {partner.name}")
        super().__init__(scope, construct_id, **stack_props)
        resources = add_partner_resources(
            self,
            kernel_account=kernel_account,
            kernel_region=kernel_region,
            kernel_role=kernel_role_name(partner, name_suffix),
            partner_name=partner.name,
            external_id=partner.external_id,
            vending_api_url=vending_api_url,
            workload_principal=workload_principal,
            workload_role_name=workload_role_name or WORKLOAD_ROLE_NAME + name_suffix,
        )
        self.workload_role = resources.workload_role
        self.kernel_role_arn = resources.kernel_role_arn
        self.parameters: dict[str, ssm.StringParameter] = resources.parameters


def partner_stack_id(partner: PartnerConfig) -> str:
    return "KernelAccessPartner-" + partner.name


def kernel_stack_id() -> str:
    return "KernelAccessKernel"


def build_stacks(
    scope: Construct, config: KernelAccessConfig
) -> tuple[KernelAccountStack, list[PartnerAccountStack]]:
    """The kernel stack and one stack per partner, except the partners the configuration's
    ``partner_rollout.stackset`` covers: those get their resources from one StackSet, defined in the
    ``KernelAccessPartnerRollout`` stack (the management or delegated administrator account)."""
    kernel = KernelAccountStack(
        scope, kernel_stack_id(), config=config, example_service=config.example_service
    )
    through_stackset = stackset_partner_names(config)
    partners = [
        PartnerAccountStack(
            scope,
            partner_stack_id(partner),
            partner=partner,
            kernel_account=config.kernel_account,
            kernel_region=config.region,
            name_suffix=config.name_suffix,
            vending_api_url=config.vending_api_url,
        )
        for partner in config.partners
        if partner.name not in through_stackset
    ]
    if config.partner_rollout is not None:
        PartnerRolloutStack(scope, PartnerRolloutStack.STACK_ID, config=config)
    return kernel, partners
