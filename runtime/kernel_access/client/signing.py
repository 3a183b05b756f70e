"""SigV4 signing of kernel-API requests with botocore's own signer.

We never hand-roll SigV4: botocore's :class:`~botocore.auth.SigV4Auth` is what every AWS SDK call
uses and what API Gateway's IAM authorizer is tested against. This module only decides *which*
region and service a request is signed for, and turns a botocore ``AWSRequest`` into plain headers
for the HTTP transport.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
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
    match = _EXECUTE_API_HOST_RE.match(host)
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


def sign_request(
    credentials: SigningCredentials,
    *,
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str] | None,
    region: str,
    service: str = EXECUTE_API_SERVICE,
) -> dict[str, str]:
    """Sign one request; returns the complete header set to send (including ``Authorization``).

    Called once per attempt, so a retried request carries a fresh ``X-Amz-Date``.
    """
    clean = {k: v for k, v in (headers or {}).items() if k.lower() not in _SIGNER_OWNED_HEADERS}
    parts = urlsplit(url)
    clean["Host"] = host_header(parts.scheme, parts.netloc)
    request = AWSRequest(method=method.upper(), url=url, data=body or b"", headers=clean)
    frozen = ReadOnlyCredentials(credentials.access_key, credentials.secret_key, credentials.token)
    SigV4Auth(frozen, service, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}
