"""Cutting off AWS sessions the exchange already issued: a deny on the target role, keyed on a tag.

STS credentials stay valid until they expire; the only way to stop one early is a deny that IAM
evaluates on every request of the session. Every session the exchange mints carries the session
tag ``exchanged-token`` = the fingerprint of the OIDC token it was exchanged for
(:data:`kernel_access.exchange.minting.REVOCATION_TAG_KEY`), so one inline policy on the target
role, ``KernelAccessExchangeRevocations``, denies exactly the revoked sessions::

    {"Effect": "Deny", "Action": "*", "Resource": "*",
     "Condition": {"StringEquals": {"aws:PrincipalTag/exchanged-token": ["sha256:…", …]}}}

Why a tag rather than ``aws:TokenIssueTime`` (what the console's "Revoke active sessions" and
``kernel-access revoke-sessions`` use): a time cut-off kills every session of the role, every
workflow of every repository that uses it; keyed on the source identity it still kills every
session of that subject. The tag names one session.

How it scales: the policy is *derived* — rebuilt from the issued-tokens table on every revocation
as "revoked, still unexpired AWS sessions of this role" — so an entry lives at most as long as the
session it denies (≤ 1 hour: role chaining caps sessions there) and the policy shrinks again by
itself on the next revocation (it is deleted when nothing is left to deny). Each entry costs 74
characters; with the budget of :data:`MAX_CUTOFF_POLICY_CHARS` (IAM allows 10,240 characters of
inline policy per role, some left for ``AWSRevokeOlderSessions``) that is about 110 sessions of
one role revoked within one hour. Beyond that, the role-wide ``aws:TokenIssueTime`` cut-off is
applied instead: broader, but it never leaves a revoked session running.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kernel_access.exchange.issued import IssuedToken
from kernel_access.exchange.minting import REVOCATION_TAG_KEY

#: Name of the inline policy on a target role that denies revoked exchange sessions.
CUTOFF_POLICY_NAME: Final = "KernelAccessExchangeRevocations"
#: Budget for that policy (IAM: 10,240 characters of inline policy per role, all policies together).
MAX_CUTOFF_POLICY_CHARS: Final = 8192
CUTOFF_SID: Final = "DenyRevokedExchangeSessions"

CutoffAction = Literal["applied", "removed", "role-wide"]


@dataclass(frozen=True)
class CutoffResult:
    role_arn: str
    role_name: str
    action: CutoffAction
    #: Tag values (OIDC token fingerprints) the policy denies; empty for "removed".
    denied: tuple[str, ...]
    policy_name: str
    policy: dict[str, Any] | None


def cutoff_policy(fingerprints: Iterable[str]) -> dict[str, Any] | None:
    """The deny for sessions tagged with any of ``fingerprints`` (None when there are none)."""
    values = sorted(set(fingerprints))
    if not values:
        return None
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": CUTOFF_SID,
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:PrincipalTag/{REVOCATION_TAG_KEY}": values}},
            }
        ],
    }


def policy_text(policy: dict[str, Any]) -> str:
    """The policy as IAM counts it (no insignificant whitespace)."""
    return json.dumps(policy, separators=(",", ":"), sort_keys=True)


def role_name_of(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def revoked_sessions_by_role(tokens: Iterable[IssuedToken], now: datetime) -> dict[str, set[str]]:
    """role ARN -> tag values of its revoked AWS sessions that have not expired yet."""
    by_role: dict[str, set[str]] = {}
    for token in tokens:
        if (
            token.kind == "aws_credentials"
            and token.revoked_at is not None
            and token.expires_at > now
            and token.role_arn
            and token.presented_token_fingerprint
        ):
            by_role.setdefault(token.role_arn, set()).add(token.presented_token_fingerprint)
    return by_role


def apply_cutoff(
    iam: Any, role_arn: str, fingerprints: Iterable[str], *, now: datetime | None = None
) -> CutoffResult:
    """Make the role's cut-off policy deny exactly ``fingerprints`` (IAM errors propagate)."""
    from kernel_access.cli.revoke import REVOKE_POLICY_NAME, revoke_older_sessions_policy

    name = role_name_of(role_arn)
    values = tuple(sorted(set(fingerprints)))
    policy = cutoff_policy(values)
    if policy is None:
        with contextlib.suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_role_policy(RoleName=name, PolicyName=CUTOFF_POLICY_NAME)
        return CutoffResult(role_arn, name, "removed", (), CUTOFF_POLICY_NAME, None)
    text = policy_text(policy)
    if len(text) > MAX_CUTOFF_POLICY_CHARS:
        moment = (now or datetime.now(UTC)).replace(microsecond=0)
        wide = revoke_older_sessions_policy(moment)
        iam.put_role_policy(RoleName=name, PolicyName=REVOKE_POLICY_NAME, PolicyDocument=policy_text(wide))
        return CutoffResult(role_arn, name, "role-wide", values, REVOKE_POLICY_NAME, wide)
    iam.put_role_policy(RoleName=name, PolicyName=CUTOFF_POLICY_NAME, PolicyDocument=text)
    return CutoffResult(role_arn, name, "applied", values, CUTOFF_POLICY_NAME, policy)
