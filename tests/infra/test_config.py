"""Config errors fail synth with a message naming the partner (where there is one) and the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kernel_access_cdk.config import ConfigError, load_config

Mutation = Callable[[dict[str, Any]], None]


def _partner(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in config["partners"] if p["name"] == name)


def test_example_config_loads(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context["kernel-access"])
    assert [p.name for p in config.in_org_partners] == ["payments"]
    assert [p.name for p in config.external_partners] == ["acme-analytics"]
    assert config.partner("acme-analytics").external_id == "ka-acme-7f3c9e2a4b6d48e1a0c5d9b2e8f1a3c7"
    # Each partner is bound to its account, and an in-organization one to the organization: the
    # facts the Lambda compares `accounts`/`organization_ids` rule conditions with.
    assert config.policy_document["partners"]["payments"] == {
        "account_id": "222222222222",
        "in_organization": True,
        "organization_id": "o-a1b2c3d4e5",
    }
    assert config.policy_document["partners"]["acme-analytics"] == {
        "account_id": "333333333333",
        "in_organization": False,
    }
    assert [r.name for r in config.target_roles] == ["kernel-reader", "kernel-deployer"]


@pytest.mark.parametrize(
    ("mutate", "partner", "field"),
    [
        pytest.param(
            lambda c: _partner(c, "payments").update(account_id="12345"),
            "payments",
            "account_id",
            id="short-account",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(account_id="12345678901a"),
            "payments",
            "account_id",
            id="non-digit-account",
        ),
        pytest.param(
            lambda c: _partner(c, "acme-analytics").update(external_id="x"),
            "acme-analytics",
            "external_id",
            id="external-id-too-short",
        ),
        pytest.param(
            lambda c: _partner(c, "acme-analytics").update(external_id="has space"),
            "acme-analytics",
            "external_id",
            id="external-id-bad-char",
        ),
        pytest.param(
            lambda c: _partner(c, "acme-analytics").update(external_id="a" * 1225),
            "acme-analytics",
            "external_id",
            id="external-id-too-long",
        ),
        pytest.param(
            lambda c: _partner(c, "acme-analytics").pop("external_id"),
            "acme-analytics",
            "external_id",
            id="external-without-id",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(external_id="ka-payments-1234"),
            "payments",
            "external_id",
            id="in-org-with-external-id",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(in_organization="yes"),
            "payments",
            "in_organization",
            id="in-org-not-bool",
        ),
        pytest.param(
            lambda c: c["partners"].append(dict(_partner(c, "payments"), account_id="444444444444")),
            "payments",
            "name",
            id="duplicate-partner",
        ),
        pytest.param(
            lambda c: c["partners"].append(
                {
                    "name": "globex",
                    "account_id": "555555555555",
                    "in_organization": False,
                    "external_id": "ka-acme-7f3c9e2a4b6d48e1a0c5d9b2e8f1a3c7",
                }
            ),
            "globex",
            "external_id",
            id="same-external-id-twice",
        ),
        pytest.param(
            lambda c: _partner(c, "payments").update(colour="blue"),
            "payments",
            "colour",
            id="unknown-partner-field",
        ),
        pytest.param(
            lambda c: c["policy"]["rules"][0].update(partners=["nobody"]),
            "nobody",
            "policy.rules[deny-external-deployer].partners",
            id="unknown-partner-in-policy",
        ),
    ],
)
def test_partner_errors_name_partner_and_field(
    context_copy: dict[str, Any], mutate: Mutation, partner: str, field: str
) -> None:
    config = context_copy["kernel-access"]
    mutate(config)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.partner == partner
    assert raised.value.field == field
    assert f"partner {partner!r}" in str(raised.value)
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda c: c.update(organization_id="o-short"), "organization_id", id="org-id"),
        pytest.param(lambda c: c.update(organization_id="O-A1B2C3D4E5"), "organization_id", id="org-id-case"),
        pytest.param(
            lambda c: c.pop("organization_id"), "organization_id", id="in-org-partner-without-org-id"
        ),
        pytest.param(lambda c: c.update(kernel_account="1111"), "kernel_account", id="kernel-account"),
        pytest.param(
            lambda c: c["partners"][0].update(name="Bad Name"), "partners[0].name", id="partner-name"
        ),
        pytest.param(
            lambda c: c["policy"]["rules"][1].update(roles=["kernel-admin"]),
            "policy.rules[payments-deployer-business-hours].roles",
            id="unknown-role",
        ),
        pytest.param(lambda c: c.update(log_retention_days=42), "log_retention_days", id="retention"),
        pytest.param(
            lambda c: c["codeartifact"].update(upstreams=["maven"]),
            "codeartifact.upstreams[0]",
            id="upstream",
        ),
        pytest.param(
            lambda c: c["codeartifact"].update(domain="kernel-"), "codeartifact.domain", id="domain-hyphen"
        ),
        pytest.param(
            lambda c: c["codeartifact"].update(repository="-x"), "codeartifact.repository", id="repository"
        ),
        pytest.param(
            lambda c: c["target_roles"].append(dict(c["target_roles"][0])),
            "target_roles",
            id="duplicate-role",
        ),
        pytest.param(lambda c: c.update(surprise=1), "surprise", id="unknown-top-level"),
        pytest.param(
            lambda c: c.update(vending_api_url="http://plain"), "vending_api_url", id="url-not-https"
        ),
    ],
)
def test_field_errors_name_the_field(context_copy: dict[str, Any], mutate: Mutation, field: str) -> None:
    config = context_copy["kernel-access"]
    mutate(config)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.field == field
    assert field in str(raised.value)


def test_in_org_partner_without_org_id_names_the_partner(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    del config["organization_id"]
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.partner == "payments"
    assert raised.value.field == "organization_id"


def test_external_partners_only_need_no_org_id(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    del config["organization_id"]
    del config["codeartifact"]
    # (Without a registry the exchange can have no CodeArtifact target.)
    del config["exchange"]["targets"]["packages"], config["exchange"]["trust_policies"]["packages"]
    config["partners"] = [p for p in config["partners"] if not p["in_organization"]]
    for rule in config["policy"]["rules"]:
        rule["partners"] = [p for p in rule["partners"] if p != "payments"]
    config["policy"]["rules"] = [r for r in config["policy"]["rules"] if r["partners"]]
    loaded = load_config(config)
    assert loaded.organization_id is None
    assert loaded.codeartifact is None
    with pytest.raises(ConfigError) as raised:
        load_config({**config, "codeartifact": {"domain": "kernel"}})
    assert raised.value.field == "codeartifact"


def test_policy_is_validated_by_the_runtime_parser(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    config["policy"]["rules"][2]["max_duration"] = 7200  # role chaining caps sessions at 3600 s
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.field.startswith("policy")
    assert "max_duration" in str(raised.value)


def test_policy_unknown_rule_field_is_rejected(context_copy: dict[str, Any]) -> None:
    config = context_copy["kernel-access"]
    config["policy"]["rules"][0]["colour"] = "red"
    with pytest.raises(ConfigError, match="colour"):
        load_config(config)


def test_config_is_frozen(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context["kernel-access"])
    with pytest.raises(AttributeError):
        config.kernel_account = "999999999999"  # type: ignore[misc]


# --- the example service is opt-in ----------------------------------------------------------------


def test_example_service_is_off_unless_configured(cdk_context: dict[str, Any]) -> None:
    raw = dict(cdk_context["kernel-access"])
    assert "example_service" not in raw  # cdk.json deploys no example code
    assert load_config(raw).example_service is False
    assert load_config({**raw, "example_service": True}).example_service is True


@pytest.mark.parametrize("value", ["true", 1, None, {}])
def test_example_service_must_be_a_boolean(cdk_context: dict[str, Any], value: object) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**cdk_context["kernel-access"], "example_service": value})
    assert error.value.field == "example_service"
    assert "must be true or false" in str(error.value)


# --- partner attributes and policy groups ---------------------------------------------------------


def _with_attributes(config: dict[str, Any]) -> dict[str, Any]:
    """cdk.json's example with attributes on both partners, a group and attribute/group rules."""
    _partner(config, "payments")["attributes"] = {"environment": "production", "tier": "gold"}
    _partner(config, "acme-analytics")["attributes"] = {"environment": "staging"}
    config["policy"]["groups"] = {"production": {"environment": ["production"]}}
    config["policy"]["rules"] = [
        {
            "id": "staging-never-deploys",
            "effect": "deny",
            "partner_attributes": {"environment": ["staging"]},
            "roles": ["kernel-deployer"],
        },
        {
            "id": "production-deploys",
            "effect": "allow",
            "partner_groups": ["production"],
            "roles": ["kernel-deployer"],
        },
        {"id": "everyone-reads", "effect": "allow", "roles": ["kernel-reader"]},
        {"id": "everyone-deploys", "effect": "allow", "roles": ["kernel-deployer"]},
    ]
    return config


