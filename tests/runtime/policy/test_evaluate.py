"""Evaluation: first match wins, default deny, every condition's edges (patterns with / and :,
time windows across midnight and DST, v4/v6 CIDRs, CodeArtifact targets, durations), checked
against hand-picked cases and, with hypothesis, against an independent reference evaluator."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.policy import (
    NO_RULE_MATCHED,
    AccessRequest,
    Decision,
    KernelIdentity,
    Policy,
    parse_policy,
)

from tests.runtime.policy.test_parser import example_document

KERNEL = "111111111111"
PAYMENTS_ARN = f"arn:aws:sts::{KERNEL}:assumed-role/kernel-access/222222222222.ci-1"
ACME_ARN = f"arn:aws:sts::{KERNEL}:assumed-role/kernel-access-external-acme-analytics/333333333333.job"
MONDAY_10_UTC = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


def request(**overrides: Any) -> AccessRequest:
    fields: dict[str, Any] = {
        "caller_arn": PAYMENTS_ARN,
        "account_id": "222222222222",
        "org_id": "o-a1b2c3d4e5",
        "source_ip": "198.51.100.7",
        "at": MONDAY_10_UTC,
        "partner": "payments",
        "role": "kernel-reader",
    }
    fields.update(overrides)
    return AccessRequest(**fields)


def policy_with(*rules: dict[str, Any]) -> Policy:
    document = example_document()
    document["rules"] = list(rules)
    return parse_policy(document)


@pytest.fixture(scope="module")
def example() -> Policy:
    return parse_policy(example_document())


# --- the example policy: first match wins, default deny ------------------------------------------


def test_deny_rule_before_allow_wins(example: Policy) -> None:
    decision = example.evaluate(
        request(caller_arn=ACME_ARN, partner="acme-analytics", role="kernel-deployer")
    )
    assert not decision.allowed
    assert decision.rule_id == "deny-external-deployer"
    assert "External partners never deploy" in decision.reason
    assert decision.max_duration == 0
    assert decision.session_policy is None


def test_business_hours_rule_allows_with_its_maximum(example: Policy) -> None:
    decision = example.evaluate(request(role="kernel-deployer"))
    assert decision == Decision(
        allowed=True,
        rule_id="payments-deployer-business-hours",
        reason="allowed by rule 'payments-deployer-business-hours'",
        max_duration=1800,
        session_policy=None,
        codeartifact_access=None,
        duration=1800,
    )


def test_outside_business_hours_falls_through_to_default_deny(example: Policy) -> None:
    decision = example.evaluate(request(role="kernel-deployer", at=MONDAY_10_UTC.replace(hour=20)))
    assert not decision.allowed
    assert decision.rule_id is None
    assert decision.reason == NO_RULE_MATCHED


def test_reader_rule_carries_its_session_policy(example: Policy) -> None:
    decision = example.evaluate(request(caller_arn=ACME_ARN, partner="acme-analytics"))
    assert decision.allowed
    assert decision.rule_id == "partners-read"
    assert decision.session_policy is not None
    # cdk.json narrows reader sessions with an inline policy, not an AWS-managed one.
    assert decision.session_policy.managed_policy_arns == ()
    assert decision.session_policy.inline_json is not None
    assert "cloudformation:DescribeStacks" in decision.session_policy.inline_json


def test_unknown_partner_and_unknown_role_are_denied(example: Policy) -> None:
    assert not example.evaluate(request(partner=None)).allowed
    assert not example.evaluate(request(partner="someone-else")).allowed
    assert example.evaluate(request(role="kernel-admin")).reason == NO_RULE_MATCHED


def test_rule_order_decides_not_specificity() -> None:
    broad_deny = {"id": "deny-all", "effect": "deny"}
    narrow_allow = {"id": "allow-reader", "effect": "allow", "roles": ["kernel-reader"]}
    assert policy_with(broad_deny, narrow_allow).evaluate(request()).rule_id == "deny-all"
    assert policy_with(narrow_allow, broad_deny).evaluate(request()).rule_id == "allow-reader"


def test_empty_policy_denies() -> None:
    assert policy_with().evaluate(request()).reason == NO_RULE_MATCHED


def test_request_must_name_exactly_one_target(example: Policy) -> None:
    assert not example.evaluate(request(role=None)).allowed
    assert not example.evaluate(request(codeartifact_domain="kernel")).allowed


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        request(at=datetime(2026, 11, 23, 10, 0))


# --- durations --------------------------------------------------------------------------------


def test_duration_above_rule_maximum_is_denied_not_clamped(example: Policy) -> None:
    decision = example.evaluate(request(role="kernel-deployer", duration=3600))
    assert not decision.allowed
    assert decision.rule_id == "payments-deployer-business-hours"
    assert "3600s exceeds the maximum of 1800s" in decision.reason


def test_duration_below_the_sts_minimum_is_denied(example: Policy) -> None:
    decision = example.evaluate(request(duration=899))
    assert not decision.allowed
    assert "below the minimum of 900s" in decision.reason


@pytest.mark.parametrize(("requested", "granted"), [(None, 1800), (900, 900), (1800, 1800)])
def test_duration_within_maximum(example: Policy, requested: int | None, granted: int) -> None:
    decision = example.evaluate(request(role="kernel-deployer", duration=requested))
    assert decision.allowed
    assert decision.duration == granted
    assert decision.max_duration == 1800


# --- CodeArtifact -----------------------------------------------------------------------------


def test_publish_needs_the_listed_repository(example: Policy) -> None:
    with_repo = example.evaluate(
        request(role=None, codeartifact_domain="kernel", codeartifact_repository="internal")
    )
    assert (with_repo.rule_id, with_repo.codeartifact_access) == ("payments-publish", "publish")
    without_repo = example.evaluate(request(role=None, codeartifact_domain="kernel"))
    assert (without_repo.rule_id, without_repo.codeartifact_access) == ("partners-codeartifact-read", "read")


def test_external_partner_only_ever_reads(example: Policy) -> None:
    decision = example.evaluate(
        request(
            caller_arn=ACME_ARN,
            partner="acme-analytics",
            role=None,
            codeartifact_domain="kernel",
            codeartifact_repository="internal",
        )
    )
    assert (decision.allowed, decision.codeartifact_access) == (True, "read")


def test_unknown_domain_is_denied(example: Policy) -> None:
    assert example.evaluate(request(role=None, codeartifact_domain="other")).reason == NO_RULE_MATCHED


def test_allow_rule_without_codeartifact_never_grants_tokens() -> None:
    policy = policy_with({"id": "any-credential", "effect": "allow"})
    assert policy.evaluate(request()).allowed
    assert not policy.evaluate(request(role=None, codeartifact_domain="kernel")).allowed


def test_deny_rule_without_target_denies_tokens_too() -> None:
    policy = policy_with(
        {"id": "deny-acme", "effect": "deny", "partners": ["acme-analytics"]},
        {"id": "read", "effect": "allow", "codeartifact": {"domains": ["kernel"], "access": "read"}},
    )
    token = request(role=None, codeartifact_domain="kernel")
    assert policy.evaluate(token).allowed
    assert (
        policy.evaluate(request(role=None, codeartifact_domain="kernel", partner="acme-analytics")).rule_id
        == "deny-acme"
    )


def test_codeartifact_rule_never_matches_credential_requests() -> None:
    policy = policy_with(
        {"id": "ca", "effect": "allow", "codeartifact": {"domains": ["kernel"], "access": "read"}}
    )
    assert not policy.evaluate(request(role="kernel-reader")).allowed


# --- principal patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "arn", "matches"),
    [
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/*", PAYMENTS_ARN, True),
        ("arn:aws:sts::*:assumed-role/kernel-access/222222222222.*", PAYMENTS_ARN, True),
        # '*' never crosses '/' ...
        ("arn:aws:sts::111111111111:assumed-role/*", PAYMENTS_ARN, False),
        ("arn:aws:sts::111111111111:assumed-role/*/*", PAYMENTS_ARN, True),
        # ... nor ':'
        ("arn:aws:sts::*", PAYMENTS_ARN, False),
        ("arn:*:sts::111111111111:assumed-role/kernel-access/222222222222.ci-1", PAYMENTS_ARN, True),
        ("arn:*::111111111111:assumed-role/kernel-access/222222222222.ci-1", PAYMENTS_ARN, False),
        # anchored at both ends
        ("assumed-role/kernel-access/*", PAYMENTS_ARN, False),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/payments", PAYMENTS_ARN, False),
        # '?', '.', '[' and '+' are literals
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/payments?ci-1", PAYMENTS_ARN, False),
        (
            "arn:aws:sts::111111111111:assumed-role/kernel-access/payments?ci-1",
            "arn:aws:sts::111111111111:assumed-role/kernel-access/payments?ci-1",
            True,
        ),
        (
            "arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-.",
            "arn:aws:sts::111111111111:assumed-role/kernel-access/paymentsXci-1",
            False,
        ),
        ("arn:aws:iam::111111111111:role/[a-z]*", "arn:aws:iam::111111111111:role/a", False),
        ("arn:aws:iam::111111111111:role/a+", "arn:aws:iam::111111111111:role/aa", False),
        # case-sensitive, and '*' may match nothing
        ("arn:aws:sts::111111111111:assumed-role/Kernel-access/*", PAYMENTS_ARN, False),
        ("arn:aws:iam::111111111111:role/x*", "arn:aws:iam::111111111111:role/x", True),
    ],
)
def test_principal_patterns(pattern: str, arn: str, matches: bool) -> None:
    policy = policy_with({"id": "p", "effect": "allow", "principal_arns": [pattern]})
    assert policy.evaluate(request(caller_arn=arn)).allowed is matches


# --- source CIDRs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_ip", "matches"),
    [
        ("10.1.2.3", True),
        ("10.255.255.255", True),
        ("11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("::ffff:10.0.0.9", True),  # IPv4-mapped IPv6 is judged as IPv4
        (None, False),
        ("", False),
        ("not-an-ip", False),
        ("10.1.2.3/8", False),
    ],
)
def test_source_cidrs(source_ip: str | None, matches: bool) -> None:
    policy = policy_with(
        {"id": "net", "effect": "allow", "source_cidrs": ["10.0.0.0/8", "2001:db8::/32"]},
    )
    assert policy.evaluate(request(source_ip=source_ip)).allowed is matches


@pytest.mark.parametrize("source_ip", [None, "", "not-an-ip"])
def test_unknown_source_ip_trips_a_deny_cidr_and_fails_an_allow(source_ip: str | None) -> None:
    """An address the engine cannot read counts against the caller: it must not slip past a deny
    rule to a later allow (it used to), and it never satisfies an allow rule's CIDR."""
    policy = policy_with(
        {"id": "block", "effect": "deny", "source_cidrs": ["198.51.100.0/24"]},
        {"id": "rest", "effect": "allow"},
    )
    assert policy.evaluate(request(source_ip="192.0.2.1")).rule_id == "rest"
    assert policy.evaluate(request(source_ip="198.51.100.9")).rule_id == "block"
    assert policy.evaluate(request(source_ip=source_ip)).rule_id == "block"
    allow_only = policy_with({"id": "net", "effect": "allow", "source_cidrs": ["0.0.0.0/0", "::/0"]})
    assert not allow_only.evaluate(request(source_ip=source_ip)).allowed


