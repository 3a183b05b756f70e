"""Rule matching and first-match evaluation.

Deliberately plain: rules in document order, the first rule whose every present condition
matches decides, no match denies. Anything the engine cannot establish (no partner, so no bound
account or organization; no source IP or an unparsable one) counts against the caller: the
condition fails on an allow rule and *holds* on a deny rule. Uncertainty therefore never reaches
an allow — neither directly nor by slipping past a deny rule to a later allow.
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


def _source_matches(source_ip: str | None, networks: tuple[IPNetwork, ...]) -> bool | None:
    """Whether the source address is in ``networks``; ``None`` when there is no usable address."""
    if not source_ip:
        return None
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(source_ip)
    except ValueError:
        return None
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


def _in(value: str | None, allowed: frozenset[str] | None) -> bool | None:
    """``True``/``False`` for a known value, ``None`` when the value is unknown; absent matches."""
    if allowed is None:
        return True
    return None if value is None else value in allowed


def rule_matches(rule: Rule, request: AccessRequest) -> bool:
    """Whether every condition present on ``rule`` holds for ``request``.

    A condition that cannot be evaluated (``None``) counts against the caller: it fails an allow
    rule and holds for a deny rule.
    """
    if not _target_matches(rule, request):
        return False
    unknown = rule.effect == "deny"  # what a condition that cannot be evaluated counts as
    for outcome in (
        _in(request.partner, rule.partners),
        _in(request.partner, rule.group_members),
        _in(request.partner, rule.attribute_members),
        _in(request.account_id, rule.accounts),
        _in(request.org_id, rule.organization_ids),
    ):
        if not (unknown if outcome is None else outcome):
            return False
    if rule.principal_arns is not None and not any(
        p.matches(request.caller_arn) for p in rule.principal_arns
    ):
        return False
    if rule.source_cidrs is not None:
        inside = _source_matches(request.source_ip, rule.source_cidrs)
        if not (unknown if inside is None else inside):
            return False
    return rule.time_window is None or rule.time_window.contains(request.at)


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
