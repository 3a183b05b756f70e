"""SigV4 signing of kernel-API requests with botocore's own signer.

We never hand-roll SigV4: botocore's :class:`~botocore.auth.SigV4Auth` is what every AWS SDK call
uses and what API Gateway's IAM authorizer is tested against. This module only decides *which*
region and service a request is signed for, and turns a botocore ``AWSRequest`` into plain headers
for the HTTP transport.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from botocore.auth import EMPTY_SHA256_HASH, SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

#: API Gateway's service name in SigV4 credential scopes (REST and HTTP APIs alike).
EXECUTE_API_SERVICE: Final = "execute-api"

#: ``{api-id}.execute-api.{region}.amazonaws.com`` (also ``.amazonaws.com.cn``).
_EXECUTE_API_HOST_RE: Final = re.compile(
    r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(?:\.cn)?$"
)
#: Headers that must never reach the signer from the caller: the signer sets them itself, and a
#: caller-supplied value would either be overwritten or (for the token) leak a foreign session.
_SIGNER_OWNED_HEADERS: Final = frozenset(
    {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "host"}
)


class SigningCredentials(Protocol):
    """What SigV4 needs (botocore's ``ReadOnlyCredentials`` and ``Credentials`` both fit)."""

    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


@dataclass(frozen=True)
class StaticCredentials:
    """Plain credentials (what STS returns), shaped the way botocore's signer reads them.

    ``repr`` hides the secret and the token so a stray log line or traceback cannot leak them.
    """

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"StaticCredentials(access_key={self.access_key!r}, secret_key=***, token=***)"


def region_from_url(url: str, default: str) -> str:
    """The region of an ``execute-api`` URL, else ``default`` (custom domains, local servers)."""
    region = _region_of_host((urlsplit(url).hostname or "").lower())
    return region if region is not None else default


@functools.lru_cache(maxsize=256)
def _region_of_host(host: str) -> str | None:
    match = _EXECUTE_API_HOST_RE.fullmatch(host)
    return match.group("region") if match else None


@functools.lru_cache(maxsize=256)
def host_header(scheme: str, netloc: str) -> str:
    """The ``Host`` value botocore's signer would derive (lower-case, default port dropped).

    Why our own: botocore derives it twice per signature from the full URL (a third of the signing
    time); we compute it once per endpoint and pass it explicitly, which botocore then signs as is
    and urllib3 sends as is, so signer and wire cannot disagree.
    """
    parts = urlsplit(f"{scheme}://{netloc}")
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{parts.port}"
    return host


class _SignedHeaders:
    """The lower-cased header multimap botocore's canonicaliser reads (``in``, ``[]=`` appends,
    iteration over names, ``get_all``) - the part of ``email.message.Message`` it uses, without the
    per-access policy/sanitising machinery that made ``headers_to_sign`` a third of signing time."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[str, list[str]] = {}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __setitem__(self, name: str, value: str) -> None:
        # Like HTTPHeaders (email.message.Message): a repeated name adds a value, never replaces.
        self._values.setdefault(name.lower(), []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        return self._values.get(name.lower(), failobj)


_HEADERS_TO_SIGN_KEY: Final = "kernel_access.headers_to_sign"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), sha256).digest()


class _CachedKeySigV4Auth(SigV4Auth):
    """botocore's SigV4 with two pure-function caches; the canonical request, string to sign and
    signature are still botocore's own code.

    * the derived signing key (four HMACs over secret, date, region, service) is kept per UTC day:
      it is a pure function of those inputs, and holding it is no more sensitive than holding the
      secret it came from (which this object already does);
    * ``headers_to_sign`` (called twice per signature by botocore) builds a plain dict multimap with
      the same contents instead of an ``email.message.Message``.

    One instance per (credentials, region, service), shared by threads: ``add_auth`` only mutates
    the request it is given, and the key cache is one tuple swapped atomically.
    """

    def __init__(self, credentials: ReadOnlyCredentials, service_name: str, region_name: str) -> None:
        super().__init__(credentials, service_name, region_name)
        self._region = region_name
        self._service = service_name
        self._signing_key: tuple[str, bytes] | None = None

    def add_auth(self, request: AWSRequest) -> None:
        request.context.pop(_HEADERS_TO_SIGN_KEY, None)  # a re-signed request re-reads its headers
        try:
            super().add_auth(request)
        finally:
            request.context.pop(_HEADERS_TO_SIGN_KEY, None)

    def headers_to_sign(self, request: AWSRequest) -> Any:
        # botocore asks twice per add_auth (canonical request, then Authorization's SignedHeaders);
        # the request's headers do not change between the two, so the second answer is the first.
        cached = request.context.get(_HEADERS_TO_SIGN_KEY)
        if cached is not None:
            return cached
        header_map = _SignedHeaders()
        for name, value in request.headers.items():
            lname = name.lower()
            if lname not in SIGNED_HEADERS_BLACKLIST:
                header_map[lname] = value
        if "host" not in header_map:  # sign_request always sets Host; kept for parity with botocore
            parts = urlsplit(request.url)
            header_map["host"] = host_header(parts.scheme, parts.netloc)
        request.context[_HEADERS_TO_SIGN_KEY] = header_map
        return header_map

    def payload(self, request: AWSRequest) -> str:
        # botocore reads ``request.body``, which re-prepares the whole request (URL, a copy of the
        # headers) just to hand back the bytes we passed in; hash them directly when they are bytes.
        data = request.data
        # Same conditions as botocore: no streaming-checksum trailer, payload signing not disabled
        # (sign_request sets neither context key, so byte bodies are always hashed).
        if (
            isinstance(data, bytes)
            and "checksum" not in request.context
            and request.context.get("payload_signing_enabled", True)
        ):
            return sha256(data).hexdigest() if data else EMPTY_SHA256_HASH
        return str(super().payload(request))

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        day = request.context["timestamp"][0:8]
        cached = self._signing_key
        if cached is None or cached[0] != day:
            # The SigV4 key derivation, step for step as in botocore's SigV4Auth.signature.
            k_date = _hmac(f"AWS4{self.credentials.secret_key}".encode(), day)
            k_region = _hmac(k_date, self._region)
            k_service = _hmac(k_region, self._service)
            cached = (day, _hmac(k_service, "aws4_request"))
            self._signing_key = cached
        return hmac.new(cached[1], string_to_sign.encode("utf-8"), sha256).hexdigest()


@functools.lru_cache(maxsize=8)
def _signer(access_key: str, secret_key: str, token: str | None, service: str, region: str) -> SigV4Auth:
    """One signer per credential set (keyed by value, so refreshed credentials get a new one; a
    handful of entries covers a client's current and previous sessions)."""
    return _CachedKeySigV4Auth(ReadOnlyCredentials(access_key, secret_key, token), service, region)


def sign_request(
    credentials: SigningCredentials,
    *,
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str] | None,
    region: str,
    service: str = EXECUTE_API_SERVICE,
    host: str | None = None,
) -> dict[str, str]:
    """Sign one request; returns the complete header set to send (including ``Authorization``).

    Called once per attempt, so a retried request carries a fresh ``X-Amz-Date``. ``host`` is the
    ``Host`` value for ``url`` when the caller has it cached (see :func:`host_header`).
    """
    clean = {k: v for k, v in headers.items() if k.lower() not in _SIGNER_OWNED_HEADERS} if headers else {}
    if host is None:
        parts = urlsplit(url)
        host = host_header(parts.scheme, parts.netloc)
    clean["Host"] = host
    request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=clean)
    # Read the three fields once: botocore's refreshable Credentials may rotate between reads.
    access_key, secret_key, token = credentials.access_key, credentials.secret_key, credentials.token
    _signer(access_key, secret_key, token, service, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}
