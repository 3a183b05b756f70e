"""Build the :class:`AccessRequest` that the policy evaluates, from what IAM verified.

One function, used by the vending Lambda and by ``kernel-access policy explain``, so the two can
never disagree about who a caller is. Every caller of the vending API is a session of a
kernel-access role, and those roles live in the kernel account: the IAM authorizer's ``accountId``
and ``principalOrgId`` describe that *session* (always the kernel account and its organization),
not the partner behind it. The partner comes from the session ARN (see ``identity``), and the
account and organization that rule conditions compare are the ones the configuration binds to that
partner — the facts the partner's trust statement made IAM enforce when the session was created.
A caller that is no partner has no account and no organization: conditions on them cannot be
evaluated, which fails an allow rule and trips a deny rule.
"""

from __future__ import annotations

from datetime import datetime

from kernel_access.policy.document import Policy
from kernel_access.policy.identity import KernelIdentity
from kernel_access.policy.model import AccessRequest


def access_request_for(
    policy: Policy,
    *,
    caller_arn: str,
    source_ip: str | None,
    at: datetime,
    kernel: KernelIdentity,
    role: str | None = None,
    codeartifact_domain: str | None = None,
    codeartifact_repository: str | None = None,
    duration: int | None = None,
) -> AccessRequest:
    """The request as the policy sees it: partner derived from ``caller_arn``, account and
    organization bound to that partner by the document's ``partners`` map. ``kernel`` is the
    deployment's own account, partition and role names: a session of any other account or
    partition is no partner."""
    partner = policy.partner_for(caller_arn, kernel)
    info = policy.partners.get(partner) if partner is not None else None
    return AccessRequest(
        caller_arn=caller_arn,
        account_id=info.account_id if info is not None else None,
        org_id=info.organization_id if info is not None else None,
        source_ip=source_ip,
        at=at,
        partner=partner,
        role=role,
        codeartifact_domain=codeartifact_domain,
        codeartifact_repository=codeartifact_repository,
        duration=duration,
    )
