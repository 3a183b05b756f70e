"""The exchange configuration parser: a valid document, and every error reported at once."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kernel_access.exchange import ExchangeConfigError, parse_exchange_config
from kernel_access.exchange.config import AwsRoleTarget, CodeArtifactTarget

from tests.runtime.exchange.conftest import DEPLOY_ROLE, GITHUB, example_config


def errors_of(document: Any) -> list[str]:
    with pytest.raises(ExchangeConfigError) as info:
        parse_exchange_config(document)
    assert isinstance(info.value, ValueError)
    return [str(issue) for issue in info.value.errors]


def test_example_parses_from_mapping_and_json() -> None:
    config = parse_exchange_config(example_config())
    assert parse_exchange_config(json.dumps(example_config())) == config
    assert config.version == "2026-11-23.1"
    assert config.issuers["github"].issuer == GITHUB
    assert config.issuers["gitlab"].max_token_age_seconds == 600  # default
    assert isinstance(config.targets["deploy"], AwsRoleTarget)
    assert isinstance(config.targets["packages"], CodeArtifactTarget)
    assert [p.name for p in config.trust_policies["deploy"]] == ["main-branch", "any-branch-read"]
    assert config.trust_policies["deploy"][1].token_ttl == 900  # default
    # Only targets some trust policy reaches need IAM permissions.
    assert config.role_arns() == (DEPLOY_ROLE,)
    assert config.codeartifact_levels() == ("read", "publish")


def test_every_error_is_reported_with_its_path() -> None:
    document = example_config()
    document["issuers"]["github"]["issuer"] = "http://token.actions.githubusercontent.com"
    document["issuers"]["github"]["audiences"] = []
    document["issuers"]["github"]["required_claims"]["x"] = "("
    document["issuers"]["gitlab"]["max_permissions"] = ["*"]
    document["issuers"]["Bad_Name"] = {}
    policy = document["trust_policies"]["deploy"][0]
    policy["subject"] = "repo:acme/app:ref:refs/heads/main"  # both subject and subject_pattern
    policy["subject_patern"] = "typo"
    policy["token_ttl"] = 7200
    policy["permissions"] = ["s3:GetObject", "*", "s3:Get?bject", "read"]
    document["trust_policies"]["deploy"][1]["name"] = "main-branch"  # duplicate
    document["trust_policies"]["ghost"] = [
        {"name": "x", "issuer": GITHUB, "subject": "s", "permissions": ["read"]}
    ]
    document["trust_policies"]["packages"][0]["issuer"] = GITHUB  # both issuer and issuer_pattern
    document["trust_policies"]["packages"][1]["permissions"] = ["s3:GetObject"]
    document["targets"]["deploy2"] = {"type": "aws_role", "role_arn": "arn:aws:iam::123:role/x"}
    document["targets"]["weird"] = {"type": "lambda"}
    document["extra"] = 1
    errors = errors_of(document)
    expected_fragments = [
        "issuers.github.issuer: must be an https:// URL",
        "issuers.github.audiences: must not be empty",
        "issuers.github.required_claims.x: invalid regular expression",
        "issuers.gitlab.max_permissions[0]: must be an IAM action pattern",
        "issuers.Bad_Name: issuer names must match",
        "trust_policies.deploy[0].subject: give exactly one of 'subject' and 'subject_pattern'",
        "trust_policies.deploy[0].subject_patern: unknown field",
        "trust_policies.deploy[0].token_ttl: must be between 900 and 3600",
        "trust_policies.deploy[0].permissions[1]: aws_role targets take IAM action patterns",
        "trust_policies.deploy[0].permissions[2]: aws_role targets take IAM action patterns",
        "trust_policies.deploy[0].permissions[3]: aws_role targets take IAM action patterns",
        "trust_policies.ghost: no target named 'ghost'",
        "trust_policies.packages[0].issuer: give exactly one of 'issuer' and 'issuer_pattern'",
        "trust_policies.packages[1].permissions[0]: codeartifact targets take 'read' or 'publish'",
        "targets.deploy2.role_arn: must match",
        "targets.weird.type: must be 'aws_role' or 'codeartifact'",
        "extra: unknown field",
    ]
    for fragment in expected_fragments:
        assert any(fragment in error for error in errors), (fragment, errors)


def test_duplicate_policy_names_are_reported() -> None:
    document = example_config()
    document["trust_policies"]["deploy"][1]["name"] = "main-branch"
    assert any("duplicate trust policy name 'main-branch'" in e for e in errors_of(document))


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d["trust_policies"]["deploy"][0].pop("issuer"),
        lambda d: d["trust_policies"]["deploy"][0].pop("subject_pattern"),
        lambda d: d["trust_policies"]["deploy"][0].update(issuer="https://"),
        lambda d: d["trust_policies"]["deploy"][0].update(issuer="https://x.example/?q=1"),
        lambda d: d["trust_policies"]["deploy"][0].update(audience_pattern=".*"),  # both audience forms
        lambda d: d["trust_policies"]["deploy"][0].update(permissions=[]),
        lambda d: d["trust_policies"]["deploy"][0].update(token_ttl=True),
        lambda d: d["trust_policies"]["deploy"][0].update(claim_pattern={"ref": 5}),
        lambda d: d["trust_policies"]["deploy"][0].update(claim_pattern={"bad claim": "x"}),
        lambda d: d["trust_policies"]["packages"][0].update(permissions=["publish", "publish"]),
        lambda d: d["issuers"]["github"].pop("max_permissions"),
        lambda d: d["issuers"]["github"].update(max_token_age_seconds=10),
        lambda d: d["targets"]["packages"].update(access="admin"),
        lambda d: d["targets"]["packages"].update(domain_owner="12"),
        lambda d: d.pop("version"),
        lambda d: d.update(issuers=[]),
    ],
)
def test_invalid_fields_are_rejected(mutation: Any) -> None:
    document = copy.deepcopy(example_config())
    mutation(document)
    assert errors_of(document)


def test_publish_policy_on_a_read_only_target_is_rejected() -> None:
    document = example_config()
    document["targets"]["packages"]["access"] = "read"
    assert any("is read-only" in e for e in errors_of(document))


def test_session_policy_size_is_checked_at_parse_time() -> None:
    document = example_config()
    document["trust_policies"]["deploy"][0]["permissions"] = [
        f"s3:GetObjectVersion{i:03d}x" for i in range(100)
    ]
    assert any("exceeds 2048 characters" in e for e in errors_of(document))


def test_not_json_and_not_an_object() -> None:
    assert "not valid JSON" in errors_of("{")[0]
    assert "must be an object" in errors_of("[]")[0]


def test_empty_configuration_is_valid_but_trusts_nobody() -> None:
    config = parse_exchange_config({"version": "1"})
    assert config.issuers == {}
    assert config.role_arns() == ()


def test_lint_support_for_policy_lint() -> None:
    from kernel_access.exchange.lint import is_exchange_document, lint_exchange

    assert is_exchange_document(example_config())
    assert is_exchange_document(json.dumps(example_config()))
    assert not is_exchange_document({"version": "1", "partners": {}, "rules": []})
    assert not is_exchange_document("not json")
    good = lint_exchange(example_config())
    assert good.valid
    assert "2 issuer(s), 3 target(s), 5 trust polic(ies)" in good.text("x.json")
    broken = example_config()
    broken["issuers"]["github"]["issuer"] = "http://x"
    bad = lint_exchange(broken)
    assert not bad.valid
    assert bad.errors[0]["path"] == "issuers.github.issuer"
    assert bad.text("x.json").endswith("1 error(s)")


def test_the_documented_example_parses() -> None:
    import re
    from pathlib import Path

    from tests.docs import doc_page

    repo = Path(__file__).parents[3]
    text = doc_page("exchange.md")
    blocks = [b for b in re.findall(r"```json\n(.*?)```", text, re.S) if '"issuers"' in b]
    # The cdk.json section (`"exchange": {...}`) must be exactly what cdk.json ships.
    sections = [b for b in blocks if b.lstrip().startswith('"exchange":')]
    documents = [b for b in blocks if b not in sections]
    assert documents
    assert len(sections) == 1
    for block in documents:
        config = parse_exchange_config(block)
        assert config.issuers
    shipped = json.loads((repo / "cdk.json").read_text())["context"]["kernel-access"]["exchange"]
    assert json.loads("{" + sections[0] + "}")["exchange"] == shipped


@pytest.mark.parametrize("domain", ["kernel-", "k", "Kernel", "1kernel", "a" * 51])
def test_codeartifact_target_domain_follows_codeartifact_naming(domain: str) -> None:
    """The exchange accepts exactly the domain names the vending API and CodeArtifact accept
    (it used to accept a trailing hyphen, which CodeArtifact rejects)."""
    document = example_config()
    document["targets"]["packages"]["domain"] = domain
    assert any("targets.packages.domain" in error for error in errors_of(document))


def test_one_domain_rule_everywhere() -> None:
    from kernel_access.exchange import config as exchange_config
    from kernel_access.policy import parser
    from kernel_access.validation import CODEARTIFACT_DOMAIN_RE
    from kernel_access.vending import request

    assert parser.DOMAIN_RE is request.DOMAIN_RE is exchange_config.DOMAIN_RE is CODEARTIFACT_DOMAIN_RE


@pytest.mark.parametrize(
    "pattern",
    [
        "repo:acme/(a+)+-deploy",  # the textbook case: exponential on "aaaa…a!"
        "repo:acme/(.*)*x",
        "repo:acme/(a?)+x",
        "repo:(?:(ab)*c)+",
        "repo:([a-z]+/?)*:ref:refs/heads/main",
    ],
)
def test_a_claim_pattern_with_nested_repeats_is_refused(pattern: str) -> None:
    """A repeat inside a repeat backtracks catastrophically on a crafted claim value (a branch or
    repository name is the token holder's to choose): such a pattern is refused when the
    configuration is parsed, naming its field, rather than matched in the Lambda."""
    document = example_config()
    document["issuers"]["github"]["required_claims"]["repository"] = pattern
    errors = errors_of(document)
    assert any("issuers.github.required_claims.repository: nested repeat" in error for error in errors), (
        errors
    )


@pytest.mark.parametrize(
    "pattern",
    [
        "repo:acme/[^/]+:ref:refs/heads/(main|release/.*)",
        "repo:acme/(ab){2}",
        "repo:acme/(a{3})+",
        "repo:acme/(a+)++x",  # possessive: no backtracking into the outer repeat
        "repo:acme/(?>(a+))+x",  # atomic group: no backtracking into the inner one
    ],
)
def test_claim_patterns_without_backtracking_nests_are_accepted(pattern: str) -> None:
    document = example_config()
    document["issuers"]["github"]["required_claims"]["repository"] = pattern
    config = parse_exchange_config(document)
    assert config.issuers["github"].required_claims["repository"].source == pattern