@pytest.mark.parametrize(
    ("field", "value", "request_field"),
    [
        ("partners", ["payments"], "partner"),
        ("accounts", ["222222222222"], "account_id"),
        ("organization_ids", ["o-a1b2c3d4e5"], "org_id"),
    ],
)
def test_unknown_identity_facts_trip_deny_and_fail_allow(
    field: str, value: list[str], request_field: str
) -> None:
    deny_first = policy_with(
        {"id": "deny", "effect": "deny", field: value}, {"id": "rest", "effect": "allow"}
    )
    assert deny_first.evaluate(request(**{request_field: None})).rule_id == "deny"
    allow_only = policy_with({"id": "allow", "effect": "allow", field: value})
    assert not allow_only.evaluate(request(**{request_field: None})).allowed


# --- time windows -----------------------------------------------------------------------------


def window_policy(days: list[str], start: str, end: str, zone: str) -> Policy:
    return policy_with(
        {
            "id": "w",
            "effect": "allow",
            "time_window": {"days": days, "start": start, "end": end, "timezone": zone},
        }
    )


def allowed_at(policy: Policy, when: datetime) -> bool:
    return policy.evaluate(request(at=when)).allowed


def test_window_bounds_are_start_inclusive_end_exclusive() -> None:
    policy = window_policy(["mon"], "07:00", "19:00", "UTC")
    assert allowed_at(policy, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert allowed_at(policy, datetime(2026, 11, 23, 18, 59, 59, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 11, 23, 19, 0, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 11, 23, 6, 59, 59, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 11, 24, 10, 0, tzinfo=UTC))  # Tuesday


def test_window_until_end_of_day() -> None:
    policy = window_policy(["mon"], "22:00", "24:00", "UTC")
    assert allowed_at(policy, datetime(2026, 11, 23, 23, 59, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 11, 24, 0, 0, tzinfo=UTC))


def test_across_midnight_belongs_to_the_start_day() -> None:
    policy = window_policy(["fri"], "22:00", "06:00", "UTC")
    assert allowed_at(policy, datetime(2026, 11, 27, 22, 0, tzinfo=UTC))  # Friday night
    assert allowed_at(policy, datetime(2026, 11, 28, 3, 0, tzinfo=UTC))  # Saturday early: Friday's window
    assert not allowed_at(policy, datetime(2026, 11, 28, 6, 0, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 11, 27, 3, 0, tzinfo=UTC))  # Friday early: Thursday's window
    assert not allowed_at(policy, datetime(2026, 11, 28, 23, 0, tzinfo=UTC))  # Saturday night
    assert not allowed_at(policy, datetime(2026, 11, 27, 12, 0, tzinfo=UTC))


def test_local_day_not_utc_day() -> None:
    # Monday 23:30 in New York is Tuesday 04:30 UTC: the local day counts.
    policy = window_policy(["mon"], "23:00", "24:00", "America/New_York")
    assert allowed_at(policy, datetime(2026, 11, 24, 4, 30, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 11, 23, 23, 30, tzinfo=UTC))


def test_london_business_hours_follow_summer_time() -> None:
    policy = window_policy(["mon", "tue", "wed", "thu", "fri"], "07:00", "19:00", "Europe/London")
    # 06:30 UTC is 07:30 BST in July (inside) but 06:30 GMT in January (outside).
    assert allowed_at(policy, datetime(2026, 7, 6, 6, 30, tzinfo=UTC))
    assert not allowed_at(policy, datetime(2026, 1, 5, 6, 30, tzinfo=UTC))
    # 18:30 UTC is 19:30 BST (outside) in July, 18:30 GMT (inside) in January.
    assert not allowed_at(policy, datetime(2026, 7, 6, 18, 30, tzinfo=UTC))
    assert allowed_at(policy, datetime(2026, 1, 5, 18, 30, tzinfo=UTC))


def test_london_spring_forward_day() -> None:
    # 2026-03-29: at 01:00 UTC London jumps from 01:00 GMT to 02:00 BST.
    policy = window_policy(["sun"], "00:30", "02:30", "Europe/London")
    assert allowed_at(policy, datetime(2026, 3, 29, 0, 45, tzinfo=UTC))  # 00:45 GMT
    assert allowed_at(policy, datetime(2026, 3, 29, 1, 15, tzinfo=UTC))  # 02:15 BST
    assert not allowed_at(policy, datetime(2026, 3, 29, 1, 45, tzinfo=UTC))  # 02:45 BST


def test_london_fall_back_across_midnight() -> None:
    # 2026-10-25: at 01:00 UTC London goes from 02:00 BST back to 01:00 GMT.
    policy = window_policy(["sat"], "23:00", "01:30", "Europe/London")
    assert allowed_at(policy, datetime(2026, 10, 24, 22, 0, tzinfo=UTC))  # sat 23:00 BST
    assert allowed_at(policy, datetime(2026, 10, 25, 0, 15, tzinfo=UTC))  # sun 01:15 BST
    assert allowed_at(policy, datetime(2026, 10, 25, 1, 15, tzinfo=UTC))  # sun 01:15 GMT (again)
    assert not allowed_at(policy, datetime(2026, 10, 25, 1, 45, tzinfo=UTC))  # sun 01:45 GMT


def test_new_york_repeated_hour_matches_twice() -> None:
    # 2026-11-01: at 06:00 UTC New York goes from 02:00 EDT back to 01:00 EST.
    policy = window_policy(["sun"], "01:00", "01:30", "America/New_York")
    assert allowed_at(policy, datetime(2026, 11, 1, 5, 15, tzinfo=UTC))  # 01:15 EDT
    assert allowed_at(policy, datetime(2026, 11, 1, 6, 15, tzinfo=UTC))  # 01:15 EST
    assert not allowed_at(policy, datetime(2026, 11, 1, 6, 45, tzinfo=UTC))  # 01:45 EST


def test_new_york_spring_forward_across_midnight() -> None:
    # 2026-03-08: at 07:00 UTC New York jumps from 02:00 EST to 03:00 EDT; 02:xx never happens.
    policy = window_policy(["sat"], "23:00", "03:00", "America/New_York")
    assert allowed_at(policy, datetime(2026, 3, 8, 4, 0, tzinfo=UTC))  # sat 23:00 EST
    assert allowed_at(policy, datetime(2026, 3, 8, 6, 59, tzinfo=UTC))  # sun 01:59 EST
    assert not allowed_at(policy, datetime(2026, 3, 8, 7, 0, tzinfo=UTC))  # sun 03:00 EDT
    # The window lasted 3 real hours that night, not 4.
    inside = [
        datetime(2026, 3, 8, 4, 0, tzinfo=UTC) + timedelta(minutes=m)
        for m in range(0, 300)
        if allowed_at(policy, datetime(2026, 3, 8, 4, 0, tzinfo=UTC) + timedelta(minutes=m))
    ]
    assert len(inside) == 180


def test_window_in_offset_zone_input() -> None:
    # The instant matters, not the zone it is written in.
    policy = window_policy(["mon"], "07:00", "19:00", "Europe/London")
    from zoneinfo import ZoneInfo

    tokyo = datetime(2026, 11, 23, 19, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 10:00 UTC = 10:00 GMT
    assert allowed_at(policy, tokyo)


# --- partner_for --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "partner"),
    [
        (PAYMENTS_ARN, "payments"),
        (ACME_ARN, "acme-analytics"),
        # another partition or account than the kernel's own: nobody
        ("arn:aws-cn:sts::111111111111:assumed-role/kernel-access/222222222222.x", None),
        ("arn:aws-us-gov:sts::111111111111:assumed-role/kernel-access/222222222222.x", None),
        ("arn:aws:sts::999999999999:assumed-role/kernel-access/222222222222.x", None),
        # the wrong role for the partner's account: someone else wearing the name
        ("arn:aws:sts::111111111111:assumed-role/kernel-access-external-acme-analytics/222222222222.x", None),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/333333333333.x", None),
        # no separator, unknown account, partner names where the account belongs, other shapes
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222", None),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/.222222222222", None),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/444444444444.x", None),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/payments.x", None),
        ("arn:aws:sts::111111111111:assumed-role/admin/222222222222.x", None),
        ("arn:aws:iam::111111111111:role/kernel-access", None),
        ("arn:aws:iam::111111111111:user/222222222222.x", None),
        ("arn:aws:sts::11111111111:assumed-role/kernel-access/222222222222.x", None),
        ("arn:aws-iso:sts::111111111111:assumed-role/kernel-access/222222222222.x", None),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.x/extra", None),
        ("arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.x\n", None),
        ("", None),
    ],
)
def test_partner_for(example: Policy, arn: str, partner: str | None) -> None:
    assert example.partner_for(arn, KernelIdentity(account_id=KERNEL, partition="aws")) == partner


