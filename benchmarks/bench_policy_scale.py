"""Policy evaluation at organization scale: 5,000 partners and 2,000 rules against 5 rules.

The large policy is what an organization writes when most rules select partners by attribute or
group and some name partners directly: 2,000 rules over 20 target roles, 5,000 partners with an
environment, a tier and a business unit. Requests are spread over partners and roles and measured
on a warm container (each (role, partner) pair seen before, as a busy Lambda sees its callers).
Goal: at most 2x the cost of evaluating against a 5-rule policy, i.e. the work per request follows
the rules that can match it, not the size of the policy.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from kernel_access.policy import AccessRequest, Policy, parse_policy

from benchmarks.harness import Result, median_seconds

PARTNERS = 5_000
RULES = 2_000
ROLES = [f"kernel-role-{i:02d}" for i in range(20)]
ENVIRONMENTS = ["production", "staging", "development"]
TIERS = ["gold", "silver", "bronze"]
UNITS = [f"bu-{i}" for i in range(25)]
AT = datetime(2026, 11, 24, 10, tzinfo=UTC)


def _partners() -> dict[str, Any]:
    rng = random.Random(7)
    return {
        f"partner-{i:05d}": {
            "account_id": f"{200000000000 + i}",
            "in_organization": True,
            "organization_id": "o-a1b2c3d4e5",
            "attributes": {
                "environment": rng.choice(ENVIRONMENTS),
                "tier": rng.choice(TIERS),
                "business_unit": rng.choice(UNITS),
            },
        }
        for i in range(PARTNERS)
    }


def _large_document() -> dict[str, Any]:
    rng = random.Random(11)
    partners = _partners()
    names = sorted(partners)
    groups = {
        f"{env}-{tier}": {"environment": [env], "tier": [tier]} for env in ENVIRONMENTS for tier in TIERS
    }
    rules: list[dict[str, Any]] = []
    for i in range(RULES):
        kind = i % 4
        rule: dict[str, Any] = {
            "id": f"r{i}",
            "effect": "deny" if i % 10 == 0 else "allow",
            "roles": [rng.choice(ROLES)],
        }
        if kind == 0:
            rule["partners"] = rng.sample(names, 3)
        elif kind == 1:
            rule["partner_groups"] = [rng.choice(sorted(groups))]
        elif kind == 2:
            rule["partner_attributes"] = {"business_unit": [rng.choice(UNITS)]}
        else:
            rule["partner_attributes"] = {
                "environment": [rng.choice(ENVIRONMENTS)],
                "tier": rng.sample(TIERS, 2),
            }
        rules.append(rule)
    return {"version": "bench", "partners": partners, "groups": groups, "rules": rules}


def _small_document() -> dict[str, Any]:
    partners = dict(list(_partners().items())[:2])
    names = sorted(partners)
    rules = [
        {"id": "deny", "effect": "deny", "partners": [names[1]], "roles": [ROLES[1]]},
        {"id": "a", "effect": "allow", "partners": names, "roles": [ROLES[0]]},
        {"id": "b", "effect": "allow", "partners": [names[0]], "roles": [ROLES[1]]},
        {"id": "c", "effect": "allow", "partners": names, "roles": [ROLES[2]]},
        {"id": "d", "effect": "allow", "partners": names, "roles": ROLES},
    ]
    return {"version": "bench-small", "partners": partners, "rules": rules}


def _requests(policy: Policy, count: int) -> list[AccessRequest]:
    rng = random.Random(3)
    names = sorted(policy.partners)
    out = []
    for _ in range(count):
        name = rng.choice(names)
        out.append(
            AccessRequest(
                caller_arn=f"arn:aws:sts::111111111111:assumed-role/kernel-access/{name}.x",
                account_id=policy.partners[name].account_id,
                org_id="o-a1b2c3d4e5",
                source_ip="203.0.113.9",
                at=AT,
                partner=name,
                role=rng.choice(ROLES),
            )
        )
    return out


def _per_request(policy: Policy, requests: list[AccessRequest], *, warm: bool = True) -> float:
    for req in requests:  # warm: every pair seen once, as on a busy container
        policy.evaluate(req)

    def run() -> None:
        if not warm:
            policy.index._memo.clear()  # every (role, partner) pair seen for the first time
        for req in requests:
            policy.evaluate(req)

    return median_seconds(run, repeat=5) / len(requests)


def run() -> list[Result]:
    large = parse_policy(_large_document())
    small = parse_policy(_small_document())
    requests = _requests(large, 2_000)
    figure = _per_request(large, requests)
    cold = _per_request(large, requests, warm=False)
    baseline = _per_request(small, _requests(small, 2_000))
    return [
        Result(
            f"policy: evaluate, {PARTNERS} partners / {RULES} rules vs 5 rules (warm, per request)",
            figure * 1e6,
            baseline * 1e6,
            "us",
            "<= 2x",
        ),
        Result(
            "policy: same, first request of each (role, partner) pair (cold, per request)",
            cold * 1e6,
            baseline * 1e6,
            "us",
            "tens of us: one pass over the role's rules",
        ),
    ]
