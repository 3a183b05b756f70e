"""Typed calls to the vending API (``GET /credentials``, ``GET /codeartifact/token``) for the CLI
tools, signed with whatever credentials the caller has (the "ambient" ones, via a boto3 session).

The vending API is called by sessions of the kernel-access roles: the ambient
profile is usually one whose ``role_arn`` is the kernel role with a ``role_session_name`` of
``<your account id>.<something>`` (the trust policies bind the prefix to the calling account); the
CLI can also assume that role itself (``--kernel-account-id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from kernel_access.client.response import KernelCallError, KernelCredentialsError
from kernel_access.client.signing import SigningCredentials, StaticCredentials, region_from_url
from kernel_access.client.transport import SignedTransport

if TYPE_CHECKING:
    import boto3


@dataclass(frozen=True)
class VendedCredentials:
    """AWS credentials vended by the kernel (``repr`` never shows the secret or the token)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    account_id: str | None = None

    def credential_process_json(self) -> dict[str, Any]:
        """The ``credential_process`` output format (``Version: 1``)."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": iso_z(self.expiration),
        }

    def container_json(self) -> dict[str, Any]:
        """The container-credentials format SDKs read from ``AWS_CONTAINER_CREDENTIALS_FULL_URI``."""
        body: dict[str, Any] = {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": iso_z(self.expiration),
        }
        if self.account_id:
            body["AccountId"] = self.account_id
        return body


@dataclass(frozen=True)
class CodeArtifactToken:
    token: str = field(repr=False)
    expiration: datetime


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiration(value: object, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{field_name}: missing")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def ambient_credentials(session: boto3.Session) -> SigningCredentials:
    """The session's current credentials, frozen (botocore refreshes them when due)."""
    credentials = session.get_credentials()
    if credentials is None:
        raise KernelCredentialsError(
            "no AWS credentials found to sign the request (set a profile with --profile or AWS_PROFILE)"
        )
    frozen = credentials.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise KernelCredentialsError("the ambient AWS credentials are incomplete")
    return StaticCredentials(frozen.access_key, frozen.secret_key, frozen.token)


class VendingApi:
    """Client of the vending API's routes. Thread-safe (the transport is)."""

    def __init__(self, base_url: str, transport: SignedTransport) -> None:
        self.base_url = base_url
        self.transport = transport

    @classmethod
    def with_session(
        cls,
        base_url: str,
        session: boto3.Session,
        *,
        region: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
    ) -> VendingApi:
        """Sign with ``session``'s credentials; region from the URL, else ``region``/the session's."""
        signing_region = region_from_url(base_url, region or session.region_name or "us-east-1")
        transport = SignedTransport(
            lambda: ambient_credentials(session),
            region=signing_region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
        )
        return cls(base_url, transport)

    def credentials(self, role: str, duration: int | None = None) -> VendedCredentials:
        query: dict[str, str | int] = {"role": role}
        if duration is not None:
            query["duration"] = duration
        response = self.transport.request(self.base_url, f"/credentials?{urlencode(query)}", "GET")
        body = response.json()
        try:
            return VendedCredentials(
                access_key_id=_string(body, "AccessKeyId"),
                secret_access_key=_string(body, "SecretAccessKey"),
                session_token=_string(body, "Token"),
                expiration=parse_expiration(body.get("Expiration"), "Expiration"),
                account_id=body.get("AccountId") if isinstance(body.get("AccountId"), str) else None,
            )
        except (AttributeError, ValueError) as exc:
            raise _malformed(response.status_code, "/credentials") from exc

    def codeartifact_token(
        self, domain: str, repository: str | None = None, duration: int | None = None
    ) -> CodeArtifactToken:
        query: dict[str, str | int] = {"domain": domain}
        if repository is not None:
            query["repository"] = repository
        if duration is not None:
            query["duration"] = duration
        response = self.transport.request(self.base_url, f"/codeartifact/token?{urlencode(query)}", "GET")
        body = response.json()
        try:
            return CodeArtifactToken(
                token=_string(body, "authorizationToken"),
                expiration=parse_expiration(body.get("expiration"), "expiration"),
            )
        except (AttributeError, ValueError) as exc:
            raise _malformed(response.status_code, "/codeartifact/token") from exc

    def close(self) -> None:
        self.transport.close()


def _string(body: Any, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: missing")
    return value


def _malformed(status: int, route: str) -> KernelCallError:
    # The body may hold secrets: never attach it.
    return KernelCallError(
        status, "MALFORMED_RESPONSE", None, b"", message=f"{route} answered with an unexpected body"
    )