def test_attribute_rules_reach_a_document_the_runtime_accepts_and_decides_with(
    context_copy: dict[str, Any],
) -> None:
    from kernel_access.policy import parse_policy

    from tests.runtime.policy.test_evaluate import ACME_ARN, request

    config = load_config(_with_attributes(context_copy["kernel-access"]))
    assert config.partner("payments").attributes == (("environment", "production"), ("tier", "gold"))
    document = config.policy_document
    assert document["partners"]["payments"]["attributes"] == {"environment": "production", "tier": "gold"}
    assert document["groups"] == {"production": {"environment": ["production"]}}
    policy = parse_policy(config.policy_json)  # exactly the text the Lambda loads
    deploy = {"role": "kernel-deployer"}
    assert policy.evaluate(request(partner="payments", **deploy)).rule_id == "production-deploys"
    acme = {"caller_arn": ACME_ARN, "partner": "acme-analytics", "account_id": "333333333333", "org_id": None}
    assert policy.evaluate(request(**acme, **deploy)).rule_id == "staging-never-deploys"
    assert not policy.evaluate(request(**acme, **deploy)).allowed
    assert policy.evaluate(request(**acme, role="kernel-reader")).rule_id == "everyone-reads"
    # A caller that is no partner cannot be placed outside the staging selection: the deny applies.
    assert policy.evaluate(request(partner=None, **deploy)).rule_id == "staging-never-deploys"


