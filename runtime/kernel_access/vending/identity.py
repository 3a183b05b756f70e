"""Who is calling: read ONLY from the HTTP API's IAM authorizer context.

API Gateway fills ``requestContext.authorizer.iam`` after verifying the SigV4 signature; nothing a
caller sends (headers, query, body) can change it. Headers such as ``X-Forwarded-For`` or any
``x-caller-*`` are never consulted. A request without that context has no caller
(:attr:`~kernel_access.vending.context.VendingRequestContext.caller` is ``None``) and is denied
(ACCESS_DENIED): it can only mean the route was deployed without IAM auth, which must not hand out
credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kernel_access.validation import ACCESS_KEY_ID_RE, ACCOUNT_ID_RE, ORG_ID_RE, PRINCIPAL_ARN_RE

MAX_ARN_LENGTH: Final = 2048


@dataclass(frozen=True)
class CallerIdentity:
    user_arn: str
    account_id: str | None
    org_id: str | None
    access_key: str | None
    source_ip: str | None
    user_agent: str | None


def caller_from_iam(
    iam: Mapping[str, Any], *, source_ip: str | None, user_agent: str | None
) -> CallerIdentity | None:
    """The verified caller of ``requestContext.authorizer.iam``, or ``None`` when it names none.

    Malformed optional facts (account, organization, access key) are dropped, never guessed.
    """
    user_arn = iam.get("userArn")
    if (
        not isinstance(user_arn, str)
        or len(user_arn) > MAX_ARN_LENGTH
        or not PRINCIPAL_ARN_RE.fullmatch(user_arn)
    ):
        return None
    account_id = iam.get("accountId")
    org_id = iam.get("principalOrgId")
    access_key = iam.get("accessKey")
    return CallerIdentity(
        user_arn=user_arn,
        account_id=_valid(account_id, ACCOUNT_ID_RE),
        org_id=_valid(org_id, ORG_ID_RE),
        access_key=_valid(access_key, ACCESS_KEY_ID_RE),
        source_ip=source_ip,
        user_agent=user_agent,
    )


def _valid(value: object, pattern: re.Pattern[str]) -> str | None:
    """``value`` when it is a string the whole of which ``pattern`` matches, else ``None``."""
    return value if isinstance(value, str) and pattern.fullmatch(value) else None
