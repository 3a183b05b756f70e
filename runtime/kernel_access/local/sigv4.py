"""Verify AWS Signature Version 4 on an incoming HTTP request, the way API Gateway's IAM authorizer
does, for local servers (the emulator, tests, benchmarks).

Why our own verifier: botocore only *signs*. We do not re-implement the algorithm, though: the
expected signature is recomputed with botocore's :class:`~botocore.auth.SigV4Auth` (its canonical
request, string-to-sign and key derivation) from the request exactly as received, restricted to the
headers the client said it signed, at the timestamp the client said it signed at. What is ours is the
parsing of the ``Authorization`` header and the checks around it: credential scope (service, region,
date), clock skew, the session token and the body hash. Comparison is constant-time.

Usage::

    verifier = SigV4Verifier(lambda key_id: known.get(key_id), region="us-east-1")
    result = verifier.verify(method="GET", path="/credentials?role=r", headers=headers, body=b"")
    if not result.ok:
        return 403, result.reason
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from kernel_access.client.signing import EXECUTE_API_SERVICE

#: API Gateway (like every AWS endpoint) refuses requests signed more than 5 minutes away from now.
DEFAULT_MAX_SKEW: Final = timedelta(minutes=5)
_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_AMZ_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_AUTH_RE: Final = re.compile(
    r"^AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
#: Headers whose presence the signature must cover: without them a replay could change meaning.
_REQUIRED_SIGNED: Final = frozenset({"host", "x-amz-date"})


class SigV4Failure(StrEnum):
    """Why a request was refused (safe to return to the caller: no secret is involved)."""

    MISSING_AUTHORIZATION = "MISSING_AUTHORIZATION"
    MALFORMED_AUTHORIZATION = "MALFORMED_AUTHORIZATION"
    MISSING_DATE = "MISSING_DATE"
    STALE_REQUEST = "STALE_REQUEST"
    WRONG_SCOPE = "WRONG_SCOPE"
    UNKNOWN_ACCESS_KEY = "UNKNOWN_ACCESS_KEY"
    TOKEN_MISMATCH = "TOKEN_MISMATCH"  # noqa: S105 - a failure code, not a credential
    BODY_HASH_MISMATCH = "BODY_HASH_MISMATCH"
    SIGNATURE_MISMATCH = "SIGNATURE_MISMATCH"


@dataclass(frozen=True)
class KnownCredential:
    """What the verifier knows about one access key: its secret and, optionally, who it belongs to.

    ``session_token``: when set, the request's ``X-Amz-Security-Token`` must equal it (temporary
    credentials are only valid with their token). ``principal_arn``/``account_id`` are carried into
    the result for the caller (e.g. to build an IAM-authorizer context); the verifier ignores them.
    """

    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    principal_arn: str | None = None
    account_id: str | None = None


#: Looks up an access key id; ``None`` means unknown (refused).
SecretLookup = Callable[[str], KnownCredential | None]


@dataclass(frozen=True)
class SigV4Result:
    """Outcome of one verification; ``ok`` is True only when every check passed."""

    ok: bool
    failure: SigV4Failure | None = None
    detail: str = ""
    access_key_id: str | None = None
    region: str | None = None
    service: str | None = None
    signed_headers: tuple[str, ...] = ()
    credential: KnownCredential | None = None

    @property
    def reason(self) -> str:
        """One line for a 403 body or a log: failure code and a short, secret-free detail."""
        if self.ok:
            return "ok"
        assert self.failure is not None
        return f"{self.failure.value}: {self.detail}" if self.detail else self.failure.value


def _fail(failure: SigV4Failure, detail: str = "", *, access_key_id: str | None = None) -> SigV4Result:
    return SigV4Result(ok=False, failure=failure, detail=detail, access_key_id=access_key_id)


class SigV4Verifier:
    """Verifies SigV4-signed requests for one service in a set of regions.

    ``lookup`` maps an access key id to a :class:`KnownCredential` (or ``None``); ``regions``
    (default: any) and ``service`` (default ``execute-api``) must match the credential scope;
    ``clock`` returns an aware UTC datetime (injectable for tests).
    """

    def __init__(
        self,
        lookup: SecretLookup,
        *,
        service: str = EXECUTE_API_SERVICE,
        region: str | Iterable[str] | None = None,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lookup = lookup
        self._service = service
        self._regions: frozenset[str] | None = (
            frozenset({region}) if isinstance(region, str) else frozenset(region) if region else None
        )
        self._max_skew = max_skew
        self._clock = clock

    def verify(  # noqa: PLR0911, PLR0912 - a verifier is a flat list of checks, each its own refusal
        self,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes = b"",
        scheme: str = "https",
    ) -> SigV4Result:
        """Verify one request. ``path`` is the raw request target (path and query, as received)."""
        lowered: dict[str, list[str]] = {}
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            lowered.setdefault(name.lower().strip(), []).append(value)

        authorization = _single(lowered, "authorization")
        if not authorization:
            return _fail(SigV4Failure.MISSING_AUTHORIZATION)
        match = _AUTH_RE.match(authorization.strip())
        if not match:
            return _fail(SigV4Failure.MALFORMED_AUTHORIZATION, f"expected {_ALGORITHM} Credential=…")
        scope = match.group("credential").split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return _fail(SigV4Failure.MALFORMED_AUTHORIZATION, "bad credential scope")
        access_key_id, scope_date, region, service, _ = scope
        signed = tuple(match.group("signed").split(";"))
        if list(signed) != sorted(set(signed)) or not _REQUIRED_SIGNED.issubset(signed):
            return _fail(
                SigV4Failure.MALFORMED_AUTHORIZATION,
                "SignedHeaders must be sorted, unique and include host and x-amz-date",
                access_key_id=access_key_id,
            )
        if any(name not in lowered for name in signed):
            return _fail(
                SigV4Failure.MALFORMED_AUTHORIZATION,
                "a signed header is missing",
                access_key_id=access_key_id,
            )

        amz_date = _single(lowered, "x-amz-date")
        if not amz_date:
            return _fail(SigV4Failure.MISSING_DATE, access_key_id=access_key_id)
        try:
            signed_at = datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return _fail(
                SigV4Failure.MISSING_DATE, "X-Amz-Date is not YYYYMMDDTHHMMSSZ", access_key_id=access_key_id
            )
        if abs(self._clock() - signed_at) > self._max_skew:
            return _fail(SigV4Failure.STALE_REQUEST, "signed too far from now", access_key_id=access_key_id)
        if scope_date != amz_date[:8]:
            return _fail(
                SigV4Failure.WRONG_SCOPE, "scope date differs from X-Amz-Date", access_key_id=access_key_id
            )
        if service != self._service:
            return _fail(
                SigV4Failure.WRONG_SCOPE, f"service must be {self._service}", access_key_id=access_key_id
            )
        if self._regions is not None and region not in self._regions:
            return _fail(SigV4Failure.WRONG_SCOPE, "region not served here", access_key_id=access_key_id)

        known = self._lookup(access_key_id)
        if known is None:
            return _fail(SigV4Failure.UNKNOWN_ACCESS_KEY, access_key_id=access_key_id)
        presented_token = _single(lowered, "x-amz-security-token")
        if known.session_token is not None and (
            presented_token is None
            or not hmac.compare_digest(presented_token.encode(), known.session_token.encode())
        ):
            return _fail(SigV4Failure.TOKEN_MISMATCH, access_key_id=access_key_id)
        if presented_token is not None and "x-amz-security-token" not in signed:
            return _fail(SigV4Failure.TOKEN_MISMATCH, "token not signed", access_key_id=access_key_id)

        declared_hash = _single(lowered, "x-amz-content-sha256")
        if declared_hash is not None and declared_hash != hashlib.sha256(body).hexdigest():
            # UNSIGNED-PAYLOAD is legal SigV4, but nothing of ours sends it; refuse rather than
            # accept a body the signature does not cover.
            detail = "unsigned payload refused" if declared_hash == _UNSIGNED_PAYLOAD else ""
            return _fail(SigV4Failure.BODY_HASH_MISMATCH, detail, access_key_id=access_key_id)

        # Recompute with botocore from exactly the headers the client signed.
        request = AWSRequest(
            method=method.upper(),
            url=f"{scheme}://{_single(lowered, 'host')}{path}",
            data=body,
        )
        for name in signed:
            for value in lowered[name]:
                request.headers[name] = value  # HTTPHeaders appends: repeated headers stay repeated
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(
            ReadOnlyCredentials(access_key_id, known.secret_access_key, presented_token), service, region
        )
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected.encode(), match.group("signature").encode()):
            return _fail(SigV4Failure.SIGNATURE_MISMATCH, access_key_id=access_key_id)
        return SigV4Result(
            ok=True,
            access_key_id=access_key_id,
            region=region,
            service=service,
            signed_headers=signed,
            credential=known,
        )


def verify_sigv4(
    lookup: SecretLookup,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes = b"",
    service: str = EXECUTE_API_SERVICE,
    region: str | Iterable[str] | None = None,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    now: datetime | None = None,
) -> SigV4Result:
    """One-shot form of :class:`SigV4Verifier` (``now`` defaults to the current UTC time)."""
    fixed = now
    verifier = SigV4Verifier(
        lookup,
        service=service,
        region=region,
        max_skew=max_skew,
        clock=(lambda: fixed) if fixed is not None else (lambda: datetime.now(UTC)),
    )
    return verifier.verify(method=method, path=path, headers=headers, body=body)


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    if not values:
        return None
    return values[0] if len(values) == 1 else ",".join(values)