def test_partners_without_attributes_keep_the_document_unchanged(cdk_context: dict[str, Any]) -> None:
    document = load_config(cdk_context["kernel-access"]).policy_document
    assert "groups" not in document
    assert all("attributes" not in entry for entry in document["partners"].values())


@pytest.mark.parametrize(
    ("attributes", "field", "fragment"),
    [
        pytest.param({"Tier": "gold"}, "attributes.Tier", "attribute names are", id="name-case"),
        pytest.param({"tier": ""}, "attributes.tier", "printable", id="empty-value"),
        pytest.param({"tier": 3}, "attributes.tier", "printable", id="not-a-string"),
        pytest.param({"tier": "g\nold"}, "attributes.tier", "printable", id="control-character"),
        pytest.param({f"a{i}": "x" for i in range(21)}, "attributes", "at most 20", id="too-many"),
        pytest.param(["tier"], "attributes", "must be an object", id="not-an-object"),
    ],
)
def test_partner_attribute_errors_name_partner_and_field(
    context_copy: dict[str, Any], attributes: object, field: str, fragment: str
) -> None:
    config = _with_attributes(context_copy["kernel-access"])
    _partner(config, "payments")["attributes"] = attributes
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.partner == "payments"
    assert raised.value.field == field
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        pytest.param(
            lambda p: p["rules"][0].update(partner_attributes={"colour": ["red"]}),
            "policy.rules[staging-never-deploys].partner_attributes.colour",
            "unknown attribute 'colour'",
            id="rule-unknown-attribute",
        ),
        pytest.param(
            lambda p: p["rules"][1].update(partner_groups=["ghosts"]),
            "policy.rules[production-deploys].partner_groups[0]",
            "unknown group 'ghosts'",
            id="rule-unknown-group",
        ),
        pytest.param(
            lambda p: p["groups"].update(gold={"tier": ["gold"], "region": ["eu"]}),
            "policy.groups.gold.region",
            "unknown attribute 'region'",
            id="group-unknown-attribute",
        ),
        pytest.param(
            lambda p: p["groups"].update(Gold={"tier": ["gold"]}),
            "policy.groups.Gold",
            "group names follow partner names",
            id="group-name",
        ),
        pytest.param(
            lambda p: p["rules"][0].update(partner_attributes={}),
            "policy.rules[staging-never-deploys].partner_attributes",
            "at least one attribute",
            id="empty-selector",
        ),
        pytest.param(
            lambda p: p.update(partners={}),
            "policy.partners",
            "unknown field",
            id="partners-come-from-the-list",
        ),
    ],
)
def test_policy_group_and_attribute_errors_name_rule_and_field(
    context_copy: dict[str, Any], mutate: Callable[[dict[str, Any]], None], field: str, fragment: str
) -> None:
    config = _with_attributes(context_copy["kernel-access"])
    mutate(config["policy"])
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert raised.value.field == field
    assert raised.value.partner is None
    assert fragment in str(raised.value)
