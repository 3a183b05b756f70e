"""KernelAccessMonitoring: every alarm with its metric, threshold and action; the alarm topic; the
dashboard; the saved Logs Insights queries; the ``monitoring`` config section; and the guard that
the runtime emits no metric or error code the construct does not watch."""

from __future__ import annotations

import ast
import copy
import json
import re
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template
from kernel_access import telemetry
from kernel_access.contract import ErrorCode
from kernel_access_cdk.config import ConfigError, PartnerConfig, load_config
from kernel_access_cdk.monitoring import (
    ALARM_KINDS,
    LOG_QUERIES,
    KernelAccessMonitoring,
    MonitoringThresholds,
)
from kernel_access_cdk.roles import KernelAccessRoles
from kernel_access_cdk.vending import CredentialVendingService

from tests.infra.conftest import REPO, of_type

TOPIC = "MonitoringAlarmTopicAF62D4F1"
RUNTIME = REPO / "runtime" / "kernel_access"
#: Partner-side code (the kernel client runs in partners' Lambdas, under their namespace) and the
#: local emulator are not kernel functions: their metrics are not the kernel's to alarm on.
NOT_KERNEL_FUNCTIONS = ("client", "local")

#: alarm name suffix -> (what it watches, threshold, comparison, evaluation periods, datapoints).
#: "what it watches" is the MetricName, or the text the Metrics Insights / math expression holds.
GE, GT = "GreaterThanOrEqualToThreshold", "GreaterThanThreshold"
EXPECTED_ALARMS: dict[str, tuple[str, float, str, int, int]] = {
    "VendingInternalErrors": ("SELECT SUM(Denied) FROM SCHEMA", 1, GE, 1, 1),
    "VendingPolicyLoadFailed": ("error_code = 'POLICY_LOAD_FAILED'", 1, GE, 1, 1),
    "VendingRateLimitedSurge": ("error_code = 'RATE_LIMITED'", 50, GE, 3, 2),
    "BreakerOpen": ("SELECT MAX(BreakerState)", 2, GE, 1, 1),
    "UpstreamUnavailableRate": ("100 * (FILL(u0, 0)", 5, GT, 3, 2),
    "ExchangeInternalErrors": ("ExchangeInternalError", 1, GE, 1, 1),
    "ExchangePolicyLoadFailed": ("ExchangePolicyLoadFailed", 1, GE, 1, 1),
    "ExchangeRateLimitedSurge": ("ExchangeRateLimited", 50, GE, 3, 2),
    "ExchangeRefusalSurge": ("4xx", 100, GE, 3, 2),
    "VendingFunctionErrors": ("Errors", 1, GE, 1, 1),
    "VendingFunctionThrottles": ("Throttles", 1, GE, 1, 1),
    "VendingFunctionDurationP99": ("Duration", 12000, GE, 3, 2),
    "VendingFunctionConcurrency": ("ConcurrentExecutions", 800, GE, 3, 2),
    "ExchangeFunctionErrors": ("Errors", 1, GE, 1, 1),
    "ExchangeFunctionThrottles": ("Throttles", 1, GE, 1, 1),
    "ExchangeFunctionDurationP99": ("Duration", 12000, GE, 3, 2),
    "ExchangeFunctionConcurrency": ("ConcurrentExecutions", 800, GE, 3, 2),
    "VendingApi5xxRate": ("100 * FILL(errors, 0) / requests", 1, GT, 3, 2),
    "VendingApiLatencyP99": ("Latency", 3000, GE, 3, 2),
    "ExchangeApi5xxRate": ("100 * FILL(errors, 0) / requests", 1, GT, 3, 2),
    "ExchangeApiLatencyP99": ("Latency", 3000, GE, 3, 2),
    **{
        f"{table}Table{kind}": (f"SELECT SUM({metric})", 1, GE, 1, 1)
        for table in ("Audit", "RateLimit", "Revocation", "Replay", "IssuedTokens")
        for kind, metric in (("Throttles", "ThrottledRequests"), ("SystemErrors", "SystemErrors"))
    },
}


def _alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()
    return {a["Properties"]["AlarmName"].removeprefix("KernelAccessKernel-"): a["Properties"] for a in alarms}


