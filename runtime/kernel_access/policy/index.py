"""Which rules one request can possibly match, so evaluation does not grow with the policy.

A policy for an organization holds thousands of rules; a request names one target (a role, or a
CodeArtifact domain) and comes from one partner, and most rules are about other targets and other
partners. :class:`RuleIndex` narrows the ordered rule list in two steps: at parse time, per target
named in the policy, the rules that can apply to it (a request for a role no rule names gets the
rules without a ``roles`` condition); per request, those filtered by the partner conditions, giving
the *candidates* for a (target, partner) pair — every rule that could match, in document order — and
:func:`~kernel_access.policy.evaluate.evaluate_rules` then runs the unchanged first-match scan over
the candidates. First-match semantics are therefore exactly the plain scan's by construction: the
index only ever leaves out rules that cannot match (a hypothesis test compares both on random
policies).

Candidates are computed on first use of a (target, partner) pair and memoised. The key space is
partly caller-chosen (an unknown role name), so the memo is bounded: when it is full it starts
over, which costs one pass over the target's rules per pair, never correctness.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final

from kernel_access.policy.model import AccessRequest, Rule

#: Most (target, partner) pairs remembered per policy (a few MB at most).
MAX_MEMO_ENTRIES: Final = 16_384


def _could_match_target(rule: Rule, role: str | None, domain: str | None) -> bool:
    """The target part of ``evaluate._target_matches`` without the repository (checked later)."""
    if rule.roles is not None and (role is None or role not in rule.roles):
        return False
    if rule.codeartifact is None:
        return not (domain is not None and rule.effect == "allow")
    return domain is not None and domain in rule.codeartifact.domains


def _could_match_partner(rule: Rule, partner: str | None) -> bool:
    """A rule whose partner conditions exclude ``partner``; unknown partners keep deny rules."""
    partners, groups, attributes = rule.partners, rule.group_members, rule.attribute_members
    if partner is None:
        return rule.effect == "deny" or (partners is None and groups is None and attributes is None)
    return (
        (partners is None or partner in partners)
        and (groups is None or partner in groups)
        and (attributes is None or partner in attributes)
    )


class RuleIndex:
    """Candidate rules per (role, domain, partner), in document order; thread-safe."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        roles = {role for rule in self._rules if rule.roles is not None for role in rule.roles}
        domains = {
            d for rule in self._rules if rule.codeartifact is not None for d in rule.codeartifact.domains
        }
        self._by_target: dict[tuple[str | None, str | None], tuple[Rule, ...]] = {
            target: self._for_target(*target)
            for target in [*((role, None) for role in roles), *((None, domain) for domain in domains)]
        }
        # A role or domain no rule names: only rules without that kind of condition can apply.
        self._unnamed_role = self._for_target("\x00unnamed", None)
        self._unnamed_domain = self._for_target(None, "\x00unnamed")
        self._memo: dict[tuple[str | None, str | None, str | None], tuple[Rule, ...]] = {}
        self._lock = threading.Lock()

    def _for_target(self, role: str | None, domain: str | None) -> tuple[Rule, ...]:
        return tuple(rule for rule in self._rules if _could_match_target(rule, role, domain))

    def _target_rules(self, role: str | None, domain: str | None) -> tuple[Rule, ...]:
        if (role is None) == (domain is None):
            return self._rules  # malformed: evaluation denies it before looking at any rule
        found = self._by_target.get((role, domain))
        if found is not None:
            return found
        return self._unnamed_role if role is not None else self._unnamed_domain

    def candidates(self, request: AccessRequest) -> tuple[Rule, ...]:
        key = (request.role, request.codeartifact_domain, request.partner)
        found = self._memo.get(key)
        if found is None:
            found = tuple(
                rule
                for rule in self._target_rules(request.role, request.codeartifact_domain)
                if _could_match_partner(rule, request.partner)
            )
            with self._lock:
                if len(self._memo) >= MAX_MEMO_ENTRIES:
                    self._memo.clear()
                self._memo[key] = found
        return found
