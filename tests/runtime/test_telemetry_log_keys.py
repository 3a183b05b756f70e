"""Every kernel-access log line an operator reads is JSON with the request id and route, and, from
the moment they are known, the partner, caller, decision and error code; each request ends with one
``request decided`` line (what the saved Logs Insights queries count)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_access.handlers import exchange, vending
from kernel_access.telemetry import DECISION_MESSAGE

from tests.runtime.conftest import PAYMENTS_ARN, http_event
from tests.runtime.vending.test_credentials import call

pytestmark = pytest.mark.usefixtures("secrets_scan")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the handlers' Powertools Loggers write, through their own JSON formatter."""
    stream = io.StringIO()
    attached = []
    for logger in {vending.logger.service: vending.logger, exchange.logger.service: exchange.logger}.values():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logger.registered_formatter)
        target = logging.getLogger(logger.service)
        target.addHandler(handler)
        attached.append((target, handler))
    try:
        yield stream
    finally:
        for target, handler in attached:
            target.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    # Every line is JSON (json.loads fails the test otherwise).
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _decided(lines: list[dict[str, Any]]) -> dict[str, Any]:
    decided = [line for line in lines if line["message"] == DECISION_MESSAGE]
    assert len(decided) == 1, lines
    return decided[0]


def test_allowed_request_ends_with_a_decision_line(make_service: Any, log_lines: io.StringIO) -> None:
    service = make_service()
    event = http_event("/credentials", {"role": "kernel-reader"}, request_id="req-log-1")
    assert call(service, event)[0] == 200
    line = _decided(_lines(log_lines))
    assert line["request_id"] == line["correlation_id"] == "req-log-1"
    assert (line["partner"], line["caller"], line["route"], line["decision"]) == (
        "payments",
        PAYMENTS_ARN,
        "GET /credentials",
        "allow",
    )
    assert "error_code" not in line
    assert line["latency_ms"] >= 0


def test_denied_request_carries_partner_decision_and_error_code(
    make_service: Any, log_lines: io.StringIO
) -> None:
    service = make_service()
    event = http_event("/credentials", {"role": "kernel-admin"}, request_id="req-log-2")
    assert call(service, event)[0] == 403
    line = _decided(_lines(log_lines))
    assert (line["request_id"], line["partner"], line["decision"], line["error_code"]) == (
        "req-log-2",
        "payments",
        "deny",
        "POLICY_DENY",
    )


def test_error_lines_carry_the_keys_known_so_far(make_service: Any, log_lines: io.StringIO) -> None:
    service = make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table")  # the audit write fails
    event = http_event("/credentials", {"role": "kernel-reader"}, request_id="req-log-3")
    assert call(service, event)[0] == 500
    lines = _lines(log_lines)
    withheld = next(line for line in lines if line["message"] == "audit write failed; credential withheld")
    assert (withheld["request_id"], withheld["partner"], withheld["route"]) == (
        "req-log-3",
        "payments",
        "GET /credentials",
    )
    decided = _decided(lines)
    assert (decided["decision"], decided["error_code"]) == ("error", "INTERNAL_ERROR")
    # Every line of the request has its id and route, the first one included.
    assert all(line["request_id"] == "req-log-3" and line["route"] == "GET /credentials" for line in lines)


def test_exchange_refusal_ends_with_a_decision_line(log_lines: io.StringIO) -> None:
    event = {
        "requestContext": {"requestId": "req-log-4", "routeKey": "POST /exchange/github", "authorizer": {}}
    }
    response = exchange.handle(event, "lambda-id")
    assert response["statusCode"] == 401
    line = _decided(_lines(log_lines))
    assert (line["request_id"], line["route"], line["decision"], line["error_code"]) == (
        "req-log-4",
        "POST /exchange/github",
        "deny",
        "INVALID_TOKEN",
    )
