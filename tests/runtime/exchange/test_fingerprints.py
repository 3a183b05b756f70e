"""One token fingerprint for the vending API and the exchange: with the deployment's audit HMAC
key configured, the fingerprint of every token the kernel ISSUES is keyed in the audit records
(``issued_token_fingerprint``, ``hmac-sha256:``, the vending API's function), so holding the audit
table is not enough to confirm a guessed credential.

Deliberately plain SHA-256: the PRESENTED OIDC token's fingerprint (``presented_token_fingerprint``)
and the issued-token index. The presented fingerprint is what operators compute with ``sha256sum``
for ``kernel-access exchange revoke --oidc-token``, the revocation-table key and the
``exchanged-token`` session tag the cut-off deny matches; the index is how a leaked issued token is
looked up. A configured key that cannot be read refuses the exchange before anything is minted."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import boto3
import pytest
from kernel_access import settings
from kernel_access.audit import FingerprintKeyUnavailable, TokenFingerprinter, token_fingerprint
from kernel_access.exchange.wiring import service_from_env

from tests.runtime.exchange.conftest import Harness, make_event, wiring_environment

KEY = b"audit-hmac-key-for-tests-0123456789abcdef"


def _hmac(token: str) -> str:
    return "hmac-sha256:" + hmac.new(KEY, token.encode(), hashlib.sha256).hexdigest()


def _sha256(token: str) -> str:
    """What an operator computes with ``sha256sum``."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def test_exchange_audit_keys_the_issued_fingerprint_only(harness: Harness) -> None:
    harness.service.fingerprint = TokenFingerprinter(lambda: KEY)
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    status, body, _ = harness.call(make_event(token, claims, {"target": "deploy"}))
    assert status == 200, body
    session_token = body["credentials"]["SessionToken"]
    [record] = harness.audit_items()
    # presented: plain, the key of `exchange revoke --oidc-token` and of the session tag
    assert record["presented_token_fingerprint"]["S"] == _sha256(token)
    assert record["issued_token_fingerprint"]["S"] == _hmac(session_token)
    # the same function the vending API fingerprints with
    assert record["issued_token_fingerprint"]["S"] == token_fingerprint(session_token, KEY)
    [issued] = harness.issued_items()
    assert issued["fingerprint"]["S"] == _sha256(session_token)
    assert issued["presented_token_fingerprint"]["S"] == _sha256(token)
    [assumed] = harness.sts_calls
    assert {"Key": "exchanged-token", "Value": _sha256(token)} in assumed["Tags"]


def test_refusals_record_the_operator_lookup_fingerprint(harness: Harness) -> None:
    harness.service.fingerprint = TokenFingerprinter(lambda: KEY)
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    status, _body, _ = harness.call(make_event(token, claims, {"target": "nope"}))
    assert status >= 400
    [record] = harness.audit_items()
    assert record["presented_token_fingerprint"]["S"] == _sha256(token)
    assert "issued_token_fingerprint" not in record


def test_unreadable_key_refuses_the_exchange_and_audits_it(harness: Harness) -> None:
    def broken() -> bytes:
        raise RuntimeError("ssm down")

    harness.service.fingerprint = TokenFingerprinter(broken)
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    status, body, _ = harness.call(make_event(token, claims, {"target": "deploy"}))
    assert status == 500
    assert body["error_code"] == "INTERNAL_ERROR"
    assert "credentials" not in body
    assert harness.issued_items() == []
    assert harness.sts_calls == [], "nothing is minted while the audit key cannot be read"
    [record] = harness.audit_items()
    assert record["decision"]["S"] == "error"
    assert record["reason"]["S"] == "audit HMAC key unavailable"
    assert record["presented_token_fingerprint"]["S"] == _sha256(token)
    assert "issued_token_fingerprint" not in record
    assert "access_key_id" not in record
    # Not the caller's fault: the token is not spent, the workflow's retry succeeds once the key reads.
    harness.service.fingerprint = TokenFingerprinter(lambda: KEY)
    status, body, _ = harness.call(make_event(token, claims, {"target": "deploy"}))
    assert status == 200, body


def test_wiring_reads_the_audit_hmac_key_parameter(aws: None) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/kernel-access/audit-hmac", Value=KEY.decode(), Type="SecureString")
    environ = wiring_environment(**{settings.AUDIT_HMAC_KEY_PARAMETER: "/kernel-access/audit-hmac"})
    from kernel_access.aws_clients import default_clients

    # The Lambdas' process-wide clients: build them inside this test's moto state, drop them after.
    default_clients.cache_clear()
    try:
        service: Any = service_from_env(environ)
        assert service.fingerprint("token") == _hmac("token")
        assert service.minter.mint_gate.limiter.table_name == "rate"  # the vending API's table
    finally:
        default_clients.cache_clear()


def test_fingerprinter_fails_closed_on_every_call() -> None:
    calls = []

    def broken() -> bytes:
        calls.append(1)
        raise OSError("denied")

    fingerprint = TokenFingerprinter(broken)
    for _ in range(2):
        with pytest.raises(FingerprintKeyUnavailable):
            fingerprint("t")
    assert len(calls) == 2  # retried, never cached as "no key"
    assert TokenFingerprinter()("t") == token_fingerprint("t")


def test_exchange_codeartifact_mints_share_the_deployment_wide_cap(harness: Harness) -> None:
    """The exchange mints CodeArtifact tokens against the same quota as the vending API, so it
    passes the same mint gate (same rate-limit subject): past it, THROTTLED with Retry-After and
    no call to STS or CodeArtifact."""
    from kernel_access.ratelimit import RateLimiter
    from kernel_access.vending.codeartifact import MintRateGate

    from tests.runtime.exchange.conftest import RATE_TABLE

    harness.service.minter.mint_gate = MintRateGate(
        RateLimiter(
            RATE_TABLE, lambda: harness.dynamodb, limit=1, window_seconds=10, clock=lambda: 1_800_000_000.5
        )
    )
    status, body = harness.exchange({"target": "packages"}, sub="repo:acme/lib:ref:refs/heads/main")
    assert status == 200, body
    calls = len(harness.codeartifact_calls), len(harness.sts_calls)
    claims = harness.tokens.claims(sub="repo:acme/lib:ref:refs/heads/main")
    status, body, headers = harness.call(
        make_event(harness.tokens.sign(claims), claims, {"target": "packages"})
    )
    assert status == 429, body
    assert body["error_code"] == "THROTTLED"
    assert headers["Retry-After"] == str(body["retry_after_seconds"]) == "10"
    assert (len(harness.codeartifact_calls), len(harness.sts_calls)) == calls
    assert any(item.get("error_code", {}).get("S") == "THROTTLED" for item in harness.audit_items())
