"""Which partner a caller is, from the assumed-role session ARN the IAM authorizer reports.

Every caller of the vending API is a session of a kernel-access role, and the partner is derived
only from what IAM enforced when that session was created:

* ``kernel-access`` (partners inside the AWS Organization) has ONE trust statement for every
  partner: ``aws:PrincipalOrgID`` is the organization and ``sts:RoleSessionName`` must match
  ``${aws:PrincipalAccount}.*``. IAM writes the caller's own account id into the session name, so
  the session-name prefix *is* the partner's account, and the account maps to at most one partner
  (the policy document's ``partners`` map; two partners in one account are refused).
* ``kernel-access-external-<partner>`` (one role per external partner) trusts exactly one account
  with exactly one ``sts:ExternalId``; the partner is read from the role name (which only the
  kernel account chooses), and the session-name prefix must also be that partner's account.

The ARN must be a session of the Lambda's own account and partition (:class:`KernelIdentity`): an
ARN of any other account or partition is no partner, whatever its role and session names say. A
deployment that does not know its own account resolves nobody (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE
from kernel_access.policy.model import PartnerInfo
from kernel_access.validation import (
    ACCOUNT_ID_RE,
    SESSION_ACCOUNT_SEPARATOR,
    partner_of_external_role,
)

_SESSION_ARN_RE: Final = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):sts::(?P<account>[0-9]{12}):assumed-role/"
    r"(?P<role>[\w+=,.@-]{1,64})/(?P<session>[\w+=,.@-]{2,64})$",
    re.ASCII,
)


@dataclass(frozen=True)
class KernelIdentity:
    """What the deciding code knows about its own deployment: the kernel account and partition its
    sessions live in, and the names of the kernel-access roles (``external_role`` is the base name:
    each external partner's role is ``<external_role>-<partner>``)."""

    account_id: str | None
    partition: str | None
    in_org_role: str = KERNEL_ACCESS_ROLE
    external_role: str = KERNEL_ACCESS_EXTERNAL_ROLE


def partner_for_arn(
    partners: Mapping[str, PartnerInfo],
    partner_by_account: Mapping[str, str],
    user_arn: str,
    kernel: KernelIdentity,
) -> str | None:
    """The partner ``user_arn`` belongs to, or ``None`` (see the module docstring). O(1) in the
    number of partners: one regex match and two dictionary lookups."""
    if kernel.account_id is None or kernel.partition is None:
        return None
    match = _SESSION_ARN_RE.fullmatch(user_arn)
    if match is None or match["partition"] != kernel.partition or match["account"] != kernel.account_id:
        return None
    account, separator, _rest = match["session"].partition(SESSION_ACCOUNT_SEPARATOR)
    if not separator or not ACCOUNT_ID_RE.fullmatch(account):
        return None
    role = match["role"]
    if role == kernel.in_org_role:
        name = partner_by_account.get(account)
        info = partners.get(name) if name is not None else None
        return name if info is not None and info.in_organization else None
    name = partner_of_external_role(kernel.external_role, role)
    info = partners.get(name) if name is not None else None
    if info is None or info.in_organization or info.account_id != account:
        return None
    return name
