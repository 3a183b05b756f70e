"""Which partner/role pairs the template's own policy allows and denies *right now*.

Why: the commands ``kernel-access local`` prints, and the ``make demo`` script, should work when
pasted. A fixed ``--role`` would not: the example policy allows ``kernel-deployer`` to ``payments`` only
during London business hours, so a hard-coded suggestion fails at night. Instead the policy
document deployed in the local config bucket is evaluated here, with the same engine the vending
handler uses, for every example partner session and every target role, at the current time.

The result is advice for a human (and the demo), never an authorization decision: the handler
evaluates each real request itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from kernel_access.policy import (
    KernelIdentity,
    Policy,
    PolicyValidationError,
    access_request_for,
    parse_policy,
)


@dataclass(frozen=True)
class ExampleDecision:
    """What the policy decides for one example partner session asking for one role."""

    partner: str
    session_arn: str
    role: str
    allowed: bool
    rule_id: str | None
    reason: str
    #: True when the deciding rule has no time window (or no rule matched): the same answer any time.
    timeless: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "partner": self.partner,
            "session_arn": self.session_arn,
            "role": self.role,
            "allowed": self.allowed,
            "rule_id": self.rule_id,
            "reason": self.reason,
        }


def policy_from_value(value: str | None) -> Policy | None:
    """The parsed policy, or None when the parameter holds no valid policy (no examples then)."""
    if not value:
        return None
    try:
        return parse_policy(json.loads(value))
    except (ValueError, PolicyValidationError):
        return None


def example_decisions(
    policy: Policy,
    sessions: Iterable[tuple[str, str]],
    roles: Iterable[str],
    *,
    kernel: KernelIdentity,
    at: datetime | None = None,
) -> list[ExampleDecision]:
    """Evaluate every (partner session, role) pair; ``sessions`` are (partner, session ARN) pairs.

    The request is derived from the session exactly as the vending handler derives it (the partner
    from the session name, its bound account and organization from the policy), from a loopback
    source address.
    """
    when = at or datetime.now(UTC)
    role_names = sorted(set(roles))
    out: list[ExampleDecision] = []
    windowed = {rule.id for rule in policy.rules if rule.time_window is not None}
    for partner, session_arn in sessions:
        for role in role_names:
            request = access_request_for(
                policy,
                caller_arn=session_arn,
                source_ip="127.0.0.1",
                at=when,
                kernel=kernel,
                role=role,
            )
            decision = policy.evaluate(request)
            out.append(
                ExampleDecision(
                    partner,
                    session_arn,
                    role,
                    decision.allowed,
                    decision.rule_id,
                    decision.reason,
                    timeless=decision.rule_id not in windowed,
                )
            )
    return out


def first(decisions: Iterable[ExampleDecision], *, allowed: bool) -> ExampleDecision | None:
    """The first decision with the given outcome, preferring one a named rule decided at any time.

    A deny by an explicit rule (e.g. ``deny-external-deployer``) shows more than the default deny, and
    an example that does not depend on the clock (no ``time_window``) gives the same demo at night.
    """
    matching = [d for d in decisions if d.allowed is allowed]
    ranked = sorted(matching, key=lambda d: (not d.timeless, d.rule_id is None))
    return ranked[0] if ranked else None


def summary(decisions: Iterable[ExampleDecision]) -> Mapping[str, dict[str, object] | None]:
    """The allowed and denied examples (as plain dicts) for state.json and scripts."""
    listed = list(decisions)
    allowed, denied = first(listed, allowed=True), first(listed, allowed=False)
    return {
        "allowed": allowed.as_dict() if allowed else None,
        "denied": denied.as_dict() if denied else None,
    }


def exchange_target(config_value: str | None, *, issuer: str, subject: str) -> str | None:
    """A target of the token-exchange configuration that admits ``subject`` from ``issuer`` exactly.

    Read leniently from the JSON (``trust_policies: {target: [{issuer, subject, ...}]}``): this only
    fills in the body of a printed example command, so anything unexpected just means no suggestion.
    """
    try:
        config = json.loads(config_value or "")
    except ValueError:
        return None
    policies = config.get("trust_policies") if isinstance(config, dict) else None
    if not isinstance(policies, dict):
        return None
    for target, entries in policies.items():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("issuer") == issuer and entry.get("subject") == subject:
                return str(target)
    return None
