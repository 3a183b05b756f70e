"""The one list of the CloudWatch metrics the kernel-side Lambdas emit (names, dimensions, units).

The vending service and the exchange handler emit their metrics by the names defined here, and the
``KernelAccessMonitoring`` construct builds its alarms and dashboard from the same definitions, so a
metric that is renamed, or gains a dimension, changes both sides at once. A test reads the runtime's
``add_metric``/``single_metric`` calls and fails when one emits a name this module does not list,
and another fails when a listed metric or an ``ErrorCode`` has no alarm or dashboard widget.

Dimension sets are written exactly as CloudWatch stores them (Powertools adds ``service`` from
``POWERTOOLS_SERVICE_NAME`` to every metric), because a CloudWatch metric is identified by its full
dimension set: an alarm on ``Denied{route, error_code}`` would never see ``Denied{route,
error_code, service}``. Partner names are deliberately *not* a dimension: 5,000 partners would be
5,000 custom metrics per name; per-partner views come from the JSON logs (CloudWatch Logs
Insights), whose cost does not grow with the number of partners.

Nothing here imports boto3, Powertools or aws_cdk: the construct library reads it at synth time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kernel_access.contract import ErrorCode

#: Default ``POWERTOOLS_METRICS_NAMESPACE`` of the kernel functions.
DEFAULT_NAMESPACE: Final = "KernelAccess"
#: ``POWERTOOLS_SERVICE_NAME`` of each kernel function: also the ``service`` dimension value.
VENDING_SERVICE: Final = "kernel-access-vending"
EXCHANGE_SERVICE: Final = "kernel-access-exchange"

#: Values of the ``BreakerState`` metric (a gauge: the alarm fires at ``open``).
BREAKER_VALUES: Final = {"closed": 0.0, "half-open": 1.0, "open": 2.0}


@dataclass(frozen=True)
class MetricSpec:
    """One metric as CloudWatch stores it."""

    name: str
    #: ``POWERTOOLS_SERVICE_NAME`` of the function that emits it.
    service: str
    #: The complete dimension set, sorted (what ``SCHEMA(namespace, ...)`` must list).
    dimensions: tuple[str, ...]
    unit: str
    description: str


ALLOWED: Final = MetricSpec(
    "Allowed", VENDING_SERVICE, ("route", "service"), "Count", "Vending requests answered with a credential"
)
LATENCY: Final = MetricSpec(
    "Latency", VENDING_SERVICE, ("route", "service"), "Milliseconds", "Vending service time per request"
)
DENIED: Final = MetricSpec(
    "Denied",
    VENDING_SERVICE,
    ("error_code", "route", "service"),
    "Count",
    "Vending requests refused, by error code",
)
BREAKER_STATE: Final = MetricSpec(
    "BreakerState",
    VENDING_SERVICE,
    ("breaker", "service"),
    "Count",
    "CodeArtifact token-refresh circuit breaker: 0 closed, 1 half-open, 2 open",
)
EXCHANGE_GRANTED: Final = MetricSpec(
    "ExchangeGranted", EXCHANGE_SERVICE, ("service",), "Count", "OIDC exchanges granted"
)


def exchange_refusal(code: ErrorCode) -> MetricSpec:
    """The exchange counts each refusal as its own metric, e.g. ``ExchangeRateLimited``."""
    name = "Exchange" + code.value.title().replace("_", "")
    return MetricSpec(
        name, EXCHANGE_SERVICE, ("service",), "Count", f"OIDC exchanges refused with {code.value}"
    )


#: One refusal metric per error code, in ``ErrorCode`` order.
EXCHANGE_REFUSALS: Final[dict[ErrorCode, MetricSpec]] = {code: exchange_refusal(code) for code in ErrorCode}

#: Every metric the kernel functions emit by name (Powertools' own ``ColdStart`` aside).
METRICS: Final[tuple[MetricSpec, ...]] = (
    ALLOWED,
    LATENCY,
    DENIED,
    BREAKER_STATE,
    EXCHANGE_GRANTED,
    *EXCHANGE_REFUSALS.values(),
)


# --- log keys ------------------------------------------------------------------------------------

#: The message of the one log line each request ends with (the saved Logs Insights queries count
#: requests by it: every earlier line of the request carries the same keys, so counting lines
#: without it would count a request once per line).
DECISION_MESSAGE: Final = "request decided"


def decision_log_keys(record: object) -> dict[str, object]:
    """Keys every later log line of the request carries (Powertools ``append_keys``), read from
    its audit record: who (partner, caller), what (route), the outcome (decision, error code).

    Only identifiers: an audit record holds no secret, and none of these fields is a token. A
    ``None`` value is dropped from the log line by Powertools.
    """
    return {
        "request_id": getattr(record, "request_id", None),
        "partner": getattr(record, "partner", None),
        "caller": getattr(record, "caller_arn", None),
        "route": getattr(record, "route", None),
        "decision": getattr(record, "decision", None),
        "error_code": getattr(record, "error_code", None),
    }
