"""Rule matching and first-match evaluation.

Deliberately plain: rules in document order, the first rule whose every present condition
matches decides, no match denies. Anything the engine cannot establish (no partner, no source
IP, an unparsable IP, a missing repository) makes the condition *not match*, so uncertainty can
only ever fall through to a later rule or to the default deny — never to an allow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from kernel_access.policy.model import (
    MAX_DURATION,
    MIN_DURATION,
    AccessRequest,
    Decision,
    IPNetwork,
    Rule,
)

NO_RULE_MATCHED = "no rule matched"


def _deny(reason: str, rule_id: str | None = None) -> Decision:
    return Decision(
        allowed=False,
        rule_id=rule_id,
        reason=reason,
        max_duration=0,
        session_policy=None,
        codeartifact_access=None,
        duration=None,
    )


def _source_matches(source_ip: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    if not source_ip:
        return False
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    # An IPv4 client seen through a dual-stack listener arrives as ::ffff:a.b.c.d: judge it as v4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _target_matches(rule: Rule, request: AccessRequest) -> bool:
    """What the request asks for (a role or a token) decides which rules can apply at all."""
    if rule.roles is not None and (request.role is None or request.role not in rule.roles):
        return False
    is_token_request = request.codeartifact_domain is not None
    condition = rule.codeartifact
    if condition is None:
        # An allow rule without ``codeartifact`` cannot say which access level to mint.
        return not (is_token_request and rule.effect == "allow")
    if not is_token_request or request.codeartifact_domain not in condition.domains:
        return False
    return condition.repositories is None or (
        request.codeartifact_repository is not None
        and request.codeartifact_repository in condition.repositories
    )


def _in(value: str | None, allowed: frozenset[str] | None) -> bool:
    """An absent condition matches anything; a present one never matches an unknown value."""
    return allowed is None or (value is not None and value in allowed)


def rule_matches(rule: Rule, request: AccessRequest) -> bool:
    """Whether every condition present on ``rule`` holds for ``request``."""
    return (
        _target_matches(rule, request)
        and _in(request.partner, rule.partners)
        and _in(request.account_id, rule.accounts)
        and _in(request.org_id, rule.organization_ids)
        and (rule.principal_arns is None or any(p.matches(request.caller_arn) for p in rule.principal_arns))
        and (rule.source_cidrs is None or _source_matches(request.source_ip, rule.source_cidrs))
        and (rule.time_window is None or rule.time_window.contains(request.at))
    )


def _decide(rule: Rule, request: AccessRequest) -> Decision:
    if rule.effect == "deny":
        description = f": {rule.description}" if rule.description else ""
        return _deny(f"denied by rule {rule.id!r}{description}", rule.id)
    if request.duration is not None and request.duration < MIN_DURATION:
        # The API validates durations first; this keeps evaluation total on its own.
        return _deny(
            f"requested duration {request.duration}s is below the minimum of {MIN_DURATION}s", rule.id
        )
    if request.duration is not None and request.duration > rule.max_duration:
        # Never clamp silently: the caller asked for more than the rule grants and must know.
        return _deny(
            f"requested duration {request.duration}s exceeds the maximum of {rule.max_duration}s "
            f"allowed by rule {rule.id!r}",
            rule.id,
        )
    duration = request.duration if request.duration is not None else min(MAX_DURATION, rule.max_duration)
    access = rule.codeartifact.access if rule.codeartifact is not None else None
    return Decision(
        allowed=True,
        rule_id=rule.id,
        reason=f"allowed by rule {rule.id!r}",
        max_duration=rule.max_duration,
        session_policy=rule.session_policy,
        codeartifact_access=access if request.codeartifact_domain is not None else None,
        duration=duration,
    )


def evaluate_rules(rules: Iterable[Rule], request: AccessRequest) -> Decision:
    """First match wins; no match denies with reason ``"no rule matched"``."""
    if (request.role is None) == (request.codeartifact_domain is None):
        return _deny("request must name exactly one of a role or a CodeArtifact domain")
    for rule in rules:
        if rule_matches(rule, request):
            return _decide(rule, request)
    return _deny(NO_RULE_MATCHED)
