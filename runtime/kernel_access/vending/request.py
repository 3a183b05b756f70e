"""Query-string parsing for the vending routes: strict, bounded, and done before any AWS call.

HTTP APIs join repeated parameters with commas in ``queryStringParameters``; since ``,`` is legal in
role names, a repeated ``role`` would silently become another valid-looking name. We therefore
parse ``rawQueryString`` ourselves when it is present and reject repeats, unknown parameters,
oversized strings and malformed values with INVALID_REQUEST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.validation import CODEARTIFACT_DOMAIN_RE, CODEARTIFACT_REPOSITORY_RE, ROLE_NAME_RE

if TYPE_CHECKING:
    from kernel_access.vending.context import VendingRequestContext

#: Longest raw query string accepted (the legitimate ones are well under 200 characters).
MAX_QUERY_LENGTH: Final = 1024
#: Longest single parameter value accepted.
MAX_VALUE_LENGTH: Final = 256
MIN_DURATION: Final = 900
#: Role chaining (a Lambda assuming a role) caps sessions at one hour.
MAX_DURATION: Final = 3600
DEFAULT_DURATION: Final = 3600
DOMAIN_RE: Final = CODEARTIFACT_DOMAIN_RE
REPOSITORY_RE: Final = CODEARTIFACT_REPOSITORY_RE
_DURATION_RE: Final = re.compile(r"^[0-9]{1,5}$")

CREDENTIALS_PARAMETERS: Final = frozenset({"role", "duration"})
TOKEN_PARAMETERS: Final = frozenset({"domain", "repository", "duration"})


@dataclass(frozen=True)
class CredentialsRequest:
    role: str
    #: ``None`` when not given: the policy then grants min(3600, the rule's maximum).
    duration: int | None


@dataclass(frozen=True)
class TokenRequest:
    domain: str
    repository: str | None
    duration: int | None


def _invalid(message: str, **details: Any) -> KernelAccessError:
    return KernelAccessError(ErrorCode.INVALID_REQUEST, message, details or None)


def query_parameters(request: VendingRequestContext, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters of the request, each at most once, all known."""
    pairs: list[tuple[str, str]]
    if request.raw_query is not None:
        if len(request.raw_query) > MAX_QUERY_LENGTH:
            raise _invalid("query string too long", max_length=MAX_QUERY_LENGTH)
        try:
            pairs = parse_qsl(request.raw_query, keep_blank_values=True, max_num_fields=len(allowed) + 1)
        except ValueError:
            raise _invalid("too many query parameters") from None
    else:
        if request.query_pairs is None:
            raise _invalid("malformed query string")
        pairs = list(request.query_pairs)
        if sum(len(k) + len(v) + 2 for k, v in pairs) > MAX_QUERY_LENGTH:
            raise _invalid("query string too long", max_length=MAX_QUERY_LENGTH)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise _invalid("unknown query parameter", parameter=name[:64], allowed=sorted(allowed))
        if name in params:
            raise _invalid("query parameter given more than once", parameter=name)
        if len(value) > MAX_VALUE_LENGTH:
            raise _invalid("query parameter too long", parameter=name, max_length=MAX_VALUE_LENGTH)
        params[name] = value
    return params


def parse_duration(value: str | None) -> int | None:
    """Seconds in 900-3600, or ``None`` when absent (the policy's default then applies)."""
    if value is None:
        return None
    if not _DURATION_RE.fullmatch(value):
        raise _invalid("duration must be a whole number of seconds", parameter="duration")
    duration = int(value)
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise _invalid(
            f"duration must be between {MIN_DURATION} and {MAX_DURATION} seconds",
            parameter="duration",
            minimum=MIN_DURATION,
            maximum=MAX_DURATION,
        )
    return duration


def parse_credentials_request(request: VendingRequestContext) -> CredentialsRequest:
    params = query_parameters(request, CREDENTIALS_PARAMETERS)
    role = params.get("role")
    if not role:
        raise _invalid("query parameter 'role' is required", parameter="role")
    if not ROLE_NAME_RE.fullmatch(role):
        raise _invalid(
            "role must be an IAM role name (1-64 characters of [A-Za-z0-9_+=,.@-])", parameter="role"
        )
    return CredentialsRequest(role=role, duration=parse_duration(params.get("duration")))


def parse_token_request(request: VendingRequestContext) -> TokenRequest:
    params = query_parameters(request, TOKEN_PARAMETERS)
    domain = params.get("domain")
    if not domain:
        raise _invalid("query parameter 'domain' is required", parameter="domain")
    if not DOMAIN_RE.fullmatch(domain):
        raise _invalid("domain must be a CodeArtifact domain name", parameter="domain")
    repository = params.get("repository")
    if repository is not None and not REPOSITORY_RE.fullmatch(repository):
        raise _invalid("repository must be a CodeArtifact repository name", parameter="repository")
    return TokenRequest(domain=domain, repository=repository, duration=parse_duration(params.get("duration")))
