"""Observability of the vending handler: Powertools Logger correlation id, EMF metrics (Allowed,
Denied by error code, Latency, BreakerState), a trace subsegment around every AWS call, and the
handler's cold-start shape (importing it loads neither boto3's session machinery nor X-Ray)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kernel_access.handlers import vending
from kernel_access.vending.config import VendingConfig
from kernel_access.vending.service import Telemetry, VendingService

from tests.runtime.conftest import CodeArtifactStub, http_event, vending_environment
from tests.runtime.vending.test_credentials import call

pytestmark = pytest.mark.usefixtures("secrets_scan")


class RecordingTelemetry(Telemetry):
    """Telemetry whose subsegments are recorded (name and nesting) instead of sent to X-Ray."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []
        self.stack: list[str] = []

    @contextmanager
    def subsegment(self, name: str) -> Iterator[None]:
        self.opened.append(name)
        self.stack.append(name)
        try:
            yield
        finally:
            self.stack.pop()


@pytest.fixture
def traced(aws_backend) -> tuple[VendingService, RecordingTelemetry, list[tuple[str, str | None]]]:
    """A service whose every botocore call records the subsegment it ran in."""
    aws_backend.reset_mutable_state()
    telemetry = RecordingTelemetry()
    service = VendingService(VendingConfig.from_env(vending_environment()), telemetry=telemetry)
    calls: list[tuple[str, str | None]] = []

    def watch(client: Any) -> Any:
        def before_call(model: Any, **_: Any) -> None:
            calls.append((model.name, telemetry.stack[-1] if telemetry.stack else None))

        # before-parameter-build runs before the Stubber's before-call short-circuit.
        client.meta.events.register("before-parameter-build.*.*", before_call)
        return client

    for make in (service.clients.sts, service.clients.dynamodb, service.clients.ssm, service.clients.s3):
        watch(make())
    stub = CodeArtifactStub()
    service.tokens._codeartifact_client = lambda credentials: watch(stub(credentials))
    return service, telemetry, calls


def test_every_aws_call_runs_inside_a_named_subsegment(traced, capsys):
    service, telemetry, calls = traced
    assert call(service, http_event("/credentials", {"role": "kernel-reader"}))[0] == 200
    assert call(service, http_event("/codeartifact/token", {"domain": "kernel"}))[0] == 200
    assert call(service, http_event("/health"))[0] == 200
    # Health reports every breaker under the same dimension as the refresh engine's events.
    documents = emf_documents(capsys.readouterr().out)
    assert {d["breaker"] for d in metric_values(documents, "BreakerState")} == {
        "codeartifact:kernel:publish:3600"
    }

    assert calls, "no AWS call was observed"
    untraced = [name for name, segment in calls if segment is None]
    assert untraced == [], f"AWS calls outside any subsegment: {untraced}"
    by_operation = {(name, segment) for name, segment in calls}
    assert ("AssumeRole", "sts.AssumeRole") in by_operation
    assert ("PutItem", "dynamodb.PutItem audit") in by_operation
    assert ("UpdateItem", "dynamodb.UpdateItem rate-limit") in by_operation
    assert ("BatchGetItem", "dynamodb.BatchGetItem revocation") in by_operation
    assert ("GetObject", "s3.GetObject policy") in by_operation
    assert ("AssumeRole", "sts.AssumeRole codeartifact-publish") in by_operation
    assert ("GetAuthorizationToken", "codeartifact.GetAuthorizationToken") in by_operation
    # Health is rate-limited (against the partner the policy names, so the policy comes first)
    # and audited like the other routes.
    assert telemetry.opened[-3:] == [
        "s3.GetObject policy",
        "dynamodb.UpdateItem rate-limit",
        "dynamodb.PutItem audit",
    ]


