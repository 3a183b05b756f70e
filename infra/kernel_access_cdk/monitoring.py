"""``KernelAccessMonitoring``: the alarms, alarm topic and dashboard of a kernel-access deployment.

Every alarm watches one signal an on-call operator must hear about before a partner does (audit
writes failing, a policy that no longer loads, a breaker stuck open, throttled tables, a Lambda at
its limits, ...). Each alarm description names what it means and links to its runbook section in
``docs/operations.md`` (``ALARM_KINDS`` is the list of sections; a test keeps the two in step).

Hand-written ``cloudwatch.Alarm``s rather than cdklabs' ``cdk-monitoring-constructs``: most alarms
here are on our own EMF metrics, which that library would only wrap through its custom-metric
monitoring, while it would add a jsii dependency whose ``aws-cdk-lib`` peer range must move in
lockstep with the version this package pins. The AWS-service alarms it offers are a few lines each.

The runtime's own metrics come from :mod:`kernel_access.telemetry` (names, dimension sets,
namespace): the alarms query exactly what the Lambdas emit. Alarms over a label the construct cannot
enumerate at synth (every ``route`` a ``Denied`` may carry, every breaker name, every DynamoDB
operation) use CloudWatch Metrics Insights queries (``SELECT SUM(Denied) FROM SCHEMA(...) WHERE
...``), so a new route or operation is covered without a template change.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.aws_apigatewayv2 import HttpApi
from constructs import Construct
from kernel_access import contract, telemetry
from kernel_access.contract import ErrorCode

from .nag import acknowledge

if TYPE_CHECKING:
    from .token_exchange import TokenExchange
    from .vending import CredentialVendingService

#: Where the runbooks live; alarm descriptions link ``<runbook_url>#<anchor>``.
DEFAULT_RUNBOOK_URL: Final = "docs/operations.md"
_AT_LEAST: Final = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
#: What a metrics namespace may contain here (it is quoted into Metrics Insights queries).
_NAMESPACE_RE: Final = re.compile(r"^[A-Za-z0-9._/#:-]{1,255}$")
#: Lambda's default account-wide concurrency quota (a function without reserved concurrency shares it).
DEFAULT_ACCOUNT_CONCURRENCY: Final = 1000


@dataclass(frozen=True)
class AlarmKind:
    """One kind of alarm and its runbook section (``docs/operations.md#<anchor>``)."""

    anchor: str
    summary: str


#: Every kind of alarm this construct creates, by key; the runbook has one section per anchor.
ALARM_KINDS: Final[Mapping[str, AlarmKind]] = {
    "internal-errors": AlarmKind(
        "alarm-internal-errors",
        "INTERNAL_ERROR answered (an audit write failed, or an unexpected error): callers get no credential.",
    ),
    "policy-load-failed": AlarmKind(
        "alarm-policy-load-failed",
        "POLICY_LOAD_FAILED answered: the policy parameter could not be loaded past the staleness bound.",
    ),
    "upstream-unavailable": AlarmKind(
        "alarm-upstream-unavailable",
        "UPSTREAM_UNAVAILABLE rate above threshold: STS, CodeArtifact, the rate limiter or the "
        "revocation store is failing.",
    ),
    "breaker-open": AlarmKind(
        "alarm-breaker-open",
        "A CodeArtifact token-refresh circuit breaker is open: token minting keeps failing.",
    ),
    "lambda-errors": AlarmKind(
        "alarm-lambda-errors", "The function raised unhandled errors (the handlers should never let one out)."
    ),
    "lambda-throttles": AlarmKind(
        "alarm-lambda-throttles", "Lambda throttled invocations: callers got 5xx from API Gateway."
    ),
    "lambda-duration": AlarmKind(
        "alarm-lambda-duration", "Duration p99 close to the function timeout: requests are about to time out."
    ),
    "lambda-concurrency": AlarmKind(
        "alarm-lambda-concurrency", "Concurrent executions close to the limit: throttling is next."
    ),
    "api-5xx": AlarmKind("alarm-api-5xx", "The HTTP API's 5xx rate is above threshold."),
    "api-latency": AlarmKind("alarm-api-latency", "The HTTP API's latency p99 is above threshold."),
    "dynamodb-throttles": AlarmKind(
        "alarm-dynamodb-throttles", "DynamoDB throttled requests on a kernel-access table."
    ),
    "dynamodb-system-errors": AlarmKind(
        "alarm-dynamodb-system-errors", "DynamoDB system errors (HTTP 500) on a kernel-access table."
    ),
    "exchange-refusal-surge": AlarmKind(
        "alarm-exchange-refusal-surge",
        "Surge of refused OIDC exchanges (4xx): a misconfigured pipeline or someone probing the exchange.",
    ),
    "rate-limited-surge": AlarmKind(
        "alarm-rate-limited-surge",
        "Surge of RATE_LIMITED refusals: a caller is looping, or the limit is too low for real traffic.",
    ),
}


@dataclass(frozen=True)
class MonitoringThresholds:
    """Every threshold of the alarms, with its default. Override any of them (in cdk.json under
    ``monitoring.thresholds``, or ``MonitoringThresholds(api_latency_p99_ms=5000)``).

    Counts are per ``period_minutes``. "Any" alarms (internal errors, policy load, Lambda errors,
    DynamoDB system errors) fire on the first period that breaches; rate and surge alarms need
    ``datapoints_to_alarm`` of ``evaluation_periods`` periods, so one noisy minute does not page.
    """

    #: Length of one evaluation period.
    period_minutes: int = 5
    #: Rate and surge alarms: periods examined / periods that must breach.
    evaluation_periods: int = 3
    datapoints_to_alarm: int = 2
    #: INTERNAL_ERROR answers (vending and exchange each) per period.
    internal_errors: int = 1
    #: POLICY_LOAD_FAILED answers per period.
    policy_load_failures: int = 1
    #: UPSTREAM_UNAVAILABLE share of requests (%), evaluated only above ``min_requests`` requests.
    upstream_unavailable_percent: float = 5.0
    #: Fewest requests in a period for a rate alarm to evaluate (2 failures out of 3 are not a rate).
    min_requests: int = 20
    #: Unhandled Lambda errors and throttles per period.
    lambda_errors: int = 1
    lambda_throttles: int = 1
    #: Duration p99 alarm at this fraction of the function's timeout.
    duration_fraction_of_timeout: float = 0.8
    #: Concurrency alarm at this fraction of the reserved concurrency (or the account quota).
    concurrency_fraction_of_limit: float = 0.8
    #: The account's Lambda concurrency quota, for functions without reserved concurrency.
    account_concurrency_limit: int = DEFAULT_ACCOUNT_CONCURRENCY
    #: API Gateway 5xx share of requests (%).
    api_5xx_percent: float = 1.0
    #: API Gateway latency p99 (ms). The vending path is an STS call and two DynamoDB writes.
    api_latency_p99_ms: int = 3000
    #: DynamoDB throttled requests and system errors per table per period.
    dynamodb_throttled_requests: int = 1
    dynamodb_system_errors: int = 1
    #: Refused OIDC exchanges (API 4xx, authorizer rejections included) per period.
    exchange_refusals: int = 100
    #: RATE_LIMITED refusals per period (vending and exchange each).
    rate_limited: int = 50

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class LogQuery:
    """A CloudWatch Logs Insights query over the functions' JSON logs, saved as an
    ``AWS::Logs::QueryDefinition`` (and, when ``on_dashboard``, shown on the dashboard).

    The fields are the keys kernel-access log lines carry (``request_id``, ``route`` from the first
    line; ``partner``, ``caller``, ``decision``, ``error_code`` from the moment they are known).
    Each request ends with one line whose message is ``telemetry.DECISION_MESSAGE`` (with
    ``latency_ms`` on the vending side): queries that count requests count those lines."""

    name: str
    title: str
    fields: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    stats: str | None = None
    sort: str | None = None
    limit: int | None = None
    on_dashboard: bool = False

    @property
    def lines(self) -> tuple[str, ...]:
        """The query as Logs Insights lines (what the dashboard widget and the saved query hold)."""
        lines = [f"fields {', '.join(self.fields)}"] if self.fields else []
        lines += [f"filter {f}" for f in self.filters]
        lines += [f"stats {self.stats}"] if self.stats else []
        lines += [f"sort {self.sort}"] if self.sort else []
        lines += [f"limit {self.limit}"] if self.limit else []
        return tuple(lines)


_DECIDED: Final = f'message = "{telemetry.DECISION_MESSAGE}"'
#: The saved queries for the questions on-call and security teams ask most.
LOG_QUERIES: Final[tuple[LogQuery, ...]] = (
    LogQuery(
        "denials-by-partner",
        "Refusals by partner and error code",
        filters=(_DECIDED, 'decision in ["deny", "error"]'),
        stats="count(*) as refusals by partner, error_code",
        sort="refusals desc",
        limit=100,
        on_dashboard=True,
    ),
    LogQuery(
        "requests-by-partner",
        "Requests by partner and decision",
        filters=(_DECIDED,),
        stats="count(*) as requests by partner, decision",
        sort="requests desc",
        limit=100,
        on_dashboard=True,
    ),
    LogQuery(
        "top-callers",
        "Top callers",
        filters=(_DECIDED,),
        stats="count(*) as requests by caller, partner",
        sort="requests desc",
        limit=25,
        on_dashboard=True,
    ),
    LogQuery(
        "slowest-requests",
        "Slowest requests",
        fields=("@timestamp", "request_id", "partner", "route", "decision", "error_code", "latency_ms"),
        filters=("ispresent(latency_ms)",),
        sort="latency_ms desc",
        limit=50,
    ),
    LogQuery(
        "errors",
        "Error log lines",
        fields=("@timestamp", "request_id", "partner", "route", "error_code", "message"),
        filters=('level = "ERROR"',),
        sort="@timestamp desc",
        limit=100,
    ),
    LogQuery(
        "rate-limited-callers",
        "Rate-limited callers",
        filters=(_DECIDED, 'error_code = "RATE_LIMITED"'),
        stats="count(*) as refusals by caller, partner",
        sort="refusals desc",
        limit=50,
    ),
)


class KernelAccessMonitoring(Construct):
    """Alarms, an encrypted alarm topic and a dashboard for a vending service (and exchange).

    Props (keyword-only):
        vending: the ``CredentialVendingService`` to watch (its function, API and tables).
        token_exchange: the ``TokenExchange`` to watch too. Default: none.
        thresholds: ``MonitoringThresholds``. Default: the documented defaults.
        topic: an existing SNS topic for alarm (and OK) notifications. Default: a new topic (child
            "AlarmTopic") encrypted with a new customer-managed KMS key (child "AlarmTopicKey") that
            CloudWatch may use (the AWS-managed ``aws/sns`` key does not let CloudWatch publish).
        email_subscriptions: addresses subscribed to the topic. Default: none.
        runbook_url: base of the runbook links in alarm descriptions. Default: "docs/operations.md".
        metrics_namespace: the functions' ``POWERTOOLS_METRICS_NAMESPACE``. Default: "KernelAccess".
        alarm_name_prefix: prefix of every alarm name. Default: the stack name.
        dashboard_name: Default: ``<alarm_name_prefix>-operations``.

    Attributes: ``topic``, ``encryption_key`` (None when a topic was given), ``alarms`` (alarm id ->
    ``cloudwatch.Alarm``), ``dashboard``, ``query_definitions`` (name -> ``logs.QueryDefinition``,
    one per ``LOG_QUERIES`` entry), ``thresholds``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vending: CredentialVendingService,
        token_exchange: TokenExchange | None = None,
        thresholds: MonitoringThresholds | None = None,
        topic: sns.ITopic | None = None,
        email_subscriptions: Sequence[str] = (),
        runbook_url: str = DEFAULT_RUNBOOK_URL,
        metrics_namespace: str = telemetry.DEFAULT_NAMESPACE,
        alarm_name_prefix: str | None = None,
        dashboard_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not _NAMESPACE_RE.fullmatch(metrics_namespace):
            raise ValueError(f"KernelAccessMonitoring: metrics_namespace {metrics_namespace!r} is not valid")
        self.thresholds = thresholds or MonitoringThresholds()
        self._namespace = metrics_namespace
        self._runbook_url = runbook_url
        self._prefix = alarm_name_prefix or Stack.of(self).stack_name
        self._period = Duration.minutes(self.thresholds.period_minutes)
        self.encryption_key: kms.Key | None = None
        if topic is None:
            self.encryption_key = kms.Key(
                self,
                "AlarmTopicKey",
                description="Encrypts the kernel-access alarm topic",
                enable_key_rotation=True,
            )
            # CloudWatch publishes alarm notifications with this key (and only this account's alarms).
            self.encryption_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="CloudWatchAlarmsPublish",
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
                )
            )
            topic = sns.Topic(
                self,
                "AlarmTopic",
                display_name="kernel-access alarms",
                master_key=self.encryption_key,
                enforce_ssl=True,
            )
        self.topic: sns.ITopic = topic
        for index, address in enumerate(email_subscriptions):
            subscription = sns.Subscription(
                self,
                f"Email{index}",
                topic=self.topic,
                protocol=sns.SubscriptionProtocol.EMAIL,
                endpoint=address,
            )
            acknowledge(
                subscription,
                "Serverless::Serverless-SNSRedrivePolicy",
                "Email subscription of the alarm topic: a notification SNS cannot deliver leaves the "
                "alarm in ALARM in CloudWatch and on the dashboard; a dead-letter queue would hold "
                "copies nobody reads.",
            )
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        functions: dict[str, lambda_.Function] = {"Vending": vending.function}
        apis: dict[str, HttpApi] = {"Vending": vending.api.api}
        tables: dict[str, dynamodb.ITable] = {
            "Audit": vending.audit_table.table,
            "RateLimit": vending.rate_limit_table,
            "Revocation": vending.revocation_table,
        }
        if token_exchange is not None:
            functions["Exchange"] = token_exchange.function
            apis["Exchange"] = token_exchange.http_api
            tables["Replay"] = token_exchange.replay_table
            tables["IssuedTokens"] = token_exchange.issued_tokens_table

        self._runtime_alarms(vending, token_exchange)
        for name, function in functions.items():
            self._function_alarms(name, function)
        for name, api in apis.items():
            self._api_alarms(name, api)
        for name, table in tables.items():
            self._table_alarms(name, table)
        if token_exchange is not None:
            self._alarm(
                "ExchangeRefusalSurge",
                "exchange-refusal-surge",
                token_exchange.http_api.metric_client_error(statistic="Sum", period=self._period),
                self.thresholds.exchange_refusals,
                sustained=True,
            )
        log_groups: list[logs.ILogGroup] = [vending.log_group]
        if token_exchange is not None:
            log_groups.append(token_exchange.log_group)
        self.query_definitions = self._query_definitions(log_groups)
        self.dashboard = self._dashboard(
            dashboard_name, functions, apis, tables, log_groups, token_exchange is not None
        )

    # --- metrics -----------------------------------------------------------------------------

    def _insights(
        self, select: str, spec: telemetry.MetricSpec, where: str = "", label: str = ""
    ) -> cloudwatch.MathExpression:
        """A Metrics Insights query over one runtime metric (its exact dimension set)."""
        schema = ", ".join([f'"{self._namespace}"', *spec.dimensions])
        # Not SQL: a CloudWatch Metrics Insights query built from synth-time constants.
        query = f"SELECT {select}({spec.name}) FROM SCHEMA({schema}) WHERE service = '{spec.service}'"  # noqa: S608
        if where:
            query += f" AND {where}"
        return cloudwatch.MathExpression(expression=query, period=self._period, label=label or spec.name)

    def metric_denied(self, error_code: ErrorCode, *, route: str | None = None) -> cloudwatch.IMetric:
        """Vending refusals with ``error_code`` (every route, or one ``route`` key such as
        ``GET /credentials``), summed per period."""
        if route is None:
            return self._insights(
                "SUM", telemetry.DENIED, f"error_code = '{error_code.value}'", error_code.value
            )
        return self._runtime_metric(telemetry.DENIED, {"route": route, "error_code": error_code.value})

    def metric_exchange_refusals(self, error_code: ErrorCode) -> cloudwatch.Metric:
        """Exchange refusals with ``error_code``, summed per period."""
        return self._runtime_metric(telemetry.EXCHANGE_REFUSALS[error_code], {})

    def _runtime_metric(self, spec: telemetry.MetricSpec, dimensions: Mapping[str, str]) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=spec.name,
            dimensions_map={"service": spec.service, **dimensions},
            statistic="Sum",
            period=self._period,
        )

    # --- alarms ------------------------------------------------------------------------------

    def _alarm(
        self,
        alarm_id: str,
        kind: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        *,
        sustained: bool = False,
        comparison: cloudwatch.ComparisonOperator = _AT_LEAST,
        subject: str = "",
    ) -> cloudwatch.Alarm:
        spec = ALARM_KINDS[kind]
        t = self.thresholds
        description = f"{subject}{spec.summary} Runbook: {self._runbook_url}#{spec.anchor}"
        alarm = cloudwatch.Alarm(
            self,
            alarm_id,
            alarm_name=f"{self._prefix}-{alarm_id}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=t.evaluation_periods if sustained else 1,
            datapoints_to_alarm=t.datapoints_to_alarm if sustained else 1,
            # No data means no traffic (or no failures): never page for silence.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms[alarm_id] = alarm
        return alarm

    def _runtime_alarms(self, vending: CredentialVendingService, exchange: TokenExchange | None) -> None:
        t = self.thresholds
        self._alarm(
            "VendingInternalErrors",
            "internal-errors",
            self.metric_denied(ErrorCode.INTERNAL_ERROR),
            t.internal_errors,
        )
        self._alarm(
            "VendingPolicyLoadFailed",
            "policy-load-failed",
            self.metric_denied(ErrorCode.POLICY_LOAD_FAILED),
            t.policy_load_failures,
        )
        self._alarm(
            "VendingRateLimitedSurge",
            "rate-limited-surge",
            self.metric_denied(ErrorCode.RATE_LIMITED),
            t.rate_limited,
            sustained=True,
        )
        self._alarm(
            "BreakerOpen",
            "breaker-open",
            self._insights("MAX", telemetry.BREAKER_STATE, label="BreakerState (2 = open)"),
            telemetry.BREAKER_VALUES["open"],
        )
        # UPSTREAM_UNAVAILABLE share of invocations, per route of the contract plus the exchange.
        using: dict[str, cloudwatch.IMetric] = {}
        failures: list[str] = []
        for index, route in enumerate(contract.VENDING_ROUTES):
            using[f"u{index}"] = self.metric_denied(ErrorCode.UPSTREAM_UNAVAILABLE, route=route.route_key)
            failures.append(f"FILL(u{index}, 0)")
        using["inv"] = vending.function.metric_invocations(statistic="Sum", period=self._period)
        requests = "FILL(inv, 0)"
        if exchange is not None:
            using["ux"] = self.metric_exchange_refusals(ErrorCode.UPSTREAM_UNAVAILABLE)
            using["invx"] = exchange.function.metric_invocations(statistic="Sum", period=self._period)
            failures.append("FILL(ux, 0)")
            requests += " + FILL(invx, 0)"
        self._alarm(
            "UpstreamUnavailableRate",
            "upstream-unavailable",
            cloudwatch.MathExpression(
                expression=(
                    f"IF(({requests}) >= {t.min_requests}, 100 * ({' + '.join(failures)}) / ({requests}), 0)"
                ),
                using_metrics=using,
                period=self._period,
                label="UPSTREAM_UNAVAILABLE % of requests",
            ),
            t.upstream_unavailable_percent,
            sustained=True,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        if exchange is not None:
            self._alarm(
                "ExchangeInternalErrors",
                "internal-errors",
                self.metric_exchange_refusals(ErrorCode.INTERNAL_ERROR),
                t.internal_errors,
            )
            self._alarm(
                "ExchangePolicyLoadFailed",
                "policy-load-failed",
                self.metric_exchange_refusals(ErrorCode.POLICY_LOAD_FAILED),
                t.policy_load_failures,
            )
            self._alarm(
                "ExchangeRateLimitedSurge",
                "rate-limited-surge",
                self.metric_exchange_refusals(ErrorCode.RATE_LIMITED),
                t.rate_limited,
                sustained=True,
            )

    def _function_alarms(self, name: str, function: lambda_.Function) -> None:
        t = self.thresholds
        cfn = cast(lambda_.CfnFunction, function.node.default_child)
        timeout_seconds = function.timeout.to_seconds() if function.timeout is not None else 3
        reserved = cfn.reserved_concurrent_executions
        limit = reserved if isinstance(reserved, int) else t.account_concurrency_limit
        subject = f"{name} function: "
        self._alarm(
            f"{name}FunctionErrors",
            "lambda-errors",
            function.metric_errors(statistic="Sum", period=self._period),
            t.lambda_errors,
            subject=subject,
        )
        self._alarm(
            f"{name}FunctionThrottles",
            "lambda-throttles",
            function.metric_throttles(statistic="Sum", period=self._period),
            t.lambda_throttles,
            subject=subject,
        )
        self._alarm(
            f"{name}FunctionDurationP99",
            "lambda-duration",
            function.metric_duration(statistic="p99", period=self._period),
            round(timeout_seconds * 1000 * t.duration_fraction_of_timeout),
            sustained=True,
            subject=subject,
        )
        self._alarm(
            f"{name}FunctionConcurrency",
            "lambda-concurrency",
            function.metric("ConcurrentExecutions", statistic="Maximum", period=self._period),
            max(1, round(limit * t.concurrency_fraction_of_limit)),
            sustained=True,
            subject=subject,
        )

    def _api_alarms(self, name: str, api: HttpApi) -> None:
        t = self.thresholds
        subject = f"{name} API: "
        rate = cloudwatch.MathExpression(
            expression=f"IF(FILL(requests, 0) >= {t.min_requests}, 100 * FILL(errors, 0) / requests, 0)",
            using_metrics={
                "errors": api.metric_server_error(statistic="Sum", period=self._period),
                "requests": api.metric_count(statistic="Sum", period=self._period),
            },
            period=self._period,
            label="5xx % of requests",
        )
        self._alarm(
            f"{name}Api5xxRate",
            "api-5xx",
            rate,
            t.api_5xx_percent,
            sustained=True,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            subject=subject,
        )
        self._alarm(
            f"{name}ApiLatencyP99",
            "api-latency",
            api.metric_latency(statistic="p99", period=self._period),
            t.api_latency_p99_ms,
            sustained=True,
            subject=subject,
        )

    def _table_query(self, metric_name: str, table: dynamodb.ITable) -> cloudwatch.MathExpression:
        """Sum of a per-operation DynamoDB metric over every operation of one table."""
        return cloudwatch.MathExpression(
            expression=(
                f'SELECT SUM({metric_name}) FROM SCHEMA("AWS/DynamoDB", Operation, TableName) '  # noqa: S608
                f"WHERE TableName = '{table.table_name}'"
            ),
            period=self._period,
            label=metric_name,
        )

    def _table_alarms(self, name: str, table: dynamodb.ITable) -> None:
        t = self.thresholds
        subject = f"{name} table: "
        self._alarm(
            f"{name}TableThrottles",
            "dynamodb-throttles",
            self._table_query("ThrottledRequests", table),
            t.dynamodb_throttled_requests,
            subject=subject,
        )
        self._alarm(
            f"{name}TableSystemErrors",
            "dynamodb-system-errors",
            self._table_query("SystemErrors", table),
            t.dynamodb_system_errors,
            subject=subject,
        )

    # --- dashboard ---------------------------------------------------------------------------

    def _graph(
        self,
        title: str,
        left: Sequence[cloudwatch.IMetric],
        *,
        right: Sequence[cloudwatch.IMetric] = (),
        width: int = 8,
    ) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=title, left=list(left), right=list(right), width=width, height=6, period=self._period
        )

    def _grouped(self, spec: telemetry.MetricSpec, group_by: str) -> cloudwatch.MathExpression:
        """One line per value of ``group_by`` (every route or breaker, including future ones)."""
        select = "MAX" if spec is telemetry.BREAKER_STATE else "SUM"
        query = self._insights(select, spec).expression
        return cloudwatch.MathExpression(expression=f"{query} GROUP BY {group_by}", period=self._period)

    def _dashboard(  # noqa: PLR0917 - private, called once
        self,
        dashboard_name: str | None,
        functions: Mapping[str, lambda_.Function],
        apis: Mapping[str, HttpApi],
        tables: Mapping[str, dynamodb.ITable],
        log_groups: Sequence[logs.ILogGroup],
        with_exchange: bool,
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name or f"{self._prefix}-operations",
            default_interval=Duration.hours(6),
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "# kernel-access operations\nEvery alarm links its runbook; all runbooks: "
                    f"[{self._runbook_url}]({self._runbook_url})"
                ),
                width=24,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=4
            ),
        )
        # Vending per route: every route label the runtime emits (GROUP BY), latency p99 per
        # contract route (Metrics Insights has no percentiles).
        latency = [
            self._runtime_metric(telemetry.LATENCY, {"route": route.route_key}).with_(
                statistic="p99", label=route.route_key
            )
            for route in contract.VENDING_ROUTES
        ]
        dashboard.add_widgets(
            self._graph("Vending: allowed by route", [self._grouped(telemetry.ALLOWED, "route")]),
            self._graph("Vending: denied by route", [self._grouped(telemetry.DENIED, "route")]),
            self._graph("Vending: latency p99 by route (ms)", latency),
        )
        dashboard.add_widgets(
            self._graph(
                "Vending: refusals by error code", [self.metric_denied(c) for c in ErrorCode], width=16
            ),
            self._graph("Breakers (2 = open)", [self._grouped(telemetry.BREAKER_STATE, "breaker")]),
        )
        if with_exchange:
            exchange = [self._runtime_metric(telemetry.EXCHANGE_GRANTED, {})]
            exchange += [self.metric_exchange_refusals(code) for code in ErrorCode]
            dashboard.add_widgets(
                self._graph("Exchange: granted and refusals by error code", exchange, width=24)
            )
        # Per partner: from the JSON logs (a partner dimension would be a metric per partner).
        dashboard.add_widgets(
            *(
                cloudwatch.LogQueryWidget(
                    title=query.title,
                    log_group_names=[group.log_group_name for group in log_groups],
                    query_lines=list(query.lines),
                    view=cloudwatch.LogQueryVisualizationType.TABLE,
                    width=8,
                    height=6,
                )
                for query in LOG_QUERIES
                if query.on_dashboard
            )
        )
        dashboard.add_widgets(
            *(
                self._graph(
                    f"{name} function",
                    [
                        function.metric_invocations(statistic="Sum", period=self._period),
                        function.metric_errors(statistic="Sum", period=self._period),
                        function.metric_throttles(statistic="Sum", period=self._period),
                        function.metric("ConcurrentExecutions", statistic="Maximum", period=self._period),
                    ],
                    right=[function.metric_duration(statistic="p99", period=self._period)],
                    width=24 // len(functions),
                )
                for name, function in functions.items()
            )
        )
        dashboard.add_widgets(
            *(
                self._graph(
                    f"{name} API",
                    [
                        api.metric_count(statistic="Sum", period=self._period),
                        api.metric_client_error(statistic="Sum", period=self._period),
                        api.metric_server_error(statistic="Sum", period=self._period),
                    ],
                    right=[api.metric_latency(statistic="p99", period=self._period)],
                    width=24 // len(apis),
                )
                for name, api in apis.items()
            )
        )
        dashboard.add_widgets(
            self._graph(
                "DynamoDB throttled requests by table",
                [self._table_query("ThrottledRequests", t).with_(label=n) for n, t in tables.items()],
                width=12,
            ),
            self._graph(
                "DynamoDB system errors by table",
                [self._table_query("SystemErrors", t).with_(label=n) for n, t in tables.items()],
                width=12,
            ),
        )
        return dashboard

    def _query_definitions(self, log_groups: Sequence[logs.ILogGroup]) -> dict[str, logs.QueryDefinition]:
        return {
            query.name: logs.QueryDefinition(
                self,
                f"Query-{query.name}",
                query_definition_name=f"{self._prefix}/{query.name}",
                query_string=logs.QueryString(
                    fields=list(query.fields) or None,
                    filter_statements=list(query.filters) or None,
                    stats_statements=[query.stats] if query.stats else None,
                    sort=query.sort,
                    limit=query.limit,
                ),
                log_groups=list(log_groups),
            )
            for query in LOG_QUERIES
        }
