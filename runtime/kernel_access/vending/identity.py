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

from kernel_access.validation import ACCOUNT_ID_RE, ORG_ID_RE

MAX_ARN_LENGTH: Final = 2048
_ARN_RE: Final = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[\x21-\x7e]+$")
_ACCESS_KEY_RE: Final = re.compile(r"^[A-Z0-9]{16,128}$")


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
    if not isinstance(user_arn, str) or len(user_arn) > MAX_ARN_LENGTH or not _ARN_RE.match(user_arn):
        return None
    account_id = iam.get("accountId")
    org_id = iam.get("principalOrgId")
    access_key = iam.get("accessKey")
    return CallerIdentity(
        user_arn=user_arn,
        account_id=account_id if isinstance(account_id, str) and ACCOUNT_ID_RE.match(account_id) else None,
        org_id=org_id if isinstance(org_id, str) and ORG_ID_RE.match(org_id) else None,
        access_key=access_key if isinstance(access_key, str) and _ACCESS_KEY_RE.match(access_key) else None,
        source_ip=source_ip,
        user_agent=user_agent,
    )
