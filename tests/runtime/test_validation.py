"""The validation toolkit: validators, the one ConfigError, the error collector."""

from __future__ import annotations

import pytest
from kernel_access import validation
from kernel_access.validation import Collector, ConfigError, Issue, ValidationError, matching


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (validation.require_account_id, "123456789012"),
        (validation.require_org_id, "o-a1b2c3d4e5"),
        (validation.require_role_name, "kernel-reader"),
        (validation.require_partner_name, "payments"),
        (validation.require_external_id, "ka-acme-7f3c"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_identifier(check: object, good: str) -> None:
    # Python's `$` also matches before a final newline: the validators must match the whole value.
    assert check(good) == good  # type: ignore[operator]
    with pytest.raises(ValidationError):
        check(good + "\n")  # type: ignore[operator]


def test_collector_string_and_list_items_match_the_whole_value() -> None:
    c = Collector()
    assert c.string("123456789012\n", None, "account", regex=validation.ACCOUNT_ID_RE) is None
    item = matching(validation.ACCOUNT_ID_RE, "must be an account id")
    assert c.string_list(["123456789012\n"], None, "accounts", item) is None
    assert [issue.path for issue in c.issues] == ["account", "accounts[0]"]


def test_collector_reports_every_problem_with_its_path() -> None:
    c = Collector(empty_list_hint="omit it")
    assert c.mapping([], "r1", "codeartifact") is None
    c.unknown_fields({"colour": 1, "id": 2}, frozenset({"id"}), "r1", "")
    assert c.integer(True, None, "ttl", 1, 10) is None
    assert c.integer(11, None, "ttl", 1, 10) is None
    assert c.string_list([], None, "roles", matching(validation.ROLE_NAME_RE, "bad")) is None
    assert c.string_list(["a", 3, "a"], None, "x", matching(validation.ROLE_NAME_RE, "bad")) is None
    assert c.string_list(["a", "a"], None, "y", matching(validation.ROLE_NAME_RE, "bad"), unique=True) is None
    assert c.issues == [
        Issue("r1", "codeartifact", "must be an object, got array"),
        Issue("r1", "colour", "unknown field (allowed: id)"),
        Issue(None, "ttl", "must be an integer, got boolean"),
        Issue(None, "ttl", "must be between 1 and 10, got 11"),
        Issue(None, "roles", "must not be empty (omit it)"),
        Issue(None, "x[1]", "must be a string, got number"),
        Issue(None, "y", "entries must be unique"),
    ]


def test_config_error_names_the_field_and_the_partner() -> None:
    error = ConfigError("external_id", "is too short", partner="acme")
    assert str(error) == "partner 'acme': external_id: is too short"
    assert (error.field, error.partner, error.message) == ("external_id", "acme", "is too short")
    assert isinstance(error, ValidationError)

    class Labelled(ConfigError):
        SOURCE = "some config"

    assert str(Labelled("region", "is required")) == "some config: region: is required"


def test_vending_environment_errors_are_the_one_config_error() -> None:
    from kernel_access.vending.config import ConfigError as VendingConfigError
    from kernel_access.vending.config import VendingConfig
    from kernel_access_cdk.config import ConfigError as InfraConfigError

    assert VendingConfigError is ConfigError
    assert issubclass(InfraConfigError, ConfigError)
    with pytest.raises(ConfigError) as raised:
        VendingConfig.from_env({})
    assert raised.value.message == "is not set"
