"""CodeArtifact tokens are per partner and attributable, lifetimes share mints, mints are capped.

- two partners never share a token (nor its audit fingerprint);
- each partner's token is minted by a session whose SourceIdentity and ``partner`` session tag
  name the partner, so CloudTrail says which partner published a package;
- requested lifetimes are rounded down to a few buckets: 60 requests for 900..959 s, one mint;
- the deployment-wide mint rate is capped: past it, THROTTLED (429) with ``Retry-After``;
- a partner found revoked loses its cached tokens in this container.

CodeArtifact is a botocore ``Stubber`` (moto has none); STS, DynamoDB and SSM are moto.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kernel_access.ratelimit import RateLimiter
from kernel_access.revocation import partner_subject
from kernel_access.vending.codeartifact import LIFETIME_BUCKETS, MintRateGate, lifetime_bucket

from tests.runtime.conftest import ACME_ARN, POLICY, RATE_LIMIT_TABLE, http_event
from tests.runtime.vending.test_credentials import assert_error, call, only_record

pytestmark = pytest.mark.usefixtures("secrets_scan")

#: Both partners may read the same domain: the case where a shared cache would mix them.
BOTH_READ = dict(
    POLICY,
    rules=[
        {
            "id": "both-read",
            "effect": "allow",
            "partners": ["payments", "acme-analytics"],
            "codeartifact": {"domains": ["kernel"], "access": "read"},
        }
    ],
)


def token_event(duration: int | None = None, **kwargs: Any) -> dict[str, Any]:
    query = {"domain": "kernel"}
    if duration is not None:
        query["duration"] = str(duration)
    return http_event("/codeartifact/token", query, **kwargs)


def assume_role_calls(service: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    service.clients.sts().meta.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_two_partners_never_share_a_token(make_service, aws_backend, codeartifact_stub):
    aws_backend.put_policy(BOTH_READ)
    service = make_service()
    status, _, payments = call(service, token_event(request_id="req-pay"))
    assert status == 200, payments
    status, _, acme = call(service, token_event(user_arn=ACME_ARN, request_id="req-acme"))
    assert status == 200, acme
    assert payments["authorizationToken"] != acme["authorizationToken"]
    assert len(codeartifact_stub.mints) == 2
    assert (
        only_record(aws_backend, "req-pay")["token_fingerprint"]["S"]
        != only_record(aws_backend, "req-acme")["token_fingerprint"]["S"]
    )


def test_minting_session_names_the_partner(make_service, aws_backend, codeartifact_stub):
    aws_backend.put_policy(BOTH_READ)
    service = make_service()
    calls = assume_role_calls(service)
    assert call(service, token_event())[0] == 200
    assert call(service, token_event(user_arn=ACME_ARN))[0] == 200
    payments_call, acme_call = calls
    assert payments_call["SourceIdentity"] == "payments"
    assert acme_call["SourceIdentity"] == "acme-analytics"
    assert payments_call["Tags"] == [{"Key": "partner", "Value": "payments"}]
    assert acme_call["Tags"] == [{"Key": "partner", "Value": "acme-analytics"}]
    assert "payments" in payments_call["RoleSessionName"]
    assert "acme-analytics" in acme_call["RoleSessionName"]


def test_lifetimes_in_one_bucket_share_one_mint(make_service, codeartifact_stub):
    """Regression: 900..959 s gave 60 mints (AssumeRole + GetAuthorizationToken) for 60 requests.

    The 60 requests come from one session, more than the default per-session budget allows in a
    window: raise it so every request reaches the token cache (rate limits have their own tests)."""
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_SESSION_REQUESTS="100")
    tokens = set()
    for duration in range(900, 960):
        status, _, body = call(service, token_event(duration))
        assert status == 200, body
        tokens.add(body["authorizationToken"])
    assert len(tokens) == 1
    assert service.tokens.mint_count == 1


@pytest.mark.parametrize(
    ("requested", "bucket"), [(900, 900), (959, 900), (1799, 900), (1800, 1800), (3599, 2700), (3600, 3600)]
)
def test_lifetime_buckets_never_exceed_the_request(requested: int, bucket: int) -> None:
    assert lifetime_bucket(requested) == bucket
    assert lifetime_bucket(requested) <= requested
    assert bucket in LIFETIME_BUCKETS


def test_mint_rate_is_capped_and_fails_closed_with_throttled(make_service, aws_backend, codeartifact_stub):
    aws_backend.put_policy(BOTH_READ)
    service = make_service()
    frozen = 1_800_000_000.25
    service.tokens._mint_gate = MintRateGate(
        RateLimiter(
            RATE_LIMIT_TABLE, lambda: aws_backend.dynamodb, limit=2, window_seconds=10, clock=lambda: frozen
        )
    )
    calls = assume_role_calls(service)
    assert call(service, token_event(900))[0] == 200
    assert call(service, token_event(3600))[0] == 200
    status, headers, body = call(service, token_event(1800, request_id="req-throttled"))
    assert_error(status, body, "THROTTLED", 429)
    assert body["retry_after_seconds"] == 10
    assert headers["Retry-After"] == "10"
    assert len(calls) == 2, "a throttled mint must not reach STS"
    assert len(codeartifact_stub.mints) == 2
    record = only_record(aws_backend, "req-throttled")
    assert record["error_code"]["S"] == "THROTTLED"
    # cached tokens are still served: the cap is on mints, not on requests
    assert call(service, token_event(900))[0] == 200


def test_mint_gate_unavailable_fails_closed(make_service, codeartifact_stub):
    service = make_service()
    service.tokens._mint_gate = MintRateGate(RateLimiter("missing-table", service.clients.dynamodb))
    status, _, body = call(service, token_event())
    assert_error(status, body, "UPSTREAM_UNAVAILABLE", 503)
    assert codeartifact_stub.mints == []


def test_revoked_partner_loses_its_cached_tokens(make_service, aws_backend, codeartifact_stub):
    aws_backend.put_policy(BOTH_READ)
    service = make_service()
    assert call(service, token_event())[0] == 200
    assert call(service, token_event(user_arn=ACME_ARN))[0] == 200
    assert {key[-1] for key in service.tokens._entries} == {"payments", "acme-analytics"}
    service.revocations.revoke(partner_subject("payments"), reason="test", revoked_by="tests")
    status, _, body = call(service, token_event())
    assert_error(status, body, "SESSION_REVOKED", 403)
    assert {key[-1] for key in service.tokens._entries} == {"acme-analytics"}
    assert "authorizationToken" not in json.dumps(body)
