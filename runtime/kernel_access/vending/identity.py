"""Who is calling: read ONLY from the HTTP API's IAM authorizer context.

API Gateway fills ``requestContext.authorizer.iam`` after verifying the SigV4 signature; nothing a
caller sends (headers, query, body) can change it. Headers such as ``X-Forwarded-For`` or any
``x-caller-*`` are never consulted. A request without that context is denied (ACCESS_DENIED): it can
only mean the route was deployed without IAM auth, which must not hand out credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.validation import ACCESS_KEY_ID_RE, ACCOUNT_ID_RE, ORG_ID_RE, PRINCIPAL_ARN_RE

MAX_ARN_LENGTH: Final = 2048
MAX_USER_AGENT_LENGTH: Final = 512
_PRINTABLE_RE: Final = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class CallerIdentity:
    user_arn: str
    account_id: str | None
    org_id: str | None
    access_key: str | None
    source_ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class RequestMeta:
    """What the request context says about the connection (not identity): always available."""

    source_ip: str | None
    user_agent: str | None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def request_meta(event: Mapping[str, Any]) -> RequestMeta:
    http = _mapping(_mapping(event.get("requestContext")).get("http"))
    source_ip = http.get("sourceIp")
    user_agent = http.get("userAgent")
    return RequestMeta(
        source_ip=source_ip[:64] if isinstance(source_ip, str) and source_ip else None,
        user_agent=_PRINTABLE_RE.sub("?", user_agent[:MAX_USER_AGENT_LENGTH])
        if isinstance(user_agent, str) and user_agent
        else None,
    )


def caller_from_event(event: Mapping[str, Any]) -> CallerIdentity:
    """The verified caller, or ACCESS_DENIED when the authorizer context is missing or malformed."""
    iam = _mapping(_mapping(_mapping(event.get("requestContext")).get("authorizer")).get("iam"))
    user_arn = iam.get("userArn")
    if (
        not isinstance(user_arn, str)
        or len(user_arn) > MAX_ARN_LENGTH
        or not PRINCIPAL_ARN_RE.match(user_arn)
    ):
        raise KernelAccessError(ErrorCode.ACCESS_DENIED, "request is not IAM-authenticated")
    account_id = iam.get("accountId")
    org_id = iam.get("principalOrgId")
    access_key = iam.get("accessKey")
    meta = request_meta(event)
    return CallerIdentity(
        user_arn=user_arn,
        account_id=account_id if isinstance(account_id, str) and ACCOUNT_ID_RE.match(account_id) else None,
        org_id=org_id if isinstance(org_id, str) and ORG_ID_RE.match(org_id) else None,
        access_key=access_key if isinstance(access_key, str) and ACCESS_KEY_ID_RE.match(access_key) else None,
        source_ip=meta.source_ip,
        user_agent=meta.user_agent,
    )
