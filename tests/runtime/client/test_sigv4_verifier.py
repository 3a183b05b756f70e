"""The SigV4 verifier accepts exactly what botocore signs and refuses every kind of tampering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kernel_access.client.signing import StaticCredentials, region_from_url, sign_request
from kernel_access.local.sigv4 import KnownCredential, SigV4Failure, SigV4Verifier, verify_sigv4

KEY = StaticCredentials("ASIAEXAMPLEKEY000001", "secret/with+chars", "session-token")
KNOWN = {
    KEY.access_key: KnownCredential(
        KEY.secret_key, KEY.token, principal_arn="arn:aws:sts::1:assumed-role/r/s"
    )
}
HOST = "abc123.execute-api.eu-west-1.amazonaws.com"


def signed(
    method: str = "POST", path: str = "/v1/items?b=2&a=1", body: bytes = b'{"x":1}', **kw: object
) -> dict[str, str]:
    return sign_request(
        kw.get("credentials", KEY),  # type: ignore[arg-type]
        method=method,
        url=f"https://{HOST}{path}",
        body=body,
        headers={"Content-Type": "application/json"},
        region=str(kw.get("region", "eu-west-1")),
        service=str(kw.get("service", "execute-api")),
    )


def verify(
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = "/v1/items?b=2&a=1",
    body: bytes = b'{"x":1}',
    **kw: object,
):  # type: ignore[no-untyped-def]
    headers = {"Host": HOST, **headers}
    verifier = SigV4Verifier(
        KNOWN.get, region=kw.get("region", "eu-west-1"), clock=kw.get("clock", lambda: datetime.now(UTC))
    )  # type: ignore[arg-type]
    return verifier.verify(method=method, path=path, headers=headers, body=body)


def test_accepts_what_botocore_signs() -> None:
    result = verify(signed())
    assert result.ok, result.reason
    assert result.access_key_id == KEY.access_key
    assert result.credential is not None
    assert result.credential.principal_arn == "arn:aws:sts::1:assumed-role/r/s"
    assert "x-amz-security-token" in result.signed_headers


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"body": b'{"x":2}'}, SigV4Failure.SIGNATURE_MISMATCH),
        ({"method": "PUT"}, SigV4Failure.SIGNATURE_MISMATCH),
        ({"path": "/v1/items?b=2&a=2"}, SigV4Failure.SIGNATURE_MISMATCH),
        ({"path": "/v1/other?b=2&a=1"}, SigV4Failure.SIGNATURE_MISMATCH),
        ({"region": "us-east-1"}, SigV4Failure.WRONG_SCOPE),
        ({"clock": lambda: datetime.now(UTC) + timedelta(minutes=6)}, SigV4Failure.STALE_REQUEST),
        ({"clock": lambda: datetime.now(UTC) - timedelta(minutes=6)}, SigV4Failure.STALE_REQUEST),
    ],
)
def test_refuses_tampering(change: dict[str, object], failure: SigV4Failure) -> None:
    result = verify(signed(), **change)
    assert not result.ok
    assert result.failure is failure


def test_refuses_a_tampered_signed_header() -> None:
    headers = signed()
    headers["Content-Type"] = "text/plain"
    assert verify(headers).failure is SigV4Failure.SIGNATURE_MISMATCH


def test_refuses_wrong_secret_unknown_key_and_wrong_token() -> None:
    wrong_secret = StaticCredentials(KEY.access_key, "another-secret", KEY.token)
    assert verify(signed(credentials=wrong_secret)).failure is SigV4Failure.SIGNATURE_MISMATCH
    unknown = StaticCredentials("ASIAUNKNOWN000000000", KEY.secret_key, KEY.token)
    assert verify(signed(credentials=unknown)).failure is SigV4Failure.UNKNOWN_ACCESS_KEY
    other_token = StaticCredentials(KEY.access_key, KEY.secret_key, "other-token")
    assert verify(signed(credentials=other_token)).failure is SigV4Failure.TOKEN_MISMATCH
    no_token = StaticCredentials(KEY.access_key, KEY.secret_key, None)
    assert verify(signed(credentials=no_token)).failure is SigV4Failure.TOKEN_MISMATCH


def test_refuses_wrong_service_and_missing_or_malformed_authorization() -> None:
    assert verify(signed(service="s3")).failure is SigV4Failure.WRONG_SCOPE
    headers = signed()
    del headers["Authorization"]
    assert verify(headers).failure is SigV4Failure.MISSING_AUTHORIZATION
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")
    assert verify(headers).failure is SigV4Failure.MALFORMED_AUTHORIZATION
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace("SignedHeaders=", "SignedHeaders=x-extra;")
    assert verify(headers).failure is SigV4Failure.MALFORMED_AUTHORIZATION
    headers = signed()
    del headers["X-Amz-Date"]
    assert not verify(headers).ok


def test_refuses_a_body_hash_that_does_not_match() -> None:
    headers = signed()
    headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    assert verify(headers).failure is SigV4Failure.BODY_HASH_MISMATCH


def test_one_shot_function_and_reason_text_carry_no_secret() -> None:
    result = verify_sigv4(
        KNOWN.get,
        method="POST",
        path="/v1/items?b=2&a=1",
        headers={"Host": HOST, **signed()},
        body=b'{"x":2}',
        region="eu-west-1",
    )
    assert not result.ok
    assert KEY.secret_key not in result.reason
    assert result.reason.startswith("SIGNATURE_MISMATCH")


def test_region_is_read_from_execute_api_urls() -> None:
    assert region_from_url(f"https://{HOST}/prod/x", "us-east-1") == "eu-west-1"
    assert region_from_url("https://api.example.com/x", "us-east-1") == "us-east-1"
    assert region_from_url("http://127.0.0.1:8080/x", "ap-south-2") == "ap-south-2"
    assert KEY.secret_key not in repr(KEY)
    assert KEY.token is not None
    assert KEY.token not in repr(KEY)
