"""``KernelServiceApi``: the front door of any kernel service.

An HTTP API whose default authorizer is IAM, so a route can only be called with SigV4 credentials
whose identity policy allows ``execute-api:Invoke`` on it (HTTP APIs have no resource
policy). Routes forward either to a Lambda or to an HTTP backend; for HTTP backends the caller's
identity is passed in headers that API Gateway *overwrites* from the verified identity, so a client
can never supply them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .nag import IAM5, acknowledge_resource

#: Identity headers set from ``$context.identity.*`` on HTTP proxy routes (client values discarded).
CALLER_ARN_HEADER: Final = "x-kernel-caller-arn"
CALLER_ACCOUNT_HEADER: Final = "x-kernel-caller-account"
IDENTITY_HEADERS: Final = (CALLER_ARN_HEADER, CALLER_ACCOUNT_HEADER)


def header_spellings(name: str) -> list[str]:
    """Every spelling of header ``name`` that a WSGI-style backend reads as the same header.

    WSGI (and CGI, and servers built on them) expose a header as ``HTTP_`` + its name upper-cased
    with ``-`` turned into ``_``, so ``x_kernel_caller_arn`` and ``X-Kernel_Caller-Arn`` land in
    the same ``HTTP_X_KERNEL_CALLER_ARN`` as the real ``x-kernel-caller-arn``. Case needs no
    spelling of its own: API Gateway matches header names in parameter mappings
    case-insensitively. So the spellings are the name with each ``-`` either kept or made ``_``.
    """
    parts = name.split("-")
    return [
        parts[0] + "".join(separator + part for separator, part in zip(separators, parts[1:], strict=True))
        for separators in itertools.product("-_", repeat=len(parts) - 1)
    ]


#: One JSON object per request: enough to answer "who called what, when, with which result".
ACCESS_LOG_FORMAT: Final = json.dumps(
    {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTime",
        "callerArn": "$context.identity.userArn",
        "callerAccount": "$context.identity.accountId",
        "sourceIp": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "responseLatency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
    },
    separators=(",", ":"),
)


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogSettings:
    """``IAccessLogSettings`` is a jsii interface, not a struct: Python must implement it."""

    def __init__(self, log_group: logs.ILogGroup, log_format: str = ACCESS_LOG_FORMAT) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(self._format)


@dataclass(frozen=True)
class RouteSpec:
    """A route as ``(method, path)``; path starts with ``/``."""

    method: str
    path: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def retention_days(days: int) -> logs.RetentionDays:
    """CloudWatch Logs retention enum for a number of days (must be an allowed value)."""
    for member in logs.RetentionDays:
        if _RETENTION_VALUES.get(member.name) == days:
            return member
    raise ValueError(f"{days} is not a CloudWatch Logs retention period")


_RETENTION_VALUES: Final = {
    "ONE_DAY": 1, "THREE_DAYS": 3, "FIVE_DAYS": 5, "ONE_WEEK": 7, "TWO_WEEKS": 14, "ONE_MONTH": 30,
    "TWO_MONTHS": 60, "THREE_MONTHS": 90, "FOUR_MONTHS": 120, "FIVE_MONTHS": 150, "SIX_MONTHS": 180,
    "ONE_YEAR": 365, "THIRTEEN_MONTHS": 400, "EIGHTEEN_MONTHS": 545, "TWO_YEARS": 731,
    "THREE_YEARS": 1096, "FIVE_YEARS": 1827, "SIX_YEARS": 2192, "SEVEN_YEARS": 2557,
    "EIGHT_YEARS": 2922, "NINE_YEARS": 3288, "TEN_YEARS": 3653,
}  # fmt: skip


class KernelServiceApi(Construct):
    """An IAM-authorized HTTP API for a kernel service.

    Props (keyword-only):
        api_name: name of the HTTP API. Default: CDK-generated.
        description: API description. Default: none.
        throttling_rate_limit: steady-state requests/s of the default stage. Default: 50.
        throttling_burst_limit: burst of the default stage. Default: 100.
        log_retention: access-log retention. Default: one year.
        log_removal_policy: what happens to the access-log group on stack deletion. Default: RETAIN.

    Attributes: ``api`` (``HttpApi``, id "Resource"), ``stage`` (the ``$default`` stage),
    ``access_log_group``, ``url``, ``routes`` (every ``RouteSpec`` added).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str | None = None,
        description: str | None = None,
        throttling_rate_limit: int = 50,
        throttling_burst_limit: int = 100,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self,
            "Resource",
            api_name=api_name,
            description=description,
            # Every route is IAM-authorized unless a caller explicitly passes another authorizer.
            default_authorizer=authorizers.HttpIamAuthorizer(),
            create_default_stage=False,
        )
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=log_removal_policy
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=throttling_rate_limit, burst_limit=throttling_burst_limit
            ),
            access_log_settings=AccessLogSettings(self.access_log_group),
        )
        self._routes: list[RouteSpec] = []

    @property
    def url(self) -> str:
        """``https://{apiId}.execute-api.{region}.amazonaws.com/`` (a token until deploy)."""
        return self.stage.url

    @property
    def routes(self) -> tuple[RouteSpec, ...]:
        return tuple(self._routes)

    def _add(
        self, method: str, path: str, integration: apigwv2.HttpRouteIntegration
    ) -> list[apigwv2.HttpRoute]:
        http_method = apigwv2.HttpMethod(method.upper())
        spec = RouteSpec(method.upper(), path)
        if spec in self._routes:
            raise ValueError(f"route {spec.route_key} is already defined")
        self._routes.append(spec)
        return self.api.add_routes(path=path, methods=[http_method], integration=integration)

    def add_lambda_route(
        self, method: str, path: str, handler: lambda_.IFunction, *, integration_id: str | None = None
    ) -> list[apigwv2.HttpRoute]:
        """Serve ``method path`` with ``handler`` (payload format 2.0)."""
        name = integration_id or f"{method.upper()}{_id_for_path(path)}Integration"
        return self._add(method, path, integrations.HttpLambdaIntegration(name, handler))

    def add_http_proxy_route(
        self, method: str, path: str, url: str, *, integration_id: str | None = None
    ) -> list[apigwv2.HttpRoute]:
        """Proxy ``method path`` to ``url``; the identity headers are overwritten from the verified
        caller, and every other spelling of them (:func:`header_spellings`) is removed, so whatever
        a client sends under any name a backend could read as an identity header never reaches it.

        Parameter mappings cannot match header names by pattern, so each spelling is one
        ``remove`` entry (7 per header). A client can still send *other* ``x-kernel-caller-*``
        names (``x-kernel-caller-partner``…): backends must read only the two documented headers.
        """
        name = integration_id or f"{method.upper()}{_id_for_path(path)}Integration"
        mapping = apigwv2.ParameterMapping()
        for header in IDENTITY_HEADERS:
            for spelling in header_spellings(header):
                if spelling != header:
                    mapping.remove_header(spelling)
        mapping.overwrite_header(CALLER_ARN_HEADER, apigwv2.MappingValue.context_variable("identity.userArn"))
        mapping.overwrite_header(
            CALLER_ACCOUNT_HEADER, apigwv2.MappingValue.context_variable("identity.accountId")
        )
        integration = integrations.HttpUrlIntegration(
            name, url, method=apigwv2.HttpMethod(method.upper()), parameter_mapping=mapping
        )
        return self._add(method, path, integration)

    def arn_for_route(self, route: RouteSpec) -> str:
        """``arn:aws:execute-api:{region}:{account}:{apiId}/*/{METHOD}/{path}``."""
        return self.api.arn_for_execute_api(route.method, route.path, "*")

    def _route_arns(self, routes: Sequence[RouteSpec | tuple[str, str]] | None, what: str) -> list[str]:
        wanted = [
            r if isinstance(r, RouteSpec) else RouteSpec(r[0].upper(), r[1]) for r in routes or self._routes
        ]
        unknown = [r.route_key for r in wanted if r not in self._routes]
        if unknown:
            raise ValueError(f"{what}: routes {unknown} are not defined on this API")
        if not wanted:
            raise ValueError(f"{what}: the API has no routes yet; add routes first")
        return [self.arn_for_route(r) for r in wanted]

    @staticmethod
    def _acknowledge_stage_wildcard(scope: Construct, arns: Sequence[str]) -> None:
        for arn in arns:
            acknowledge_resource(
                scope,
                IAM5,
                arn,
                "execute-api:Invoke on one route of this API: the '*' is the stage segment of the "
                "route ARN (the API has only its $default stage), not a wildcard over APIs or routes.",
            )

    def grant_invoke(
        self, grantee: iam.IGrantable, *, routes: Sequence[RouteSpec | tuple[str, str]] | None = None
    ) -> iam.Grant:
        """Allow ``execute-api:Invoke`` on ``routes`` (default: every route added so far)."""
        arns = self._route_arns(routes, "grant_invoke")
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=["execute-api:Invoke"], resource_arns=arns
        )
        if isinstance(grantee, Construct):
            self._acknowledge_stage_wildcard(grantee, arns)
        return grant

    def grant_invoke_many(
        self,
        grantees: Iterable[iam.IGrantable],
        *,
        routes: Sequence[RouteSpec | tuple[str, str]] | None = None,
    ) -> None:
        for grantee in grantees:
            self.grant_invoke(grantee, routes=routes)

    def grant_invoke_to_policy(
        self, policy: iam.ManagedPolicy, *, routes: Sequence[RouteSpec | tuple[str, str]] | None = None
    ) -> None:
        """Add ``execute-api:Invoke`` on ``routes`` to a managed policy shared by many roles (the
        kernel-access roles' ``invoke_policy``): one statement, however many roles carry it."""
        arns = self._route_arns(routes, "grant_invoke_to_policy")
        policy.add_statements(iam.PolicyStatement(actions=["execute-api:Invoke"], resources=arns))
        self._acknowledge_stage_wildcard(policy, arns)

    def metric_server_errors(self) -> cloudwatch.Metric:
        """5xx responses of the default stage (sum, 5 minutes)."""
        return self.api.metric_server_error(statistic="Sum")

    def metric_client_errors(self) -> cloudwatch.Metric:
        """4xx responses (403 = missing/invalid SigV4 or no execute-api:Invoke)."""
        return self.api.metric_client_error(statistic="Sum")

    def metric_latency(self) -> cloudwatch.Metric:
        return self.api.metric_latency()


def _id_for_path(path: str) -> str:
    parts = [p.strip("{}+") for p in path.split("/") if p]
    return "".join(part[:1].upper() + part[1:].replace("-", "").replace("_", "") for part in parts) or "Root"
