"""Events API Gateway never sends: a direct ``lambda:InvokeFunction``, a misrouted integration, a
test console payload. Whatever arrives, the handler answers an HTTP-shaped JSON error (no
exception, no stack trace, no credential) and leaves an audit record of the refusal.

The generated events start from a real payload-2.0 event and then drop, retype or replace parts
of it (``requestContext`` and its ``http``, ``routeKey``, ``rawPath``, ``headers``, query), plus
wholly arbitrary JSON values as the event.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.contract import ErrorCode
from kernel_access.handlers import vending

from tests.runtime.conftest import CodeArtifactStub, FakeLambdaContext, http_event

pytestmark = pytest.mark.usefixtures("secrets_scan")


@pytest.fixture(scope="module")
def service(aws_backend):
    from kernel_access.vending.config import VendingConfig
    from kernel_access.vending.service import VendingService

    from tests.runtime.conftest import vending_environment

    aws_backend.reset_mutable_state()
    config = VendingConfig.from_env(vending_environment(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="1000000000"))
    built = VendingService(config)
    built.tokens._codeartifact_client = CodeArtifactStub()
    real_write = built.audit.write
    built.audit_writes = []  # every record durably written (the real write runs, on moto)

    def counting_write(record: Any) -> None:
        real_write(record)
        built.audit_writes.append(record)

    built.audit.write = counting_write
    vending.reset_for_tests(built)
    yield built
    vending.reset_for_tests(None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
PATHS = st.sampled_from(["/credentials", "/codeartifact/token", "/health", "/nope", ""])
#: Keys of a payload-2.0 event (and of its requestContext) that hostile events drop or retype.
TOP_KEYS = [
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "headers",
    "requestContext",
    "queryStringParameters",
]
CONTEXT_KEYS = ["http", "requestId", "routeKey", "stage", "authorizer", "domainName"]
HTTP_KEYS = ["method", "path", "sourceIp", "userAgent"]


@st.composite
def mangled_events(draw: st.DrawFn) -> Any:
    event = http_event(draw(PATHS), {"role": "kernel-reader"})
    for keys, container in (
        (TOP_KEYS, event),
        (CONTEXT_KEYS, event["requestContext"]),
        (HTTP_KEYS, event["requestContext"]["http"]),
    ):
        for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=3)):
            if draw(st.booleans()):
                container.pop(key, None)
            else:
                container[key] = draw(json_values)
    return event


hostile_events = st.one_of(
    mangled_events(),
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),  # any JSON object
    st.builds(dict),  # {}
    st.just({"requestContext": None}),
    st.just({"rawPath": "/credentials"}),  # the reported crash: no requestContext
)


def _audit_count(service: Any) -> int:
    return len(service.audit_writes)


def _check(response: Any) -> dict[str, Any]:
    assert isinstance(response, dict)
    assert isinstance(response.get("statusCode"), int)
    body = json.loads(response["body"])
    assert isinstance(body, dict)
    if response["statusCode"] != 200:
        assert body["error_code"] in {c.value for c in ErrorCode}
        assert ErrorCode(body["error_code"]).status == response["statusCode"]
        assert isinstance(body["request_id"], str)
        assert "Traceback" not in response["body"]
    return body


def test_direct_invocation_without_request_context_answers_json(service):
    """Regression: ``{"rawPath": ...}`` without ``requestContext`` raised KeyError."""
    before = _audit_count(service)
    response = vending.handler({"rawPath": "/credentials"}, FakeLambdaContext())
    body = _check(response)
    assert response["statusCode"] == 400
    assert body["error_code"] == ErrorCode.INVALID_REQUEST.value
    assert _audit_count(service) == before + 1


@pytest.mark.parametrize(
    "event", [None, [], "x", 7, {"requestContext": "x"}, {"requestContext": {"http": 3}}]
)
def test_non_object_and_malformed_events_answer_json(service, event):
    before = _audit_count(service)
    body = _check(vending.handler(event, FakeLambdaContext()))
    assert body.get("error_code") in {ErrorCode.INVALID_REQUEST.value, ErrorCode.ACCESS_DENIED.value}
    assert _audit_count(service) == before + 1


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(event=hostile_events)
def test_hostile_events_never_raise_and_are_audited(service, event):
    before = _audit_count(service)
    response = vending.handler(event, FakeLambdaContext())  # must not raise
    body = _check(response)
    assert not ({"AccessKeyId", "SecretAccessKey", "Token", "authorizationToken"} & set(body)) or (
        response["statusCode"] == 200
    )
    assert _audit_count(service) == before + 1, "the decision was not audited"
