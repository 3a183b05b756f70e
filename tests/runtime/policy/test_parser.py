"""Parsing: the example from cdk.json parses, every error is collected with rule id and field,
and no JSON input makes the parser raise anything but PolicyValidationError."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.policy import Policy, PolicyIssue, PolicyValidationError, parse_policy

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def _config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]["kernel-access"]
    return config


def example_document() -> dict[str, Any]:
    """The policy as the construct writes it: cdk.json's policy plus the derived partners map."""
    config = _config()
    return {
        "version": config["policy"]["version"],
        "partners": {
            p["name"]: {"account_id": p["account_id"], "in_organization": p["in_organization"]}
            for p in config["partners"]
        },
        "rules": copy.deepcopy(config["policy"]["rules"]),
    }


def issues_of(document: Any) -> list[PolicyIssue]:
    with pytest.raises(PolicyValidationError) as info:
        parse_policy(document)
    return info.value.errors


def fields(document: Any) -> set[tuple[str | None, str]]:
    return {(issue.rule_id, issue.field) for issue in issues_of(document)}


def with_rule(**rule: Any) -> dict[str, Any]:
    document = example_document()
    document["rules"] = [{"id": "r", "effect": "allow", **rule}]
    return document


def test_example_from_cdk_json_parses() -> None:
    policy = parse_policy(example_document())
    assert isinstance(policy, Policy)
    assert policy.version == "2026-11-23.1"
    assert [rule.id for rule in policy.rules] == [
        "deny-external-deployer",
        "payments-deployer-business-hours",
        "partners-read",
        "payments-publish",
        "partners-codeartifact-read",
    ]
    assert policy.partners["acme-analytics"].in_organization is False
    business_hours = policy.rules[1]
    assert business_hours.max_duration == 1800
    assert business_hours.time_window is not None
    assert business_hours.time_window.timezone.key == "Europe/London"
    assert policy.rules[3].codeartifact is not None
    assert policy.rules[3].codeartifact.access == "publish"


def test_documented_example_parses() -> None:
    """The full example of docs/policy.md stays a valid policy."""
    from tests.docs import doc_section

    text = doc_section("policy.md", "Document format")
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(block)
    assert len(policy.rules) == 6
    assert policy.rules[2].session_policy is not None
    assert policy.rules[2].session_policy.inline_json is not None


def test_json_text_and_bytes_parse_like_the_mapping() -> None:
    text = json.dumps(example_document())
    assert parse_policy(text) == parse_policy(text.encode()) == parse_policy(example_document())


