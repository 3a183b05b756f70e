"""The cached-key signer must produce byte-identical headers to botocore's plain ``SigV4Auth``.

``sign_request`` keeps botocore's canonicaliser but caches the derived signing key, builds the
signed-header map without ``email.message`` and hashes byte bodies directly; any divergence would
be a signature API Gateway rejects, so compare against the reference at a frozen clock.
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from kernel_access.client import signing
from kernel_access.client.signing import StaticCredentials, sign_request

CREDS = StaticCredentials("ASIAPARITYEXAMPLE000", "parity/secret+key=example0123456789abcd", "tok" * 50)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    now = [dt.datetime(2026, 11, 23, 23, 59, 58)]
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: now[0])
    return now


def _reference(
    method: str, url: str, body: bytes | None, headers: dict[str, str], host: str
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body or b"", headers={**headers, "Host": host})
    creds = ReadOnlyCredentials(CREDS.access_key, CREDS.secret_key, CREDS.token)
    SigV4Auth(creds, "execute-api", "eu-west-1").add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


@pytest.mark.parametrize(
    ("method", "url", "body", "headers"),
    [
        ("GET", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/x", None, {}),
        (
            "POST",
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/a%20b/c?z=1&a=2&a=1",
            b'{"k": "v"}',
            {"Content-Type": "application/json", "X-Trace": "  a   b  ", "x-trace": "second"},
        ),
        ("PUT", "http://127.0.0.1:8080/v1/thing", "ünï".encode(), {"Idempotency-Key": "k-1"}),
    ],
)
def test_signature_matches_botocore(
    frozen_clock: list[dt.datetime], method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> None:
    host = url.split("://", 1)[1].split("/", 1)[0]
    ours = sign_request(CREDS, method=method, url=url, body=body, headers=headers, region="eu-west-1")
    assert ours == _reference(method, url, body, headers, host)
    # Second call reuses the cached signer and key: still identical.
    assert sign_request(CREDS, method=method, url=url, body=body, headers=headers, region="eu-west-1") == ours


def test_cached_key_follows_the_day_and_the_credentials(frozen_clock: list[dt.datetime]) -> None:
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/x"
    host = "abc123.execute-api.eu-west-1.amazonaws.com"
    before = sign_request(CREDS, method="GET", url=url, body=None, headers={}, region="eu-west-1")
    frozen_clock[0] = dt.datetime(2026, 11, 24, 0, 0, 1)  # past midnight UTC: a new signing key
    after = sign_request(CREDS, method="GET", url=url, body=None, headers={}, region="eu-west-1")
    assert after == _reference("GET", url, None, {}, host)
    assert after["Authorization"] != before["Authorization"]
    rotated = StaticCredentials(CREDS.access_key, "another-secret-key-0123456789abcdefghij", CREDS.token)
    other = sign_request(rotated, method="GET", url=url, body=None, headers={}, region="eu-west-1")
    assert other["Authorization"] != after["Authorization"]


def test_headers_to_sign_memo_does_not_outlive_add_auth(frozen_clock: list[dt.datetime]) -> None:
    signer = signing._signer(CREDS.access_key, CREDS.secret_key, CREDS.token, "execute-api", "eu-west-1")
    request = AWSRequest(method="GET", url="https://h.example/x", data=b"", headers={"Host": "h.example"})
    signer.add_auth(request)
    assert "kernel_access.headers_to_sign" not in request.context
    first = request.headers["Authorization"]
    request.headers["X-Extra"] = "1"  # re-signing the same request must see the new header
    signer.add_auth(request)
    assert "x-extra" in request.headers["Authorization"]
    assert request.headers["Authorization"] != first
