"""The parsed policy document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kernel_access.policy.evaluate import evaluate_rules
from kernel_access.policy.identity import KernelIdentity, partner_for_arn
from kernel_access.policy.index import RuleIndex
from kernel_access.policy.model import AccessRequest, Decision, PartnerInfo, Rule


@dataclass(frozen=True)
class Policy:
    """A validated policy: build it with :func:`kernel_access.policy.parse_policy`."""

    version: str
    partners: Mapping[str, PartnerInfo]
    rules: tuple[Rule, ...]
    index: RuleIndex = field(init=False, repr=False, compare=False)
    #: account id -> partner name, built once per document so resolving a caller costs the same for
    #: 2 partners as for 5,000 (the parser refuses two partners bound to one account).
    partner_by_account: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", RuleIndex(self.rules))
        accounts = {info.account_id: name for name, info in self.partners.items()}
        object.__setattr__(self, "partner_by_account", accounts)

    def evaluate(self, request: AccessRequest) -> Decision:
        """Rules in order, first match wins, no match denies — over the index's candidates, which
        are exactly the rules that can match (see ``index``)."""
        return evaluate_rules(self.index.candidates(request), request)

    def partner_for(self, user_arn: str, kernel: KernelIdentity) -> str | None:
        """The partner a kernel-access session ARN belongs to, or ``None`` (see ``identity``)."""
        if len(self.partner_by_account) != len(self.partners):
            return None  # two partners share an account: nobody can be told apart (fail closed)
        return partner_for_arn(self.partners, self.partner_by_account, user_arn, kernel)