def test_every_error_is_reported_at_once() -> None:
    document = example_document()
    document["rules"] = [
        {"id": "a", "effect": "maybe", "max_duration": 10, "colour": "red"},
        {"id": "b", "effect": "allow", "source_cidrs": ["10.0.0.0/33"], "roles": [""]},
        {"id": "a", "effect": "deny"},
    ]
    found = fields(document)
    assert found >= {
        ("a", "effect"),
        ("a", "max_duration"),
        ("a", "colour"),
        ("b", "source_cidrs[0]"),
        ("b", "roles[0]"),
        ("a", "id"),  # the duplicate
    }
    message = str(PolicyValidationError(issues_of(document)))
    assert "rule 'a': colour: unknown field" in message
    assert "rule 'b': source_cidrs[0]" in message


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (
            {"roles": ["kernel-reader"], "codeartifact": {"domains": ["kernel"], "access": "read"}},
            "codeartifact",
        ),
        ({"partners": ["nobody"]}, "partners[0]"),
        ({"partners": []}, "partners"),
        ({"partners": "payments"}, "partners"),
        ({"accounts": ["12345"]}, "accounts[0]"),
        ({"organization_ids": ["org-1"]}, "organization_ids[0]"),
        ({"principal_arns": [""]}, "principal_arns[0]"),
        ({"principal_arns": [7]}, "principal_arns[0]"),
        ({"roles": ["bad role"]}, "roles[0]"),
        ({"source_cidrs": ["10.0.0.1/8"]}, "source_cidrs[0]"),
        ({"source_cidrs": ["2001:db8::/129"]}, "source_cidrs[0]"),
        ({"source_cidrs": ["nonsense"]}, "source_cidrs[0]"),
        ({"max_duration": 899}, "max_duration"),
        ({"max_duration": 3601}, "max_duration"),
        ({"max_duration": True}, "max_duration"),
        ({"max_duration": 1800.0}, "max_duration"),
        ({"codeartifact": {"domains": ["kernel"]}}, "codeartifact.access"),
        ({"codeartifact": {"domains": ["kernel"], "access": "write"}}, "codeartifact.access"),
        ({"codeartifact": {"access": "read"}}, "codeartifact.domains"),
        ({"codeartifact": {"domains": ["Kernel"], "access": "read"}}, "codeartifact.domains[0]"),
        (
            {"codeartifact": {"domains": ["kernel"], "repositories": [], "access": "read"}},
            "codeartifact.repositories",
        ),
        ({"codeartifact": {"domains": ["kernel"], "access": "read", "x": 1}}, "codeartifact.x"),
        (
            {"time_window": {"days": ["mon"], "start": "07:00", "end": "19:00", "timezone": "Europe/Lundun"}},
            "time_window.timezone",
        ),
        (
            {"time_window": {"days": ["mon"], "start": "07:00", "end": "19:00", "timezone": "../etc/passwd"}},
            "time_window.timezone",
        ),
        (
            {"time_window": {"days": ["mon"], "start": "7:00", "end": "19:00", "timezone": "UTC"}},
            "time_window.start",
        ),
        (
            {"time_window": {"days": ["mon"], "start": "07:00", "end": "19:60", "timezone": "UTC"}},
            "time_window.end",
        ),
        (
            {"time_window": {"days": ["mon"], "start": "24:00", "end": "19:00", "timezone": "UTC"}},
            "time_window.start",
        ),
        (
            {"time_window": {"days": ["mon"], "start": "07:00", "end": "07:00", "timezone": "UTC"}},
            "time_window.end",
        ),
        (
            {"time_window": {"days": ["monday"], "start": "07:00", "end": "19:00", "timezone": "UTC"}},
            "time_window.days[0]",
        ),
        ({"time_window": {"start": "07:00", "end": "19:00", "timezone": "UTC"}}, "time_window.days"),
        ({"time_window": {"days": ["mon"], "start": "07:00", "end": "19:00"}}, "time_window.timezone"),
        ({"session_policy": {}}, "session_policy"),
        ({"session_policy": {"inline": "{}"}}, "session_policy.inline"),
        ({"session_policy": {"inline": {"Statement": ["x" * 2040]}}}, "session_policy.inline"),
        (
            {"session_policy": {"managed_policy_arns": ["arn:aws:iam::aws:role/Admin"]}},
            "session_policy.managed_policy_arns[0]",
        ),
        (
            {"session_policy": {"managed_policy_arns": ["arn:aws:iam::12345:policy/x"]}},
            "session_policy.managed_policy_arns[0]",
        ),
        (
            {"session_policy": {"managed_policy_arns": [f"arn:aws:iam::aws:policy/P{i}" for i in range(11)]}},
            "session_policy.managed_policy_arns",
        ),
        ({"description": 5}, "description"),
    ],
)
def test_each_invalid_field_is_named(rule: dict[str, Any], field: str) -> None:
    assert ("r", field) in fields(with_rule(**rule))


def test_valid_edge_values_are_accepted() -> None:
    inline = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    policy = parse_policy(
        with_rule(
            roles=["kernel-reader"],
            max_duration=900,
            source_cidrs=["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"],
            principal_arns=["arn:aws:sts::*:assumed-role/kernel-access/*"],
            time_window={"days": ["sat"], "start": "22:00", "end": "24:00", "timezone": "America/New_York"},
            session_policy={
                "inline": inline,
                "managed_policy_arns": [
                    "arn:aws:iam::aws:policy/ReadOnlyAccess",
                    "arn:aws-us-gov:iam::123456789012:policy/team/Narrow",
                ],
            },
        )
    )
    rule = policy.rules[0]
    assert rule.session_policy is not None
    assert rule.session_policy.inline_json == json.dumps(inline, separators=(",", ":"))
    assert rule.time_window is not None
    assert rule.time_window.end_minute == 1440


def test_inline_session_policy_limit_counts_the_compact_form() -> None:
    # 2048 characters compact is fine even though the pretty form would be longer.
    padding = "x" * (2048 - len(json.dumps({"Sid": ""}, separators=(",", ":"))))
    parse_policy(with_rule(session_policy={"inline": {"Sid": padding}}))
    assert ("r", "session_policy.inline") in fields(
        with_rule(session_policy={"inline": {"Sid": padding + "x"}})
    )


