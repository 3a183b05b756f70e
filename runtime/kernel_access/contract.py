"""The HTTP contract of the kernel-access APIs: one definition, read by the CDK construct
(to create routes and authorizers) and by the local emulator (to serve them).

Nothing here imports boto3 or Powertools, so the construct library can read it at synth time cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

AuthKind = Literal["IAM", "JWT"]


@dataclass(frozen=True)
class Route:
    """One route of an HTTP API: what the construct creates and the emulator serves."""

    method: str
    path: str
    auth: AuthKind
    #: Lambda handler (``module.function``) that serves the route.
    handler: str

    @property
    def route_key(self) -> str:
        """The HTTP API route key, e.g. ``GET /credentials``."""
        return f"{self.method} {self.path}"


VENDING_HANDLER: Final = "kernel_access.handlers.vending.handler"
EXCHANGE_HANDLER: Final = "kernel_access.handlers.exchange.handler"

CREDENTIALS_ROUTE: Final = Route("GET", "/credentials", "IAM", VENDING_HANDLER)
TOKEN_ROUTE: Final = Route("GET", "/codeartifact/token", "IAM", VENDING_HANDLER)
HEALTH_ROUTE: Final = Route("GET", "/health", "IAM", VENDING_HANDLER)
#: Routes of the credential-vending API; every one is IAM-authorized.
VENDING_ROUTES: Final[tuple[Route, ...]] = (CREDENTIALS_ROUTE, TOKEN_ROUTE, HEALTH_ROUTE)
#: The ``route`` (audit records, metric dimension, log key) of a vending request no route above
#: matched — never its raw path: a caller-chosen string must not become a metric dimension.
UNKNOWN_ROUTE: Final = "unknown"


def exchange_route(issuer_name: str) -> Route:
    """The token-exchange route of one trusted issuer (JWT-authorized by that issuer)."""
    return Route("POST", f"/exchange/{issuer_name}", "JWT", EXCHANGE_HANDLER)


class ErrorCode(StrEnum):
    """Every ``error_code`` the APIs return, with its HTTP status."""

    INVALID_REQUEST = "INVALID_REQUEST"
    ACCESS_DENIED = "ACCESS_DENIED"
    POLICY_DENY = "POLICY_DENY"
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 - an error code, not a credential
    SESSION_REVOKED = "SESSION_REVOKED"
    ISSUER_NOT_ALLOWED = "ISSUER_NOT_ALLOWED"
    ROLE_NOT_FOUND = "ROLE_NOT_FOUND"
    TRUST_POLICY_NOT_FOUND = "TRUST_POLICY_NOT_FOUND"
    POLICY_NOT_FOUND = "POLICY_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    #: The kernel itself is at capacity for this kind of request (e.g. CodeArtifact token mints);
    #: unlike RATE_LIMITED, not about this caller's request rate. Retry after ``Retry-After``.
    THROTTLED = "THROTTLED"
    POLICY_LOAD_FAILED = "POLICY_LOAD_FAILED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: Final[dict[ErrorCode, int]] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.ACCESS_DENIED: 403,
    ErrorCode.POLICY_DENY: 403,
    ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.SESSION_REVOKED: 403,
    ErrorCode.ISSUER_NOT_ALLOWED: 403,
    ErrorCode.ROLE_NOT_FOUND: 404,
    ErrorCode.TRUST_POLICY_NOT_FOUND: 403,
    ErrorCode.POLICY_NOT_FOUND: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.THROTTLED: 429,
    ErrorCode.POLICY_LOAD_FAILED: 503,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}


# --- role names (the environment variables that override them are in ``settings``) ---
#: The role every partner inside the AWS Organization assumes (one trust statement for all).
KERNEL_ACCESS_ROLE: Final = "kernel-access"
#: Base name of the per-partner roles of partners outside the Organization
#: (``kernel-access-external-<partner>``: one account, one sts:ExternalId each).
KERNEL_ACCESS_EXTERNAL_ROLE: Final = "kernel-access-external"

# --- configuration documents ---
#: Keys of the configuration documents in the kernel's config bucket (the constructs deploy them
#: there, the Lambdas read them, ``kernel-access policy lint s3://BUCKET/KEY`` checks them).
POLICY_DOCUMENT_KEY: Final = "vending/policy.json"
EXCHANGE_CONFIG_KEY: Final = "exchange/config.json"
#: Largest configuration document, in bytes (5 MiB). S3 objects hold terabytes; this is our own
#: bound on what a Lambda downloads and parses. Enforced twice from this one definition: at synth
#: (the limits check's ``config_document_bytes`` default, rule ``ConfigDocumentSize``) and by the
#: Lambda on every load (``document_store.s3_fetcher``), which refuses a larger object — one
#: uploaded out of band — before reading its body.
MAX_DOCUMENT_BYTES: Final = 5 * 1024 * 1024

# --- deployment configuration shared by the CDK app and the local emulator ---
#: cdk.json context key holding the kernel-access configuration (``kernel_access_cdk.config``).
CONFIG_CONTEXT_KEY: Final = "kernel-access"
#: Configuration flag that adds the example ``EchoService`` to the kernel stack. Off by default (a
#: production kernel carries no example code); ``kernel-access local`` sets it when it synthesises.
EXAMPLE_SERVICE_FLAG: Final = "example_service"
