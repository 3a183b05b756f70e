"""GET /credentials end to end through the Lambda handler, on moto (STS, DynamoDB, SSM, IAM)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from kernel_access.aws_clients import client_config
from kernel_access.handlers import vending
from kernel_access.policy import PolicyStore

from tests.runtime.conftest import (
    ACME_ARN,
    CONFIG_BUCKET,
    KERNEL_ACCOUNT,
    PAYMENTS_ARN,
    POLICY,
    POLICY_KEY,
    REGION,
    STRANGER_ARN,
    TARGET_ROLES,
    FakeLambdaContext,
    http_event,
)

pytestmark = pytest.mark.usefixtures("secrets_scan")


def call(service: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    vending.reset_for_tests(service)
    try:
        response = vending.handler(event, FakeLambdaContext())
    finally:
        vending.reset_for_tests(None)
    body = json.loads(response["body"])
    return response["statusCode"], response.get("headers", {}), body


def assert_error(status: int, body: dict[str, Any], code: str, expected_status: int) -> None:
    assert status == expected_status, body
    assert body["error_code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["request_id"]
    assert "SecretAccessKey" not in body
    assert "Token" not in body


def only_record(aws_backend: Any, request_id: str) -> dict[str, Any]:
    records = aws_backend.audit_for(request_id)
    assert len(records) == 1, records
    return records[0]


def test_allowed_caller_gets_container_credentials_and_one_audit_record(make_service, aws_backend, sts_calls):
    event = http_event("/credentials", {"role": "kernel-reader", "duration": "900"}, request_id="req-allow-1")
    before = datetime.now(UTC)
    status, headers, body = call(make_service(), event)

    assert status == 200, body
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    assert body["AccountId"] == KERNEL_ACCOUNT
    expiration = datetime.strptime(body["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before + timedelta(seconds=880) <= expiration <= before + timedelta(seconds=920)
    assert headers["Cache-Control"] == "no-store"

    (call_kwargs,) = sts_calls
    assert call_kwargs["role_arn"] == TARGET_ROLES["kernel-reader"]
    assert call_kwargs["duration"] == 900
    assert call_kwargs["session_policy"].managed_policy_arns == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)
    assert {t["Key"]: t["Value"] for t in call_kwargs["tags"]} == {
        "partner": "payments",
        "caller-account": KERNEL_ACCOUNT,
        "request-id": "req-allow-1",
    }

    # The vended session is a session of the target role, named after the partner and the request.
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=body["AccessKeyId"],
        aws_secret_access_key=body["SecretAccessKey"],
        aws_session_token=body["Token"],
    )
    arn = sts.get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-reader/payments.req-allow-1"

    record = only_record(aws_backend, "req-allow-1")
    assert record["decision"]["S"] == "allow"
    assert record["route"]["S"] == "GET /credentials"
    assert record["rule_id"]["S"] == "partners-read"
    assert record["caller_arn"]["S"] == PAYMENTS_ARN
    assert record["partner"]["S"] == "payments"
    assert record["target_role"]["S"] == "kernel-reader"
    assert record["access_key_id"]["S"] == body["AccessKeyId"]
    assert record["expiration"]["S"] == body["Expiration"]
    assert record["duration"]["N"] == "900"
    assert record["session_name"]["S"] == "payments.req-allow-1"
    assert record["source_identity"]["S"] == "222222222222.ci-job@req-allow-1"
    assert record["source_ip"]["S"] == "203.0.113.7"
    assert record["user_agent"]["S"] == "kernel-access-tests/1.0"
    assert record["caller_org"]["S"] == "o-a1b2c3d4e5"
    assert float(record["latency_ms"]["N"]) >= 0
    assert record["recorded_at"]["S"].endswith("Z")
    assert len(record["recorded_at"]["S"]) == 27
    assert int(record["expires_at"]["N"]) > datetime.now(UTC).timestamp() + 399 * 86400
    text = json.dumps(record)
    assert body["SecretAccessKey"] not in text
    assert body["Token"] not in text


def test_default_duration_is_3600_or_the_rule_maximum(make_service, sts_calls):
    service = make_service()
    status, _, _ = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert status == 200
    status, _, _ = call(service, http_event("/credentials", {"role": "kernel-deployer"}))
    assert status == 200
    assert [c["duration"] for c in sts_calls] == [3600, 1800]


def test_inline_session_policy_reaches_sts(make_service, sts_calls):
    status, _, _ = call(make_service(), http_event("/credentials", {"role": "kernel-narrow"}))
    assert status == 200
    policy = json.loads(sts_calls[0]["session_policy"].inline_json)
    assert policy["Statement"][0]["Action"] == "s3:GetObject"


def test_duration_above_rule_maximum_is_policy_deny(make_service, aws_backend, sts_calls):
    event = http_event("/credentials", {"role": "kernel-deployer", "duration": "3600"}, request_id="req-long")
    status, _, body = call(make_service(), event)
    assert_error(status, body, "POLICY_DENY", 403)
    assert body["details"]["rule_id"] == "payments-deployer"
    assert "1800" in body["details"]["reason"]
    assert sts_calls == []
    record = only_record(aws_backend, "req-long")
    assert record["decision"]["S"] == "deny"
    assert record["error_code"]["S"] == "POLICY_DENY"
    assert "access_key_id" not in record


@pytest.mark.parametrize(
    ("caller", "role", "rule"),
    [
        (ACME_ARN, "kernel-deployer", "deny-external-deployer"),
        (STRANGER_ARN, "kernel-reader", None),
        # An external partner's account through the in-organization role is not the partner.
        (
            f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/333333333333.etl",
            "kernel-reader",
            None,
        ),
        (f"arn:aws:iam::{KERNEL_ACCOUNT}:user/payments.admin", "kernel-reader", None),
    ],
)
def test_policy_denies(make_service, sts_calls, caller, role, rule):
    status, _, body = call(make_service(), http_event("/credentials", {"role": role}, user_arn=caller))
    assert_error(status, body, "POLICY_DENY", 403)
    assert body["details"].get("rule_id") == rule
    assert sts_calls == []


def test_unknown_role_is_policy_deny_not_role_not_found(make_service, sts_calls):
    """A role no rule allows must not reveal whether it exists."""
    status, _, body = call(make_service(), http_event("/credentials", {"role": "kernel-admin"}))
    assert_error(status, body, "POLICY_DENY", 403)
    assert "kernel-admin" not in json.dumps(body)


def test_allowed_but_unconfigured_role_is_role_not_found(make_service, aws_backend, sts_calls):
    event = http_event("/credentials", {"role": "kernel-ghost"}, request_id="req-ghost")
    status, _, body = call(make_service(), event)
    assert_error(status, body, "ROLE_NOT_FOUND", 404)
    assert sts_calls == []
    assert only_record(aws_backend, "req-ghost")["error_code"]["S"] == "ROLE_NOT_FOUND"


@pytest.mark.parametrize(
    "authorizer",
    [
        None,
        {},
        {"iam": {}},
        {"iam": {"userArn": ""}},
        {"iam": {"userArn": "payments"}},
        {"jwt": {"claims": {}}},
    ],
)
def test_missing_authorizer_context_is_access_denied_and_audited(
    make_service, aws_backend, sts_calls, authorizer
):
    event = http_event(
        "/credentials",
        {"role": "kernel-reader"},
        user_arn=None,
        authorizer=authorizer,
        request_id="req-anon",
        # Identity claims anywhere else in the request are ignored.
        headers={"x-caller-arn": PAYMENTS_ARN, "x-amzn-iam-userarn": PAYMENTS_ARN},
    )
    service = make_service()
    status, _, body = call(service, event)
    assert_error(status, body, "ACCESS_DENIED", 403)
    assert sts_calls == []
    records = aws_backend.audit_for("req-anon")
    assert records[-1]["decision"]["S"] == "deny"
    assert "caller_arn" not in records[-1]
    for record in records:  # parametrized runs reuse the request id: clean for the next one
        aws_backend.dynamodb.delete_item(
            TableName="kernel-access-audit",
            Key={"request_id": record["request_id"]},
        )


@pytest.mark.parametrize(
    ("query", "raw"),
    [
        ({}, None),
        ({"role": "kernel-reader", "extra": "1"}, None),
        ({"role": "kernel-reader", "Role": "x"}, None),
        (None, "role=kernel-reader&role=kernel-deployer"),
        ({"role": "kernel reader"}, None),
        ({"role": "k" * 65}, None),
        ({"role": "kernel-reader", "duration": "abc"}, None),
        ({"role": "kernel-reader", "duration": "899"}, None),
        ({"role": "kernel-reader", "duration": "3601"}, None),
        ({"role": "kernel-reader", "duration": "-900"}, None),
        ({"role": "kernel-reader", "duration": "1e3"}, None),
        ({"role": "kernel-reader", "duration": ""}, None),
        (None, "role=kernel-reader&" + "x" * 2000),
        (None, "&".join(f"p{i}=1" for i in range(50))),
    ],
)
def test_invalid_requests_are_400_before_any_aws_call(make_service, sts_calls, query, raw):
    event = http_event("/credentials", query, raw_query=raw)
    status, _, body = call(make_service(), event)
    assert_error(status, body, "INVALID_REQUEST", 400)
    assert sts_calls == []


def test_rate_limit_returns_429_with_retry_after(make_service, aws_backend, sts_calls):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="2")
    for _ in range(2):
        status, _, _ = call(service, http_event("/credentials", {"role": "kernel-reader"}))
        assert status == 200
    status, headers, body = call(
        service, http_event("/credentials", {"role": "kernel-reader"}, request_id="req-rl")
    )
    assert_error(status, body, "RATE_LIMITED", 429)
    assert 1 <= body["retry_after_seconds"] <= 60
    assert headers["Retry-After"] == str(body["retry_after_seconds"])
    assert len(sts_calls) == 2
    assert only_record(aws_backend, "req-rl")["error_code"]["S"] == "RATE_LIMITED"
    # Another caller has its own budget.
    status, _, _ = call(service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=ACME_ARN))
    assert status == 200


def test_rate_limiter_failure_denies_with_503(make_service, sts_calls):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_TABLE="no-such-table")
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert body["details"]["upstream"] == "rate-limit"
    assert sts_calls == []


@pytest.mark.parametrize("subject", [f"caller#{PAYMENTS_ARN}", "partner#payments"])
def test_revoked_caller_or_partner_is_refused(make_service, aws_backend, sts_calls, subject):
    service = make_service()
    service.revocations.revoke(subject, reason="incident 42", revoked_by="arn:aws:iam::111111111111:user/op")
    status, _, body = call(
        service, http_event("/credentials", {"role": "kernel-reader"}, request_id="req-rev")
    )
    assert_error(status, body, "SESSION_REVOKED", 403)
    assert sts_calls == []
    assert "incident 42" not in json.dumps(body)  # the operator's reason stays internal
    records = aws_backend.audit_for("req-rev")
    assert records[-1]["error_code"]["S"] == "SESSION_REVOKED"
    # Others are unaffected.
    status, _, _ = call(service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=ACME_ARN))
    assert status == 200
    for record in records:
        aws_backend.dynamodb.delete_item(
            TableName="kernel-access-audit",
            Key={"request_id": record["request_id"]},
        )


def test_revocation_store_failure_denies_with_503(make_service, sts_calls):
    service = make_service(KERNEL_ACCESS_REVOCATION_TABLE="no-such-table")
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert body["details"]["upstream"] == "revocation"
    assert sts_calls == []


def test_missing_policy_is_policy_load_failed(make_service, sts_calls):
    service = make_service(KERNEL_ACCESS_POLICY_OBJECT_KEY="vending/missing.json")
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "POLICY_LOAD_FAILED", 503)
    assert sts_calls == []


def test_last_good_policy_serves_until_staleness_then_denies(make_service, aws_backend, sts_calls):
    now = [1000.0]
    service = make_service()
    service.policy_store = PolicyStore(
        CONFIG_BUCKET, POLICY_KEY, max_staleness=300, cache_seconds=30, clock=lambda: now[0]
    )
    assert call(service, http_event("/credentials", {"role": "kernel-reader"}))[0] == 200

    aws_backend.s3.delete_object(Bucket=CONFIG_BUCKET, Key=POLICY_KEY)  # a delete marker
    now[0] += 200  # past the cache, within staleness: the last good policy still decides
    assert call(service, http_event("/credentials", {"role": "kernel-reader"}))[0] == 200
    now[0] += 150  # 350 s since the last good load
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "POLICY_LOAD_FAILED", 503)
    assert len(sts_calls) == 2


def test_broken_policy_document_is_policy_load_failed(make_service, aws_backend):
    aws_backend.put_policy('{"version": "x", "rules": [{"id": "a", "effect": "maybe"}]}')
    status, _, body = call(make_service(), http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "POLICY_LOAD_FAILED", 503)


def test_audit_write_failure_withholds_the_credential(make_service, sts_calls, secrets_scan):
    service = make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table")
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "INTERNAL_ERROR", 500)
    assert len(sts_calls) == 1  # the session was created upstream ...
    assert set(body) == {"error_code", "error", "request_id"}  # ... and never handed out
    assert any("credential withheld" in line for line in secrets_scan.log_lines)


def test_audit_failure_on_a_deny_is_internal_error(make_service):
    service = make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table")
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-admin"}))
    assert_error(status, body, "INTERNAL_ERROR", 500)


def test_audit_record_is_never_overwritten(make_service, aws_backend):
    from kernel_access.audit import AuditRecord, AuditWriteError

    service = make_service()
    record = AuditRecord(request_id="req-dup", route="GET /credentials", decision="deny")
    service.audit.write(record)
    with pytest.raises(AuditWriteError):
        service.audit.write(record)
    assert len(aws_backend.audit_for("req-dup")) == 1


@pytest.mark.parametrize(
    ("code", "retry_after", "retryable"),
    [("Throttling", "5", True), ("ServiceUnavailable", None, True), ("AccessDenied", None, False)],
)
def test_sts_errors_are_upstream_unavailable(make_service, aws_backend, code, retry_after, retryable):
    service = make_service()
    client = service.clients.sts()
    with Stubber(client) as stubber:
        stubber.add_client_error("assume_role", service_error_code=code, http_status_code=400)
        event = http_event("/credentials", {"role": "kernel-reader"}, request_id=f"req-sts-{code}")
        status, headers, body = call(service, event)
    assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert body["details"] == {"upstream": "sts", "upstream_code": code, "retryable": retryable}
    assert headers.get("Retry-After") == retry_after
    record = only_record(aws_backend, f"req-sts-{code}")
    assert record["decision"]["S"] == "error"
    assert "access_key_id" not in record


def test_sts_unreachable_is_503_after_exactly_two_attempts(make_service):
    """No retry storm: the client makes at most two attempts, with short timeouts."""
    service = make_service()
    client = boto3.session.Session(region_name=REGION).client(
        "sts", endpoint_url="http://127.0.0.1:9", config=client_config()
    )
    attempts: list[str] = []
    client.meta.events.register("before-send.sts.AssumeRole", lambda **kw: attempts.append("x"))
    service.clients._clients["sts"] = client
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert body["details"]["retryable"] is True
    assert len(attempts) == 2
    config = client.meta.config
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert config.connect_timeout <= 3
    assert config.read_timeout <= 3


def test_unknown_route_is_a_clean_400(make_service):
    event = http_event("/admin", {})
    status, _, body = call(make_service(), event)
    assert_error(status, body, "INVALID_REQUEST", 400)


def test_misconfigured_environment_fails_closed(monkeypatch):
    for name in ("KERNEL_ACCESS_AUDIT_TABLE", "KERNEL_ACCESS_POLICY_OBJECT_KEY"):
        monkeypatch.delenv(name, raising=False)
    vending.reset_for_tests(None)
    response = vending.handler(http_event("/credentials", {"role": "kernel-reader"}), FakeLambdaContext())
    body = json.loads(response["body"])
    assert response["statusCode"] == 500
    assert body["error_code"] == "INTERNAL_ERROR"
    vending.reset_for_tests(None)


def test_source_ip_and_clock_reach_the_policy(make_service, aws_backend, sts_calls):
    """The handler evaluates with the request's source IP and the service clock (time windows in
    the rule's zone, across midnight): the engine's edge cases are tested in test_policy_evaluate;
    this proves the wiring."""
    from datetime import datetime

    policy = dict(
        POLICY,
        rules=[
            {
                "id": "night-shift",
                "effect": "allow",
                "partners": ["payments"],
                "roles": ["kernel-reader"],
                "source_cidrs": ["203.0.113.0/24", "2001:db8::/32"],
                "time_window": {
                    "days": ["sun"],
                    "start": "22:00",
                    "end": "02:00",
                    "timezone": "Europe/London",
                },
            }
        ],
    )
    aws_backend.put_policy(policy)
    service = make_service()
    now = [datetime(2026, 3, 29, 0, 30, tzinfo=UTC)]  # Sunday 00:30 GMT: Saturday's window, not Sunday's
    service._clock = lambda: now[0]

    def status(source_ip: str) -> int:
        event = http_event("/credentials", {"role": "kernel-reader"}, source_ip=source_ip)
        return call(service, event)[0]

    assert status("203.0.113.7") == 403
    now[0] = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)  # Sunday 22:30 BST (DST began at 01:00 UTC)
    assert status("203.0.113.7") == 200
    assert status("2001:db8::42") == 200
    assert status("198.51.100.1") == 403  # outside the CIDRs
    now[0] = datetime(2026, 3, 30, 0, 59, tzinfo=UTC)  # Monday 01:59 BST: still Sunday's window
    assert status("203.0.113.7") == 200
    now[0] = datetime(2026, 3, 30, 1, 0, tzinfo=UTC)  # Monday 02:00 BST: end is exclusive
    assert status("203.0.113.7") == 403
    assert len(sts_calls) == 3
