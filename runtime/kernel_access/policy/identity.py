"""Which partner a caller is, from the assumed-role session ARN the IAM authorizer reports.

Each partner's trust statement on the kernel-access roles requires ``sts:RoleSessionName`` to
match ``"<partner>.*"``, so the session name carries the partner. We accept it only when the
partner exists and came through the role meant for it: an in-organization partner through the
in-org role, an external partner through the external role. A session of the other role with a
matching prefix is somebody else wearing the name, so it gets no partner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from kernel_access.policy.model import PartnerInfo
from kernel_access.validation import SESSION_PARTNER_SEPARATOR

_SESSION_ARN_RE: Final = re.compile(
    r"^arn:(?:aws|aws-cn|aws-us-gov):sts::[0-9]{12}:assumed-role/"
    r"(?P<role>[\w+=,.@-]{1,64})/(?P<session>[\w+=,.@-]{2,64})$",
    re.ASCII,
)


def partner_for_arn(
    partners: Mapping[str, PartnerInfo], user_arn: str, *, in_org_role: str, external_role: str
) -> str | None:
    match = _SESSION_ARN_RE.fullmatch(user_arn)
    if match is None:
        return None
    role, session = match.group("role"), match.group("session")
    name, separator, _rest = session.partition(SESSION_PARTNER_SEPARATOR)
    if not separator or not name:
        return None
    info = partners.get(name)
    if info is None:
        return None
    expected_role = in_org_role if info.in_organization else external_role
    return name if role == expected_role else None
