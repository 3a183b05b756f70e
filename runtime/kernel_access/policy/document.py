"""The parsed policy document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kernel_access.policy.evaluate import evaluate_rules
from kernel_access.policy.identity import partner_for_arn
from kernel_access.policy.index import RuleIndex
from kernel_access.policy.model import AccessRequest, Decision, PartnerInfo, Rule


@dataclass(frozen=True)
class Policy:
    """A validated policy: build it with :func:`kernel_access.policy.parse_policy`."""

    version: str
    partners: Mapping[str, PartnerInfo]
    rules: tuple[Rule, ...]
    index: RuleIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", RuleIndex(self.rules))

    def evaluate(self, request: AccessRequest) -> Decision:
        """Rules in order, first match wins, no match denies — over the index's candidates, which
        are exactly the rules that can match (see ``index``)."""
        return evaluate_rules(self.index.candidates(request), request)

    def partner_for(self, user_arn: str, *, in_org_role: str, external_role: str) -> str | None:
        """The partner a kernel-access session ARN belongs to, or ``None`` (see ``identity``)."""
        return partner_for_arn(self.partners, user_arn, in_org_role=in_org_role, external_role=external_role)
