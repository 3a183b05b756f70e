"""The shipped JSON Schemas: equal to what the parsers' field specs generate, valid draft 2020-12
documents with no outside reference, and faithful to the parsers (every document a parser accepts
validates; the structural errors a parser rejects the schema rejects too)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from kernel_access.cli.main import main as cli_main
from kernel_access.exchange import ExchangeConfigError, parse_exchange_config
from kernel_access.fields import JSON_SCHEMA_DIALECT
from kernel_access.policy import PolicyValidationError, parse_policy
from kernel_access.schemas import SCHEMA_FILES, DocumentKind, generate, render, shipped

from tests.runtime.exchange.conftest import example_config
from tests.runtime.exchange.test_properties import scenario
from tests.runtime.policy.test_evaluate import policies
from tests.runtime.policy.test_parser import example_document

KINDS: tuple[DocumentKind, ...] = tuple(SCHEMA_FILES)


def validator(kind: DocumentKind) -> Draft202012Validator:
    return Draft202012Validator(json.loads(shipped(kind)))


def schema_accepts(kind: DocumentKind, document: object) -> bool:
    return validator(kind).is_valid(document)


def parser_accepts(kind: DocumentKind, document: Any) -> bool:
    try:
        if kind == "policy":
            parse_policy(document)
        else:
            parse_exchange_config(document)
    except (PolicyValidationError, ExchangeConfigError):
        return False
    return True


def policy_with_groups() -> dict[str, Any]:
    document = example_document()
    document["partners"]["payments"]["attributes"] = {"environment": "production", "tier": "gold"}
    document["partners"]["acme-analytics"]["attributes"] = {"environment": "staging"}
    document["groups"] = {"production": {"environment": ["production"]}}
    document["rules"].append(
        {"id": "prod", "effect": "allow", "partner_groups": ["production"], "roles": ["kernel-reader"]}
    )
    document["rules"].append(
        {"id": "gold", "effect": "deny", "partner_attributes": {"tier": ["gold"]}, "roles": ["x"]}
    )
    return document


EXAMPLES: dict[DocumentKind, Callable[[], dict[str, Any]]] = {
    "policy": policy_with_groups,
    "exchange": example_config,
}


# --- (1) the shipped files are what the generator produces now -----------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_schema_is_what_the_parser_spec_generates(kind: DocumentKind) -> None:
    assert shipped(kind) == render(kind), (
        f"regenerate: kernel-access {kind} schema > runtime/kernel_access/schemas/{SCHEMA_FILES[kind]}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_cli_prints_the_schema(kind: DocumentKind, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([kind, "schema"]) == 0
    assert capsys.readouterr().out == shipped(kind)


def test_the_schema_follows_the_spec_tables() -> None:
    from kernel_access.exchange.config import TRUST_POLICY_SPEC
    from kernel_access.policy.parser import MAX_MANAGED_POLICIES, RULE_FIELDS

    rule = generate("policy")["properties"]["rules"]["items"]
    assert set(rule["properties"]) == RULE_FIELDS
    arns = rule["properties"]["session_policy"]["properties"]["managed_policy_arns"]
    assert arns["maxItems"] == MAX_MANAGED_POLICIES
    trust = generate("exchange")["properties"]["trust_policies"]["additionalProperties"]["items"]
    assert set(trust["properties"]) == TRUST_POLICY_SPEC.names


# --- (3) valid JSON Schema documents that reference nothing outside themselves --------------------


def _walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12_and_self_contained(kind: DocumentKind) -> None:
    schema = json.loads(shipped(kind))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    for path, node in _walk(schema):
        if isinstance(node, dict) and not path.endswith("/properties"):  # (not a field named "$schema")
            # No $ref/$id/$dynamicRef/$anchor: nothing to resolve, locally or remotely.
            assert not {key for key in node if key.startswith("$") and f"{path}/{key}" != "/$schema"}, path
        if isinstance(node, str) and path != "/$schema" and not path.endswith("/pattern"):
            assert not re.search(r"[a-z]+://\w", node), (path, node)  # no URL of any host
    for path, node in _walk(schema):
        if path.endswith("/pattern"):
            re.compile(str(node))  # (and Python's re reads what the parser uses)


# --- (2) faithful to the parsers ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_examples_are_accepted_by_both(kind: DocumentKind) -> None:
    document = EXAMPLES[kind]()
    assert parser_accepts(kind, document)
    assert schema_accepts(kind, document)
    # A "$schema" key for editors is accepted (and ignored) by both.
    with_schema = {"$schema": f"./{SCHEMA_FILES[kind]}", **document}
    assert parser_accepts(kind, with_schema)
    assert schema_accepts(kind, with_schema)


Mutation = Callable[[dict[str, Any]], None]

POLICY_STRUCTURAL_ERRORS: list[Any] = [
    pytest.param(lambda d: d.pop("version"), id="no-version"),
    pytest.param(lambda d: d.update(version="  "), id="blank-version"),
    pytest.param(lambda d: d.update(rules={}), id="rules-not-array"),
    pytest.param(lambda d: d.update(colour="red"), id="unknown-top-level"),
    pytest.param(lambda d: d["partners"].update(Payments=d["partners"]["payments"]), id="partner-name"),
    pytest.param(lambda d: d["partners"]["payments"].update(account_id="1234"), id="account-id"),
    pytest.param(lambda d: d["partners"]["payments"].update(organization_id=None), id="null-org-id"),
    pytest.param(lambda d: d["partners"]["payments"].pop("in_organization"), id="no-in-organization"),
    pytest.param(lambda d: d["partners"]["payments"].update(attributes={"Tier": "x"}), id="attribute-name"),
    pytest.param(
        lambda d: d["partners"]["payments"].update(attributes={f"a{i}": "x" for i in range(21)}),
        id="too-many-attributes",
    ),
    pytest.param(lambda d: d["groups"].update(production={}), id="empty-group"),
    pytest.param(lambda d: d["rules"][0].pop("id"), id="no-rule-id"),
    pytest.param(lambda d: d["rules"][0].update(id="-x"), id="rule-id"),
    pytest.param(lambda d: d["rules"][0].update(effect="permit"), id="effect"),
    pytest.param(lambda d: d["rules"][0].update(roles=[]), id="empty-list"),
    pytest.param(lambda d: d["rules"][0].update(roles="kernel-reader"), id="list-not-array"),
    pytest.param(lambda d: d["rules"][0].update(accounts=[222222222222]), id="account-not-string"),
    pytest.param(lambda d: d["rules"][0].update(max_duration=7200), id="max-duration"),
    pytest.param(lambda d: d["rules"][0].update(max_duration=True), id="max-duration-bool"),
    pytest.param(lambda d: d["rules"][0].update(description="x" * 1025), id="description-length"),
    pytest.param(lambda d: d["rules"][0].update(colour="red"), id="unknown-rule-field"),
    pytest.param(lambda d: d["rules"][0].update(codeartifact={"access": "read"}), id="no-domains"),
    pytest.param(
        lambda d: d["rules"][0].update(time_window={"days": ["mon"], "start": "7:00", "end": "19:00"}),
        id="time-window",
    ),
    pytest.param(lambda d: d["rules"][0].update(session_policy={}), id="empty-session-policy"),
    pytest.param(
        lambda d: d["rules"][0].update(
            session_policy={"managed_policy_arns": [f"arn:aws:iam::aws:policy/P{i}" for i in range(11)]}
        ),
        id="too-many-managed-policies",
    ),
]

EXCHANGE_STRUCTURAL_ERRORS: list[Any] = [
    pytest.param(lambda d: d.pop("version"), id="no-version"),
    pytest.param(lambda d: d.update(extra=1), id="unknown-top-level"),
    pytest.param(lambda d: d.update(issuers=[]), id="issuers-not-object"),
    pytest.param(lambda d: d["issuers"].update(Bad_Name=d["issuers"]["github"]), id="issuer-name"),
    pytest.param(lambda d: d["issuers"]["github"].update(issuer="http://x.example"), id="issuer-not-https"),
    pytest.param(lambda d: d["issuers"]["github"].update(issuer="https://x.example/?q=1"), id="issuer-query"),
    pytest.param(lambda d: d["issuers"]["github"].update(audiences=[]), id="no-audiences"),
    pytest.param(lambda d: d["issuers"]["github"].pop("max_permissions"), id="no-max-permissions"),
    pytest.param(lambda d: d["issuers"]["github"].update(max_token_age_seconds=10), id="token-age"),
    pytest.param(lambda d: d["trust_policies"]["deploy"][0].pop("issuer"), id="no-issuer"),
    pytest.param(
        lambda d: d["trust_policies"]["deploy"][0].update(subject="s", subject_pattern="s"),
        id="both-subjects",
    ),
    pytest.param(
        lambda d: d["trust_policies"]["deploy"][0].update(audience="a", audience_pattern="a"),
        id="both-audiences",
    ),
    pytest.param(lambda d: d["trust_policies"]["deploy"][0].update(token_ttl=7200), id="token-ttl"),
    pytest.param(lambda d: d["trust_policies"]["deploy"][0].update(permissions=[]), id="no-permissions"),
    pytest.param(
        lambda d: d["trust_policies"]["deploy"][0].update(claim_pattern={"bad claim": "x"}), id="claim-name"
    ),
    pytest.param(lambda d: d["trust_policies"].update(deploy=[]), id="empty-policy-list"),
    pytest.param(lambda d: d["targets"]["deploy"].update(type="lambda"), id="target-type"),
    pytest.param(lambda d: d["targets"]["deploy"].update(domain="kernel"), id="field-of-other-variant"),
    pytest.param(lambda d: d["targets"]["packages"].update(access="admin"), id="access"),
    pytest.param(lambda d: d["targets"]["packages"].update(domain_owner=None), id="null-domain-owner"),
]


@pytest.mark.parametrize("mutate", POLICY_STRUCTURAL_ERRORS)
def test_policy_structural_errors_are_rejected_by_both(mutate: Mutation) -> None:
    document = policy_with_groups()
    mutate(document)
    assert not parser_accepts("policy", document)
    assert not schema_accepts("policy", document)


@pytest.mark.parametrize("mutate", EXCHANGE_STRUCTURAL_ERRORS)
def test_exchange_structural_errors_are_rejected_by_both(mutate: Mutation) -> None:
    document = example_config()
    mutate(document)
    assert not parser_accepts("exchange", document)
    assert not schema_accepts("exchange", document)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=policies(st.sampled_from(["allow", "deny"])))
def test_random_policies_the_parser_accepts_validate(rules: list[dict[str, Any]]) -> None:
    document = example_document()
    document["rules"] = rules
    assert parser_accepts("policy", document)
    assert schema_accepts("policy", document), list(validator("policy").iter_errors(document))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenario())
def test_random_exchange_configs_the_parser_accepts_validate(case: tuple[dict[str, Any], ...]) -> None:
    config = case[0]
    if parser_accepts("exchange", config):
        assert schema_accepts("exchange", config), list(validator("exchange").iter_errors(config))


def _paths(node: object, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 100_000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(
        ["", " ", "x", "read", "publish", "allow", "deny", "mon", "07:00", "24:00", "Europe/London",
         "222222222222", "o-a1b2c3d4e5", "kernel", "kernel-reader", "payments", "production",
         "https://x.example", "arn:aws:iam::aws:policy/ReadOnlyAccess", "10.0.0.0/8", "s3:GetObject"]
    ),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "tier", "x"]), inner),
    max_leaves=4,
)


@st.composite
def mutated(draw: st.DrawFn, kind: DocumentKind) -> dict[str, Any]:
    """An example document with one to three random edits: a value replaced, a key dropped or added."""
    document = EXAMPLES[kind]()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            document.update({draw(st.sampled_from(["colour", "$schema"])): draw(VALUES)})
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.sampled_from(["colour", "tier", "x"]))] = draw(VALUES)
        else:
            parent[path[-1]] = draw(VALUES)
    return copy.deepcopy(document)


@pytest.mark.parametrize("kind", KINDS)
def test_whatever_the_parser_accepts_the_schema_accepts(kind: DocumentKind) -> None:
    """Random edits of a valid document: the schema never rejects a document the parser accepts
    (so every schema error is a real one), and the parser rejects every one the schema rejects."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(document=mutated(kind))
    def check(document: dict[str, Any]) -> None:
        if parser_accepts(kind, document):
            assert schema_accepts(kind, document), list(validator(kind).iter_errors(document))

    check()