def test_partner_for_uses_the_configured_role_names(example: Policy) -> None:
    arn = "arn:aws:sts::111111111111:assumed-role/ka-prod/222222222222.x"
    prod = KernelIdentity(account_id=KERNEL, partition="aws", in_org_role="ka-prod", external_role="ka-x")
    assert example.partner_for(arn, prod) == "payments"
    assert example.partner_for(arn, KernelIdentity(account_id=KERNEL, partition="aws")) is None
    external = "arn:aws:sts::111111111111:assumed-role/ka-x-acme-analytics/333333333333.x"
    assert example.partner_for(external, prod) == "acme-analytics"


# --- property tests: default deny and first-match ordering against a reference ----------------

PARTNERS = ["payments", "acme-analytics"]
ACCOUNTS = ["222222222222", "333333333333"]
ROLES = ["kernel-reader", "kernel-deployer"]
DOMAINS = ["kernel", "other"]
REPOS = ["internal", "public"]
PATTERNS = [
    "arn:aws:sts::111111111111:assumed-role/kernel-access/*",
    "arn:aws:sts::*:assumed-role/*/222222222222.*",
    "arn:aws:sts::111111111111:assumed-role/kernel-access-external-acme-analytics/333333333333.ci",
]
CIDRS = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"]
CALLERS = [
    PAYMENTS_ARN,
    ACME_ARN,
    "arn:aws:sts::111111111111:assumed-role/kernel-access-external-acme-analytics/333333333333.ci",
    "arn:aws:sts::444444444444:assumed-role/other/222222222222.z",
]
IPS = [None, "10.1.2.3", "192.0.2.9", "2001:db8::1", "203.0.113.1", "bogus", "::ffff:10.0.0.1"]


