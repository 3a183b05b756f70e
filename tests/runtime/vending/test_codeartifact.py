"""GET /codeartifact/token and GET /health through the handler (moto STS/DynamoDB/SSM, Stubber for
CodeArtifact)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from kernel_access.refresh import Minted
from kernel_access.vending.codeartifact import TokenCache

from tests.runtime.conftest import (
    ACME_ARN,
    PAYMENTS_ARN,
    POLICY,
    PUBLISHER_ROLE_ARN,
    READER_ROLE_ARN,
    REGION,
    STRANGER_ARN,
    http_event,
)
from tests.runtime.vending.test_credentials import assert_error, call, only_record

pytestmark = pytest.mark.usefixtures("secrets_scan")


def token_event(query: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    return http_event("/codeartifact/token", {"domain": "kernel"} if query is None else query, **kwargs)


def test_publisher_gets_a_publish_token_and_the_audit_stores_only_a_fingerprint(
    make_service, aws_backend, codeartifact_stub
):
    status, headers, body = call(make_service(), token_event(request_id="req-tok-1"))
    assert status == 200, body
    assert set(body) == {"authorizationToken", "expiration"}
    (mint,) = codeartifact_stub.mints
    assert body["authorizationToken"] == mint["token"]
    datetime.strptime(body["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert headers["Cache-Control"] == "no-store"

    record = only_record(aws_backend, "req-tok-1")
    assert record["decision"]["S"] == "allow"
    assert record["codeartifact_access"]["S"] == "publish"
    assert record["rule_id"]["S"] == "payments-publish"
    expected = "sha256:" + hashlib.sha256(mint["token"].encode()).hexdigest()
    assert record["token_fingerprint"]["S"] == expected
    assert mint["token"] not in json.dumps(record)
    assert "access_key_id" not in record  # only vended AWS sessions fill the by-access-key index


def test_reader_never_receives_a_publisher_token(make_service, codeartifact_stub):
    service = make_service()
    status, _, publisher = call(service, token_event())
    assert status == 200
    status, _, reader = call(service, token_event(user_arn=ACME_ARN))
    assert status == 200
    assert reader["authorizationToken"] != publisher["authorizationToken"]
    publish_mint, read_mint = codeartifact_stub.mints
    assert publish_mint["token"] == publisher["authorizationToken"]
    assert read_mint["token"] == reader["authorizationToken"]

    # The minting sessions belong to the right roles (asked of STS with the minting credentials).
    def role_of(mint: dict[str, Any]) -> str:
        sts = boto3.client(
            "sts",
            region_name=REGION,
            aws_access_key_id=mint["access_key_id"],
            aws_secret_access_key=mint["secret_access_key"],
            aws_session_token=mint["session_token"],
        )
        return sts.get_caller_identity()["Arn"].split("/")[1]

    assert role_of(publish_mint) == PUBLISHER_ROLE_ARN.rsplit("/", 1)[-1]
    assert role_of(read_mint) == READER_ROLE_ARN.rsplit("/", 1)[-1]
    # Further reader requests keep getting the reader token from the cache.
    for _ in range(3):
        assert call(service, token_event(user_arn=ACME_ARN))[2]["authorizationToken"] == read_mint["token"]
    assert len(codeartifact_stub.mints) == 2


def test_warm_cache_mints_once(make_service, codeartifact_stub):
    service = make_service()
    tokens = {call(service, token_event())[2]["authorizationToken"] for _ in range(5)}
    assert len(tokens) == 1
    assert service.tokens.mint_count == 1


def test_lifetime_is_part_of_the_cache_key(make_service, codeartifact_stub):
    service = make_service()
    status, _, short = call(service, token_event({"domain": "kernel", "duration": "900"}))
    assert status == 200
    expiration = datetime.strptime(short["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expiration <= datetime.now(UTC) + timedelta(seconds=905)
    status, _, long = call(service, token_event())
    assert long["authorizationToken"] != short["authorizationToken"]
    assert len(codeartifact_stub.mints) == 2


@pytest.mark.parametrize(
    ("query", "caller", "code", "status"),
    [
        ({"domain": "other"}, None, "POLICY_DENY", 403),
        ({"domain": "kernel"}, STRANGER_ARN, "POLICY_DENY", 403),
        ({}, None, "INVALID_REQUEST", 400),
        ({"domain": "Kernel!"}, None, "INVALID_REQUEST", 400),
        ({"domain": "kernel", "repository": "-bad"}, None, "INVALID_REQUEST", 400),
        ({"domain": "kernel", "role": "kernel-reader"}, None, "INVALID_REQUEST", 400),
        ({"domain": "kernel", "duration": "43200"}, None, "INVALID_REQUEST", 400),
    ],
)
def test_token_refusals(make_service, codeartifact_stub, query, caller, code, status):
    kwargs = {"user_arn": caller} if caller else {}
    got_status, _, body = call(make_service(), token_event(query, **kwargs))
    assert_error(got_status, body, code, status)
    assert codeartifact_stub.mints == []


def test_allow_rule_without_access_level_grants_no_token(make_service, aws_backend, codeartifact_stub):
    policy = dict(POLICY, rules=[{"id": "payments-anything", "effect": "allow", "partners": ["payments"]}])
    aws_backend.put_policy(policy)
    status, _, body = call(make_service(), token_event())
    assert_error(status, body, "POLICY_DENY", 403)
    assert codeartifact_stub.mints == []


def test_hmac_fingerprint_when_a_key_is_configured(make_service, aws_backend, codeartifact_stub):
    aws_backend.ssm.put_parameter(
        Name="/kernel-access/audit-hmac", Value="k" * 32, Type="SecureString", Overwrite=True
    )
    service = make_service(KERNEL_ACCESS_AUDIT_HMAC_KEY_PARAMETER="/kernel-access/audit-hmac")
    status, _, body = call(service, token_event(request_id="req-hmac"))
    assert status == 200
    expected = hmac.new(b"k" * 32, body["authorizationToken"].encode(), hashlib.sha256).hexdigest()
    assert only_record(aws_backend, "req-hmac")["token_fingerprint"]["S"] == "hmac-sha256:" + expected


def test_unreadable_hmac_key_fails_closed(make_service, codeartifact_stub):
    service = make_service(KERNEL_ACCESS_AUDIT_HMAC_KEY_PARAMETER="/kernel-access/missing-key")
    status, _, body = call(service, token_event())
    assert_error(status, body, "INTERNAL_ERROR", 500)
    assert "authorizationToken" not in body


def test_audit_failure_withholds_the_token(make_service, codeartifact_stub):
    service = make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table")
    status, _, body = call(service, token_event())
    assert_error(status, body, "INTERNAL_ERROR", 500)
    assert len(codeartifact_stub.mints) == 1
    assert codeartifact_stub.mints[0]["token"] not in json.dumps(body)


def test_codeartifact_failures_open_the_breaker(make_service, codeartifact_stub):
    codeartifact_stub.fail_with = "ServiceUnavailableException"
    service = make_service()
    for _ in range(5):
        status, _, body = call(service, token_event())
        assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
        assert body["details"]["upstream"] == "codeartifact"
    assert service.tokens.mint_count == 5
    assert set(service.tokens.breaker_states().values()) == {"open"}
    # While open: refused at once, no further mint attempts.
    for _ in range(3):
        status, _, body = call(service, token_event())
        assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert service.tokens.mint_count == 5
    status, _, health = call(service, http_event("/health"))
    assert status == 200
    assert list(health["breakers"].values()) == ["open"]


def test_minting_not_configured_is_503(make_service, codeartifact_stub):
    service = make_service(KERNEL_ACCESS_CODEARTIFACT_PUBLISHER_ROLE_ARN="")
    status, _, body = call(service, token_event())
    assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert body["details"]["retryable"] is False


def test_cached_token_with_less_than_300_seconds_left_is_reminted():
    now = [datetime(2026, 11, 23, 9, 0, tzinfo=UTC)]
    mints: list[str] = []

    cache = TokenCache(
        reader_role_arn=READER_ROLE_ARN,
        publisher_role_arn=PUBLISHER_ROLE_ARN,
        domain_owner="111111111111",
        sts_client=lambda: None,  # type: ignore[arg-type,return-value]
        codeartifact_client=lambda creds: None,  # type: ignore[arg-type,return-value]
        clock=lambda: now[0],
    )

    def fake_mint(domain: str, owner: str, access: str, lifetime: int, partner: str) -> Minted[Any]:
        from kernel_access.vending.codeartifact import CodeArtifactToken

        mints.append(access)
        expires = now[0] + timedelta(seconds=lifetime)
        return Minted(CodeArtifactToken(f"t{len(mints)}", expires, access), expires, now[0])  # type: ignore[arg-type]

    cache._mint = fake_mint  # type: ignore[method-assign]
    assert cache.get(domain="kernel", access="read", lifetime=3600, partner="payments").token == "t1"
    now[0] += timedelta(seconds=2000)
    assert cache.get(domain="kernel", access="read", lifetime=3600, partner="payments").token == "t1"
    now[0] += timedelta(seconds=1350)  # 250 s left: below the 300 s floor
    assert cache.get(domain="kernel", access="read", lifetime=3600, partner="payments").token == "t2"
    assert cache.get(domain="kernel", access="publish", lifetime=3600, partner="payments").access == "publish"
    assert mints == ["read", "read", "publish"]


# --------------------------------------------------------------------------- /health


def test_health_reports_versions_without_secrets(make_service):
    from kernel_access import __version__

    service = make_service()
    call(service, token_event())
    status, _, body = call(service, http_event("/health"))
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["policy"]["version"] == "test-1"
    assert body["policy"]["available"] is True
    assert body["policy"]["age_seconds"] >= 0
    assert body["breakers"] == {"kernel:publish:3600": "closed"}
    assert "token" not in json.dumps(body).lower()


def test_health_requires_the_iam_authorizer(make_service):
    status, _, body = call(make_service(), http_event("/health", user_arn=None))
    assert_error(status, body, "ACCESS_DENIED", 403)


def test_health_without_policy_is_503(make_service):
    service = make_service(KERNEL_ACCESS_POLICY_OBJECT_KEY="vending/missing.json")
    status, _, body = call(service, http_event("/health"))
    assert_error(status, body, "POLICY_LOAD_FAILED", 503)
    assert body["details"]["policy"]["available"] is False


def test_health_is_audited(make_service, aws_backend):
    status, _, body = call(make_service(), http_event("/health", request_id="req-health-1"))
    assert status == 200
    assert body["request_id"] == "req-health-1"
    record = only_record(aws_backend, "req-health-1")
    assert record["route"]["S"] == "GET /health"
    assert record["decision"]["S"] == "allow"
    assert record["caller_arn"]["S"] == PAYMENTS_ARN
    assert record["policy_version"]["S"] == "test-1"


def test_health_refusal_is_audited(make_service, aws_backend):
    status, _, body = call(make_service(), http_event("/health", user_arn=None, request_id="req-health-anon"))
    assert_error(status, body, "ACCESS_DENIED", 403)
    record = only_record(aws_backend, "req-health-anon")
    assert record["decision"]["S"] == "deny"
    assert record["error_code"]["S"] == "ACCESS_DENIED"


def test_health_counts_against_the_rate_limit(make_service):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="2")
    assert [call(service, http_event("/health"))[0] for _ in range(2)] == [200, 200]
    status, headers, body = call(service, http_event("/health"))
    assert_error(status, body, "RATE_LIMITED", 429)
    assert headers["Retry-After"] == str(body["retry_after_seconds"])


def test_health_fails_closed_when_the_audit_table_fails(make_service):
    status, _, body = call(make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table"), http_event("/health"))
    assert_error(status, body, "INTERNAL_ERROR", 500)
    assert "version" not in body


def test_unknown_route_is_audited(make_service, aws_backend):
    status, _, body = call(make_service(), http_event("/admin/keys", request_id="req-unknown-route"))
    assert_error(status, body, "INVALID_REQUEST", 400)
    record = only_record(aws_backend, "req-unknown-route")
    assert record["route"]["S"] == "unknown"
    assert record["decision"]["S"] == "deny"
    assert record["caller_arn"]["S"] == PAYMENTS_ARN