def _text(value: Any) -> str:
    """A template value as text, with ``Fn::Join`` flattened (tokens become ``<Ref>``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_text(p) for p in parts)
    return "<Ref>"


def test_every_alarm_has_its_metric_threshold_and_action(kernel_resources: dict[str, Any]) -> None:
    alarms = _alarms(kernel_resources)
    assert set(alarms) == set(EXPECTED_ALARMS)
    for name, (watched, threshold, comparison, periods, datapoints) in EXPECTED_ALARMS.items():
        alarm = alarms[name]
        assert alarm["Threshold"] == threshold, name
        assert alarm["ComparisonOperator"] == comparison, name
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (periods, datapoints), name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmActions"] == [{"Ref": TOPIC}], name
        assert alarm["OKActions"] == [{"Ref": TOPIC}], name
        metric_text = alarm.get("MetricName", "") + json.dumps(
            [_text(m.get("Expression", "")) for m in alarm.get("Metrics", [])]
        )
        assert watched in metric_text, (name, metric_text)


def test_runtime_alarms_query_exactly_what_the_runtime_emits(kernel_resources: dict[str, Any]) -> None:
    alarms = _alarms(kernel_resources)
    internal = alarms["VendingInternalErrors"]["Metrics"]
    assert internal == [
        {
            "Expression": 'SELECT SUM(Denied) FROM SCHEMA("KernelAccess", error_code, route, service) '
            "WHERE service = 'kernel-access-vending' AND error_code = 'INTERNAL_ERROR'",
            "Id": "expr_1",
            "Label": "INTERNAL_ERROR",
            "Period": 300,
            "ReturnData": True,
        }
    ]
    exchange = alarms["ExchangeInternalErrors"]
    assert (exchange["Namespace"], exchange["Statistic"], exchange["Period"]) == ("KernelAccess", "Sum", 300)
    assert exchange["Dimensions"] == [{"Name": "service", "Value": "kernel-access-exchange"}]
    # The upstream rate counts the Denied metric of every vending route with its full dimension set.
    upstream = {m["Id"]: m for m in alarms["UpstreamUnavailableRate"]["Metrics"]}
    routes = {
        next(d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "route")
        for key, m in upstream.items()
        if key.startswith("u") and key != "ux"
    }
    assert routes == {"GET /credentials", "GET /codeartifact/token", "GET /health"}
    assert {d["Name"] for d in upstream["u0"]["MetricStat"]["Metric"]["Dimensions"]} == set(
        telemetry.DENIED.dimensions
    )


def test_every_alarm_description_links_its_runbook_section(kernel_resources: dict[str, Any]) -> None:
    anchors = {kind.anchor for kind in ALARM_KINDS.values()}
    linked = set()
    for name, alarm in _alarms(kernel_resources).items():
        match = re.search(r"Runbook: docs/operations\.md#([a-z0-9-]+)$", alarm["AlarmDescription"])
        assert match, name
        linked.add(match.group(1))
    assert linked == anchors  # every kind of alarm is deployed, every anchor is used


def test_alarm_topic_is_kms_encrypted_and_cloudwatch_may_use_the_key(
    kernel: Template, kernel_resources: dict[str, Any]
) -> None:
    topic = kernel_resources[TOPIC]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = kernel_resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    statement = next(s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchAlarmsPublish")
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "111111111111"}}
    # Publishing over plain HTTP is refused.
    kernel.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            },
            "Topics": [{"Ref": TOPIC}],
        },
    )
    kernel.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "kernel-oncall@example.com", "TopicArn": {"Ref": TOPIC}},
    )


def _dashboard_text(resources: dict[str, Any]) -> str:
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    return _text(dashboard["Properties"]["DashboardBody"])


def _alarm_text(resources: dict[str, Any]) -> str:
    return json.dumps(
        [
            [
                a.get("MetricName"),
                a.get("Dimensions"),
                [_text(m.get("Expression", "")) for m in a.get("Metrics", [])],
            ]
            for a in _alarms(resources).values()
        ]
    )


def _emitted_metric_names() -> set[str]:
    """Every metric name the kernel-side runtime passes to ``add_metric``/``single_metric``.

    A name must be a catalogue reference (``ALLOWED.name``, ``exchange_refusal(code).name``) or a
    literal; anything else (an f-string, a variable) cannot be checked and fails the test.
    """
    catalogue = {
        name for name in dir(telemetry) if isinstance(getattr(telemetry, name), telemetry.MetricSpec)
    }
    names: set[str] = set()
    for path in sorted(RUNTIME.rglob("*.py")):
        if path.relative_to(RUNTIME).parts[0] in NOT_KERNEL_FUNCTIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in {"add_metric", "single_metric"}:
                continue
            name = next(
                (k.value for k in node.keywords if k.arg == "name"), node.args[0] if node.args else None
            )
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                names.add(name.value)
            elif isinstance(name, ast.Attribute) and name.attr == "name" and isinstance(name.value, ast.Name):
                assert name.value.id in catalogue, where
                names.add(getattr(telemetry, name.value.id).name)
            elif (
                isinstance(name, ast.Attribute)
                and name.attr == "name"
                and isinstance(name.value, ast.Call)
                and getattr(name.value.func, "id", "") == "exchange_refusal"
            ):
                names.update(spec.name for spec in telemetry.EXCHANGE_REFUSALS.values())
            else:
                pytest.fail(
                    f"{where}: emit metrics by a kernel_access.telemetry name, not {ast.unparse(name)}"
                )
    return names


def test_runtime_emits_only_catalogued_metrics() -> None:
    emitted = _emitted_metric_names()
    catalogued = {spec.name for spec in telemetry.METRICS}
    assert emitted, "the scan found no metric at all"
    assert emitted <= catalogued, emitted - catalogued
    # And the catalogue lists nothing the runtime no longer emits.
    assert catalogued <= emitted, catalogued - emitted


def test_every_metric_and_error_code_has_an_alarm_or_a_widget(kernel_resources: dict[str, Any]) -> None:
    watched = _dashboard_text(kernel_resources) + _alarm_text(kernel_resources)
    for spec in telemetry.METRICS:
        assert re.search(rf"\b{spec.name}\b", watched), spec.name
    dashboard = _dashboard_text(kernel_resources)
    for code in ErrorCode:
        assert f"error_code = '{code.value}'" in dashboard, code  # vending refusals by code
        assert f'"{telemetry.EXCHANGE_REFUSALS[code].name}"' in dashboard, code  # exchange refusals


def test_dashboard_shows_routes_and_partners(kernel_resources: dict[str, Any]) -> None:
    dashboard = _dashboard_text(kernel_resources)
    assert "GROUP BY route" in dashboard
    assert "GROUP BY breaker" in dashboard
    assert "stats count(*) as refusals by partner, error_code" in dashboard
    assert "stats count(*) as requests by partner, decision" in dashboard


def test_saved_log_insights_queries(kernel_resources: dict[str, Any]) -> None:
    queries = {
        q["Properties"]["Name"]: q["Properties"]
        for q in of_type(kernel_resources, "AWS::Logs::QueryDefinition").values()
    }
    assert set(queries) == {f"KernelAccessKernel/{q.name}" for q in LOG_QUERIES}
    for query in LOG_QUERIES:
        saved = queries[f"KernelAccessKernel/{query.name}"]
        assert saved["QueryString"] == "\n| ".join(query.lines)
        assert len(saved["LogGroupNames"]) == 2  # the vending and the exchange function logs
    assert "sort latency_ms desc" in queries["KernelAccessKernel/slowest-requests"]["QueryString"]


# --- standalone use, with a given topic and overridden thresholds ------------------------------


def _vending(stack: Stack) -> CredentialVendingService:
    partners = (PartnerConfig("alpha", "444444444444", True, "eu-west-1"),)
    roles = KernelAccessRoles(stack, "Roles", partners=partners, organization_id="o-abcdefghij")
    return CredentialVendingService(
        stack,
        "Vending",
        kernel_roles=roles,
        policy_document={"version": "1", "partners": {}, "rules": []},
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
        timeout=Duration.seconds(10),
        reserved_concurrent_executions=20,
    )


def test_usable_alone_with_a_given_topic_and_thresholds() -> None:
    app = App()
    stack = Stack(app, "Alone", env={"account": "111111111111", "region": "eu-west-1"})
    vending = _vending(stack)
    topic = sns.Topic.from_topic_arn(stack, "Pager", "arn:aws:sns:eu-west-1:111111111111:pager")
    monitoring = KernelAccessMonitoring(
        stack,
        "Monitoring",
        vending=vending,
        topic=topic,
        thresholds=MonitoringThresholds(api_latency_p99_ms=5000, concurrency_fraction_of_limit=0.5),
        runbook_url="https://wiki.example.com/kernel-access/operations",
        alarm_name_prefix="ka",
    )
    template = Template.from_stack(stack)
    assert monitoring.encryption_key is None
    template.resource_count_is("AWS::KMS::Key", 0)
    template.resource_count_is("AWS::SNS::Topic", 0)
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert not any(name.startswith("ka-Exchange") for name in alarms)  # no exchange, no exchange alarms
    assert alarms["ka-VendingApiLatencyP99"]["Threshold"] == 5000
    assert alarms["ka-VendingFunctionConcurrency"]["Threshold"] == 10  # half of the reserved 20
    assert alarms["ka-VendingFunctionDurationP99"]["Threshold"] == 8000  # 80 % of 10 s
    assert alarms["ka-AuditTableThrottles"]["AlarmActions"] == ["arn:aws:sns:eu-west-1:111111111111:pager"]
    assert alarms["ka-BreakerOpen"]["AlarmDescription"].endswith(
        "Runbook: https://wiki.example.com/kernel-access/operations#alarm-breaker-open"
    )
    assert set(monitoring.alarms) == {name.removeprefix("ka-") for name in alarms}


def test_an_invalid_namespace_fails_at_synth() -> None:
    stack = Stack(App(), "S")
    vending = _vending(stack)
    with pytest.raises(ValueError, match="metrics_namespace"):
        KernelAccessMonitoring(stack, "Monitoring", vending=vending, metrics_namespace="Bad' OR 1=1")


# --- the monitoring section of the config --------------------------------------------------


def test_monitoring_section_loads(cdk_context: dict[str, Any]) -> None:
    settings = load_config(cdk_context["kernel-access"]).monitoring
    assert settings.alarm_emails == ("kernel-oncall@example.com",)
    assert settings.thresholds.api_latency_p99_ms == 3000
    assert settings.thresholds.upstream_unavailable_percent == 5.0  # default kept
    without = copy.deepcopy(cdk_context["kernel-access"])
    del without["monitoring"]
    assert load_config(without).monitoring.thresholds == MonitoringThresholds()


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"alarm_email": []}, "monitoring.alarm_email"),
        ({"alarm_emails": ["not-an-address"]}, "monitoring.alarm_emails[0]"),
        ({"alarm_emails": ["a@example.com", "a@example.com"]}, "monitoring.alarm_emails"),
        ({"topic_arn": "arn:aws:sqs:us-east-1:111111111111:q"}, "monitoring.topic_arn"),
        ({"runbook_url": "http://wiki/ops"}, "monitoring.runbook_url"),
        ({"thresholds": {"latency": 5}}, "monitoring.thresholds.latency"),
        ({"thresholds": {"api_latency_p99_ms": 0}}, "monitoring.thresholds.api_latency_p99_ms"),
        ({"thresholds": {"api_latency_p99_ms": True}}, "monitoring.thresholds.api_latency_p99_ms"),
        ({"thresholds": {"api_5xx_percent": 101}}, "monitoring.thresholds.api_5xx_percent"),
        (
            {"thresholds": {"duration_fraction_of_timeout": 1.5}},
            "monitoring.thresholds.duration_fraction_of_timeout",
        ),
        ({"thresholds": {"datapoints_to_alarm": 5}}, "monitoring.thresholds.datapoints_to_alarm"),
        ("all", "monitoring"),
    ],
)
def test_invalid_monitoring_section_names_the_field(
    cdk_context: dict[str, Any], section: Any, field: str
) -> None:
    raw = copy.deepcopy(cdk_context["kernel-access"])
    raw["monitoring"] = section
    with pytest.raises(ConfigError) as error:
        load_config(raw)
    assert error.value.field == field


# --- the runbooks in docs/operations.md ---------------------------------------------------------


def test_runbook_has_a_section_for_every_alarm_kind() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for kind in ALARM_KINDS.values():
        assert f'<a id="{kind.anchor}"></a>' in text, kind.anchor
        section = text.split(f'<a id="{kind.anchor}"></a>', 1)[1].split("<a id=", 1)[0]
        for part in ("**Means:**", "**Confirm:**", "**Act:**"):
            assert part in section, (kind.anchor, part)


def test_docs_alarm_table_lists_every_alarm_and_threshold(kernel_resources: dict[str, Any]) -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for name in MonitoringThresholds.field_names():
        assert f"`{name}`" in text, name
    for alarm in _alarms(kernel_resources):
        table = re.sub(r"^(\w+)Table(Throttles|SystemErrors)$", r"<Table>Table\2", alarm)
        assert f"`{table}`" in text, alarm