def emf_documents(text: str) -> list[dict[str, Any]]:
    documents = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric_values(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Each EMF document that carries ``name``, as ``{"value": first value, <dimensions>}``
    (the ``service`` dimension Powertools adds everywhere is left out)."""
    found = []
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if any(metric["Name"] == name for metric in directive["Metrics"]):
                dimensions = {d: document[d] for group in directive["Dimensions"] for d in group}
                dimensions.pop("service", None)
                value = document[name]
                found.append({"value": value[0] if isinstance(value, list) else value, **dimensions})
    return found


def test_metrics_allowed_denied_by_code_latency_and_breaker_state(make_service, codeartifact_stub, capsys):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="100")
    capsys.readouterr()
    assert call(service, http_event("/credentials", {"role": "kernel-reader"}))[0] == 200
    assert call(service, http_event("/credentials", {"role": "kernel-admin"}))[0] == 403
    codeartifact_stub.fail_with = "ServiceUnavailableException"
    for _ in range(5):  # five failed mints open the breaker
        assert call(service, http_event("/codeartifact/token", {"domain": "kernel"}))[0] == 503
    documents = emf_documents(capsys.readouterr().out)

    allowed = metric_values(documents, "Allowed")
    assert allowed == [{"value": 1.0, "route": "GET /credentials"}]
    denied = metric_values(documents, "Denied")
    assert {"value": 1.0, "route": "GET /credentials", "error_code": "POLICY_DENY"} in denied
    upstream = {"value": 1.0, "route": "GET /codeartifact/token", "error_code": "UPSTREAM_UNAVAILABLE"}
    assert denied.count(upstream) == 5
    latencies = metric_values(documents, "Latency")
    assert len(latencies) >= 7
    assert all(isinstance(d["value"], int | float) and d["value"] >= 0 for d in latencies)
    breaker = metric_values(documents, "BreakerState")
    assert breaker == [{"value": 2.0, "breaker": "codeartifact:kernel:publish:3600"}]  # 2 = open
    for document in documents:
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "KernelAccessTest"


def test_refusals_outside_the_service_are_counted(monkeypatch, capsys):
    for name in ("KERNEL_ACCESS_AUDIT_TABLE", "KERNEL_ACCESS_POLICY_OBJECT_KEY"):
        monkeypatch.delenv(name, raising=False)
    vending.reset_for_tests(None)
    capsys.readouterr()
    try:
        response = vending.handler(http_event("/credentials", {"role": "r"}), _context())
    finally:
        vending.reset_for_tests(None)
    assert response["statusCode"] == 500
    denied = metric_values(emf_documents(capsys.readouterr().out), "Denied")
    assert [d["error_code"] for d in denied] == ["INTERNAL_ERROR"]


def _context() -> Any:
    from tests.runtime.conftest import FakeLambdaContext

    return FakeLambdaContext()


@pytest.fixture
def powertools_lines() -> Iterator[io.StringIO]:
    """What the Powertools Logger writes (its own JSON formatter, correlation id included)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(vending.logger.registered_formatter)
    service_logger = logging.getLogger(vending.logger.service)
    service_logger.addHandler(handler)
    try:
        yield stream
    finally:
        service_logger.removeHandler(handler)


def test_log_lines_carry_the_request_id_as_correlation_id(make_service, powertools_lines):
    service = make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table")  # forces an error log line
    status, _, body = call(
        service, http_event("/credentials", {"role": "kernel-reader"}, request_id="req-corr-7")
    )
    assert status == 500
    assert body["request_id"] == "req-corr-7"
    lines = [json.loads(line) for line in powertools_lines.getvalue().splitlines() if line.strip()]
    withheld = [line for line in lines if line["message"] == "audit write failed; credential withheld"]
    assert withheld, lines
    assert withheld[0]["correlation_id"] == "req-corr-7"
    assert withheld[0]["level"] == "ERROR"
    assert withheld[0]["function_name"] == "kernel-access-vending"
    assert vending.logger.get_correlation_id() == "req-corr-7"


def test_importing_the_handler_loads_neither_boto3_sessions_nor_xray():
    """Cold start: the heavy modules are loaded on the first invocation, not at import."""
    code = (
        "import sys, kernel_access.handlers.vending as v\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('boto3', 'botocore.', 'aws_xray_sdk')))\n"
        "print(heavy)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]", output
