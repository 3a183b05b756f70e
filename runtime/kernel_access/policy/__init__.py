"""The vending policy engine: parse a policy document, evaluate requests, load it from S3.

Public API (other modules code against exactly these names)::

    parse_policy(document) -> Policy                  # raises PolicyValidationError
    Policy.evaluate(AccessRequest) -> Decision        # first match wins, no match denies
    Policy.partner_for(user_arn, KernelIdentity(...)) -> str | None   # see policy.identity
    access_request_for(policy, caller_arn=..., ...) -> AccessRequest   # as the Lambda derives it
    PolicyStore(bucket, key, ...).get() -> LoadedPolicy   # raises PolicyUnavailable
"""

from kernel_access.policy.document import Policy
from kernel_access.policy.evaluate import NO_RULE_MATCHED
from kernel_access.policy.identity import KernelIdentity
from kernel_access.policy.model import (
    AccessRequest,
    CodeArtifactAccess,
    CodeArtifactCondition,
    Decision,
    PartnerInfo,
    PolicyIssue,
    PolicyValidationError,
    Rule,
    SessionPolicy,
)
from kernel_access.policy.parser import parse_policy
from kernel_access.policy.patterns import PrincipalPattern
from kernel_access.policy.request import access_request_for
from kernel_access.policy.store import LoadedPolicy, PolicyStore, PolicyUnavailable
from kernel_access.policy.timewindow import TimeWindow

__all__ = [
    "NO_RULE_MATCHED",
    "AccessRequest",
    "CodeArtifactAccess",
    "CodeArtifactCondition",
    "Decision",
    "KernelIdentity",
    "LoadedPolicy",
    "PartnerInfo",
    "Policy",
    "PolicyIssue",
    "PolicyStore",
    "PolicyUnavailable",
    "PolicyValidationError",
    "PrincipalPattern",
    "Rule",
    "SessionPolicy",
    "TimeWindow",
    "access_request_for",
    "parse_policy",
]