def test_document_level_errors() -> None:
    assert fields({"rules": []}) == {(None, "version"), (None, "partners")}
    assert (None, "extra") in fields({"version": "1", "partners": {}, "rules": [], "extra": 1})
    assert (None, "rules") in fields({"version": "1", "partners": {}, "rules": {}})
    assert (None, "document") in fields([1, 2])
    assert (None, "document") in fields("{not json")
    assert (None, "document") in fields('{"version": "1", "version": "2", "partners": {}, "rules": []}')
    assert (None, "partners.Bad_Name") in fields({"version": "1", "partners": {"Bad_Name": {}}, "rules": []})
    assert (None, "partners.p1.account_id") in fields(
        {"version": "1", "partners": {"p1": {"account_id": "1", "in_organization": True}}, "rules": []}
    )
    assert (None, "partners.p1.region") in fields(
        {
            "version": "1",
            "partners": {"p1": {"account_id": "222222222222", "in_organization": True, "region": "x"}},
            "rules": [],
        }
    )


def test_absurd_nesting_is_an_error_not_a_crash() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(5000):
        cursor["a"] = {}
        cursor = cursor["a"]
    assert ("r", "session_policy.inline") in fields(with_rule(session_policy={"inline": deep}))
    assert (None, "document") in fields("[" * 100_000)


def test_rule_without_usable_id_is_reported_by_position() -> None:
    document = example_document()
    document["rules"].append({"effect": "allow"})
    document["rules"].append("not a rule")
    found = fields(document)
    assert (None, "rules[5].id") in found
    assert (None, "rules[6]") in found


def test_empty_rule_list_is_valid_and_denies_everything() -> None:
    policy = parse_policy({"version": "1", "partners": {}, "rules": []})
    assert policy.rules == ()


def test_deny_rules_need_no_access_level() -> None:
    document = example_document()
    document["rules"].insert(0, {"id": "no-ca", "effect": "deny", "codeartifact": {"domains": ["kernel"]}})
    assert parse_policy(document).rules[0].codeartifact is not None


# --- property tests ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)

RULE_KEYS = [
    "id",
    "effect",
    "partners",
    "accounts",
    "organization_ids",
    "principal_arns",
    "roles",
    "codeartifact",
    "source_cidrs",
    "time_window",
    "max_duration",
    "session_policy",
    "description",
]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    outcome: Policy | list[PolicyIssue]
    try:
        outcome = parse_policy(value if isinstance(value, dict) else json.dumps(value))
    except PolicyValidationError as exc:
        outcome = exc.errors
    assert isinstance(outcome, Policy) or (outcome and all(isinstance(i, PolicyIssue) for i in outcome))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    index=st.integers(min_value=0, max_value=4),
    key=st.sampled_from(RULE_KEYS),
    replacement=json_values,
)
def test_mutated_example_never_crashes(index: int, key: str, replacement: Any) -> None:
    """Near-valid documents reach deep into the parser, unlike random JSON."""
    document = example_document()
    document["rules"][index][key] = replacement
    errors: list[PolicyIssue] = []
    try:
        parse_policy(json.dumps(document))
    except PolicyValidationError as exc:
        errors = exc.errors
    assert all(issue.field for issue in errors)


def test_partner_organization_is_parsed_and_bound_to_in_organization_partners() -> None:
    document = example_document()
    document["partners"]["payments"]["organization_id"] = "o-a1b2c3d4e5"
    policy = parse_policy(document)
    assert policy.partners["payments"].organization_id == "o-a1b2c3d4e5"
    assert policy.partners["acme-analytics"].organization_id is None


@pytest.mark.parametrize(
    ("partner", "value", "message"),
    [
        ("acme-analytics", "o-a1b2c3d4e5", "only in-organization partners have an organization"),
        ("payments", "not-an-org", "organization"),
        ("payments", 42, "organization"),
    ],
)
def test_partner_organization_errors_name_the_field(partner: str, value: object, message: str) -> None:
    document = example_document()
    document["partners"][partner]["organization_id"] = value
    with pytest.raises(PolicyValidationError) as raised:
        parse_policy(document)
    fields = [issue.field for issue in raised.value.errors]
    assert fields == [f"partners.{partner}.organization_id"]
    assert message in str(raised.value)