def subsets(pool: list[str]) -> st.SearchStrategy[list[str]]:
    return st.sets(st.sampled_from(pool), min_size=1).map(sorted)


CONDITIONS: dict[str, st.SearchStrategy[Any]] = {
    "partners": subsets(PARTNERS),
    "accounts": subsets(ACCOUNTS),
    "principal_arns": subsets(PATTERNS),
    "source_cidrs": subsets(CIDRS),
    "max_duration": st.sampled_from([900, 1800, 3600]),
}


def codeartifact_conditions(access_required: bool) -> st.SearchStrategy[dict[str, Any]]:
    access = st.sampled_from(["read", "publish"])
    return st.fixed_dictionaries(
        {"domains": subsets(DOMAINS), **({"access": access} if access_required else {})},
        optional={"repositories": subsets(REPOS), **({} if access_required else {"access": access})},
    )


def rule_dicts(effect: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    def for_effect(chosen: str) -> st.SearchStrategy[dict[str, Any]]:
        target = st.one_of(
            st.just({}),
            st.fixed_dictionaries({"roles": subsets(ROLES)}),
            st.fixed_dictionaries({"codeartifact": codeartifact_conditions(chosen == "allow")}),
        )
        base = st.fixed_dictionaries({"effect": st.just(chosen)}, optional=CONDITIONS)
        return st.tuples(base, target).map(lambda parts: {**parts[0], **parts[1]})

    return effect.flatmap(for_effect)


def policies(effect: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(rule_dicts(effect), max_size=6).map(
        lambda rules: [{"id": f"r{i}", **rule} for i, rule in enumerate(rules)]
    )


@st.composite
def requests(draw: st.DrawFn) -> AccessRequest:
    token = draw(st.booleans())
    return AccessRequest(
        caller_arn=draw(st.sampled_from(CALLERS)),
        account_id=draw(st.sampled_from([None, *ACCOUNTS])),
        org_id=None,
        source_ip=draw(st.sampled_from(IPS)),
        at=MONDAY_10_UTC,
        partner=draw(st.sampled_from([None, *PARTNERS])),
        role=None if token else draw(st.sampled_from(ROLES)),
        codeartifact_domain=draw(st.sampled_from(DOMAINS)) if token else None,
        codeartifact_repository=draw(st.sampled_from([None, *REPOS])) if token else None,
        duration=draw(st.sampled_from([None, 900, 1800, 3600])),
    )


def reference(rules: list[dict[str, Any]], req: AccessRequest) -> tuple[bool, str | None, str | None]:
    """Independent restatement of the documented semantics: (allowed, rule id, access)."""

    def ip_in(cidrs: list[str], unknown: bool) -> bool:
        try:
            address = ipaddress.ip_address(req.source_ip or "")
        except ValueError:
            return unknown
        if address.version == 6 and address.ipv4_mapped:  # type: ignore[union-attr]
            address = address.ipv4_mapped  # type: ignore[union-attr]
        return any(address in ipaddress.ip_network(c) for c in cidrs)

    def arn_matches(pattern: str) -> bool:
        regex = "".join("[^/:]*" if ch == "*" else re.escape(ch) for ch in pattern)
        return re.fullmatch(regex, req.caller_arn) is not None

    for rule in rules:
        if "roles" in rule and req.role not in rule["roles"]:
            continue
        if "codeartifact" in rule:
            condition = rule["codeartifact"]
            if req.codeartifact_domain not in condition["domains"]:
                continue
            if "repositories" in condition and req.codeartifact_repository not in condition["repositories"]:
                continue
        elif req.codeartifact_domain is not None and rule["effect"] == "allow":
            continue
        # An unknown fact (None) counts against the caller: it holds for deny, fails for allow.
        unknown = rule["effect"] == "deny"
        if "partners" in rule and not (unknown if req.partner is None else req.partner in rule["partners"]):
            continue
        if "accounts" in rule and not (
            unknown if req.account_id is None else req.account_id in rule["accounts"]
        ):
            continue
        if "principal_arns" in rule and not any(arn_matches(p) for p in rule["principal_arns"]):
            continue
        if "source_cidrs" in rule and not ip_in(rule["source_cidrs"], unknown):
            continue
        if rule["effect"] == "deny":
            return False, rule["id"], None
        if req.duration is not None and req.duration > rule.get("max_duration", 3600):
            return False, rule["id"], None
        access = rule["codeartifact"]["access"] if req.codeartifact_domain is not None else None
        return True, rule["id"], access
    return False, None, None


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rules=policies(st.just("deny")), req=requests())
def test_policy_without_allow_rules_never_allows(rules: list[dict[str, Any]], req: AccessRequest) -> None:
    decision = policy_with(*rules).evaluate(req)
    assert not decision.allowed
    assert decision.session_policy is None
    assert decision.codeartifact_access is None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rules=policies(st.sampled_from(["allow", "deny"])), req=requests())
def test_first_match_agrees_with_reference(rules: list[dict[str, Any]], req: AccessRequest) -> None:
    decision = policy_with(*rules).evaluate(req)
    assert (decision.allowed, decision.rule_id, decision.codeartifact_access) == reference(rules, req)
    if decision.allowed:
        assert decision.duration is not None
        assert 900 <= decision.duration <= decision.max_duration <= 3600
