"""Partner attributes and groups (rules that do not list partners by name), and the rule index
(evaluation that touches only the rules a request can match, with first-match kept exactly)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.policy import Policy, PolicyValidationError, parse_policy
from kernel_access.policy.evaluate import evaluate_rules

from tests.runtime.policy.test_evaluate import CONDITIONS, request, requests, rule_dicts
from tests.runtime.policy.test_parser import example_document


def document_with(rules: list[dict[str, Any]], groups: dict[str, Any] | None = None) -> dict[str, Any]:
    document = example_document()
    document["partners"]["payments"]["attributes"] = {"environment": "production", "tier": "gold"}
    document["partners"]["acme-analytics"]["attributes"] = {"environment": "staging"}
    if groups is not None:
        document["groups"] = groups
    document["rules"] = rules
    return document


def test_partner_attributes_select_partners() -> None:
    policy = parse_policy(
        document_with(
            [
                {
                    "id": "prod-read",
                    "effect": "allow",
                    "partner_attributes": {"environment": ["production"]},
                    "roles": ["kernel-reader"],
                }
            ]
        )
    )
    assert policy.evaluate(request(partner="payments")).rule_id == "prod-read"
    assert not policy.evaluate(request(partner="acme-analytics")).allowed
    assert not policy.evaluate(request(partner=None)).allowed


def test_a_partner_without_the_attribute_is_not_selected() -> None:
    policy = parse_policy(
        document_with([{"id": "gold", "effect": "allow", "partner_attributes": {"tier": ["gold", "silver"]}}])
    )
    assert policy.evaluate(request(partner="payments")).allowed
    assert not policy.evaluate(request(partner="acme-analytics")).allowed  # has no tier


def test_named_groups_and_unknown_partner_trips_a_group_deny() -> None:
    policy = parse_policy(
        document_with(
            [
                {
                    "id": "no-staging-deploy",
                    "effect": "deny",
                    "partner_groups": ["staging"],
                    "roles": ["kernel-deployer"],
                },
                {"id": "everyone", "effect": "allow", "roles": ["kernel-deployer", "kernel-reader"]},
            ],
            groups={"staging": {"environment": ["staging"]}, "prod": {"environment": ["production"]}},
        )
    )
    assert (
        policy.evaluate(request(partner="acme-analytics", role="kernel-deployer")).rule_id
        == "no-staging-deploy"
    )
    assert policy.evaluate(request(partner="payments", role="kernel-deployer")).rule_id == "everyone"
    # A caller that is no partner cannot be placed outside the group: the deny applies.
    assert policy.evaluate(request(partner=None, role="kernel-deployer")).rule_id == "no-staging-deploy"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["rules"][0].update(partner_groups=["nope"]), "partner_groups[0]"),
        (lambda d: d["rules"][0].update(partner_attributes={"colour": ["red"]}), "partner_attributes.colour"),
        (lambda d: d["rules"][0].update(partner_attributes={}), "partner_attributes"),
        (lambda d: d.update(groups={"prod": {"colour": ["red"]}}), "groups.prod.colour"),
        (lambda d: d.update(groups={"Bad Name": {"environment": ["x"]}}), "groups.Bad Name"),
        (
            lambda d: d["partners"]["payments"]["attributes"].update({"Bad": "x"}),
            "partners.payments.attributes.Bad",
        ),
        (
            lambda d: d["partners"]["payments"]["attributes"].update(tier=7),
            "partners.payments.attributes.tier",
        ),
        (
            lambda d: d["partners"]["payments"].update(attributes={f"a{i}": "x" for i in range(21)}),
            "partners.payments.attributes",
        ),
    ],
)
def test_unknown_attributes_and_groups_are_named(mutate: Any, field: str) -> None:
    document = document_with(
        [{"id": "r", "effect": "allow"}], groups={"prod": {"environment": ["production"]}}
    )
    mutate(document)
    with pytest.raises(PolicyValidationError) as raised:
        parse_policy(document)
    assert field in [issue.field for issue in raised.value.errors]


def test_rules_with_one_group_share_one_partner_set() -> None:
    rules = [
        {"id": f"r{i}", "effect": "allow", "partner_groups": ["prod"], "roles": ["kernel-reader"]}
        for i in range(50)
    ]
    policy = parse_policy(document_with(rules, groups={"prod": {"environment": ["production"]}}))
    assert len({id(rule.group_members) for rule in policy.rules}) == 1


# --- the index keeps first-match semantics exactly ---------------------------------------------

GROUPED_CONDITIONS: dict[str, st.SearchStrategy[Any]] = {
    **CONDITIONS,
    "partner_groups": st.sets(st.sampled_from(["prod", "staging"]), min_size=1).map(sorted),
    "partner_attributes": st.sampled_from([{"environment": ["production"]}, {"tier": ["gold"]}]),
}


def grouped_rules() -> st.SearchStrategy[list[dict[str, Any]]]:
    def extra(rule: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {}, optional={k: v for k, v in GROUPED_CONDITIONS.items() if k.startswith("partner_")}
        ).map(lambda more: {**rule, **more})

    return st.lists(rule_dicts(st.sampled_from(["allow", "deny"])).flatmap(extra), max_size=10).map(
        lambda rules: [{"id": f"r{i}", **rule} for i, rule in enumerate(rules)]
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rules=grouped_rules(), reqs=st.lists(requests(), min_size=1, max_size=5))
def test_indexed_evaluation_equals_the_plain_ordered_scan(
    rules: list[dict[str, Any]], reqs: list[Any]
) -> None:
    policy = parse_policy(
        document_with(
            copy.deepcopy(rules),
            groups={"prod": {"environment": ["production"]}, "staging": {"environment": ["staging"]}},
        )
    )
    for req in reqs * 2:  # twice: the second answer comes from the memo
        assert policy.evaluate(req) == evaluate_rules(policy.rules, req)


def test_index_touches_only_rules_for_the_request() -> None:
    rules = [
        {"id": f"other-{i}", "effect": "allow", "partners": ["acme-analytics"], "roles": ["kernel-deployer"]}
        for i in range(200)
    ]
    rules.append({"id": "mine", "effect": "allow", "partners": ["payments"], "roles": ["kernel-reader"]})
    policy: Policy = parse_policy(document_with(rules))
    req = request(partner="payments", role="kernel-reader")
    assert [rule.id for rule in policy.index.candidates(req)] == ["mine"]
    assert policy.evaluate(req).rule_id == "mine"


def test_documented_groups_example_parses_and_decides() -> None:
    """The attributes-and-groups example of docs/policy.md stays valid and means what it says."""
    from tests.docs import doc_section

    text = doc_section("policy.md", "Evaluation")
    block = text.split("### Partner attributes and groups", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    policy = parse_policy(block)
    assert (
        policy.evaluate(request(partner="acme-analytics", role="kernel-deployer")).rule_id
        == "staging-never-deploys"
    )
    assert policy.evaluate(request(partner="payments", role="kernel-reader")).rule_id == "production-reads"
    assert not policy.evaluate(request(partner="acme-analytics", role="kernel-reader")).allowed
