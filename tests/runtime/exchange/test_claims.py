"""Claim matching: anchoring, patterns that would cross '/', booleans, non-string claims, lifetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kernel_access.contract import ErrorCode
from kernel_access.exchange.claims import (
    audiences_of,
    check_central,
    check_lifetime,
    policy_matches,
    read_claims,
)
from kernel_access.exchange.config import IssuerConfig, StringMatcher, TrustPolicy
from kernel_access.exchange.patterns import MAX_CLAIM_TEXT_LENGTH, AnchoredPattern, claim_text
from kernel_access.exchange.refusal import ExchangeRefused

GITHUB = "https://token.actions.githubusercontent.com"


def policy(**fields: Any) -> TrustPolicy:
    defaults: dict[str, Any] = {
        "name": "p",
        "target": "t",
        "issuer": StringMatcher(exact=GITHUB),
        "subject": StringMatcher(pattern=AnchoredPattern.compile("repo:acme/[^/]+:ref:refs/heads/main")),
        "audience": None,
        "claim_patterns": {},
        "permissions": ("s3:GetObject",),
        "token_ttl": 900,
    }
    defaults.update(fields)
    return TrustPolicy(**defaults)


def token(**claims: Any) -> Any:
    base: dict[str, Any] = {
        "iss": GITHUB,
        "sub": "repo:acme/app:ref:refs/heads/main",
        "aud": "sts.amazonaws.com",
        "jti": "j1",
        "iat": 1000,
        "exp": 2000,
    }
    base.update(claims)
    return read_claims({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("repo:acme/app:ref:refs/heads/main", True),
        ("repo:acme/app:ref:refs/heads/main-evil", False),  # suffix: anchored at the end
        ("xrepo:acme/app:ref:refs/heads/main", False),  # prefix: anchored at the start
        ("repo:acme/app/extra:ref:refs/heads/main", False),  # [^/]+ cannot cross '/'
        ("repo:acme/:ref:refs/heads/main", False),
        ("repo:acme/app:ref:refs/heads/main\n", False),  # fullmatch: no trailing newline loophole
    ],
)
def test_subject_pattern_is_anchored(subject: str, expected: bool) -> None:
    assert policy_matches(policy(), token(sub=subject)) is expected


def test_dot_star_crosses_slash_and_that_is_why_docs_say_use_character_classes() -> None:
    loose = policy(subject=StringMatcher(pattern=AnchoredPattern.compile("repo:acme/.*:ref:refs/heads/main")))
    assert policy_matches(loose, token(sub="repo:acme/app/extra:ref:refs/heads/main"))


def test_alternation_is_anchored_as_a_whole() -> None:
    # A naive "^" + p + "$" would make this "^a|b$" (matching "a-anything"); fullmatch does not.
    alternation = policy(subject=StringMatcher(pattern=AnchoredPattern.compile("repo:acme/a|repo:acme/b")))
    assert policy_matches(alternation, token(sub="repo:acme/a"))
    assert not policy_matches(alternation, token(sub="repo:acme/a-evil"))
    assert not policy_matches(alternation, token(sub="evil-repo:acme/b"))


def test_exact_fields_are_exact() -> None:
    exact = policy(subject=StringMatcher(exact="repo:acme/app:ref:refs/heads/main"))
    assert policy_matches(exact, token())
    assert not policy_matches(exact, token(sub="repo:acme/app:ref:refs/heads/mai"))
    assert not policy_matches(policy(issuer=StringMatcher(exact=GITHUB + "/")), token())


def test_audience_condition_any_of_the_tokens_audiences() -> None:
    p = policy(audience=StringMatcher(exact="kernel-access"))
    assert policy_matches(p, token(aud=["other", "kernel-access"]))
    assert policy_matches(p, token(aud="[other kernel-access]"))
    assert not policy_matches(p, token(aud="sts.amazonaws.com"))


def test_claim_patterns_booleans_and_non_strings() -> None:
    p = policy(claim_patterns={"ref_protected": AnchoredPattern.compile("true")})
    assert policy_matches(p, token(ref_protected=True))
    assert policy_matches(p, token(ref_protected="true"))  # API Gateway's string form
    assert not policy_matches(p, token(ref_protected=False))
    assert not policy_matches(p, token())  # absent claim never matches
    numeric = policy(claim_patterns={"run_number": AnchoredPattern.compile("[0-9]+")})
    assert not policy_matches(numeric, token(run_number=42))  # non-string claims are not matchable
    listy = policy(claim_patterns={"groups": AnchoredPattern.compile(".*")})
    assert not policy_matches(listy, token(groups=["admin"]))


def test_claim_text() -> None:
    assert claim_text(True) == "true"
    assert claim_text("x") == "x"
    assert claim_text(1) is None
    assert claim_text(None) is None
    assert claim_text({"a": 1}) is None


def test_huge_claim_values_never_match() -> None:
    p = AnchoredPattern.compile(".*")
    assert not p.matches("x" * 5000)


def test_audiences_of() -> None:
    assert audiences_of("a") == ("a",)
    assert audiences_of(["a", "b", 3]) == ("a", "b")
    assert audiences_of("[a b]") == ("a", "b")
    assert audiences_of(None) == ()


def test_numeric_claims_accept_api_gateway_strings() -> None:
    parsed = token(iat="1000", exp="2000")
    assert (parsed.issued_at, parsed.expires_at) == (1000, 2000)
    with pytest.raises(ExchangeRefused):
        token(iat="soon")
    with pytest.raises(ExchangeRefused):
        token(exp=True)


def test_lifetime_checks() -> None:
    now = datetime.fromtimestamp(1500, UTC)
    check_lifetime(token(iat=1400, exp=1600), now=now, max_age_seconds=600)
    for claims, fragment in (
        ({"iat": 1400, "exp": 1500}, "expired"),
        ({"iat": 1561, "exp": 1600}, "future"),
        ({"iat": 800, "exp": 1600}, "older"),
        ({"iat": 1400, "exp": 1600, "nbf": 1600}, "not valid yet"),
    ):
        with pytest.raises(ExchangeRefused) as info:
            check_lifetime(token(**claims), now=now, max_age_seconds=600)
        assert info.value.code is ErrorCode.INVALID_TOKEN
        assert fragment in info.value.message


def test_pattern_compile_errors() -> None:
    for bad in ("", "(", "x" * 2000):
        with pytest.raises(ValueError):
            AnchoredPattern.compile(bad)


# --- forbidden claims fail closed -------------------------------------------------------------------


def issuer_forbidding(**forbidden: str) -> IssuerConfig:
    return IssuerConfig(
        name="github",
        issuer=GITHUB,
        audiences=("sts.amazonaws.com",),
        required_claims={},
        forbidden_claims={claim: AnchoredPattern.compile(p) for claim, p in forbidden.items()},
        max_permissions=("s3:GetObject",),
        max_token_age_seconds=600,
    )


@pytest.mark.parametrize(
    "value",
    [
        "refs/heads/untrusted/x",
        # The same forbidden ref padded past the matcher's length bound: a value the check cannot
        # evaluate must count as forbidden, not slip through as "does not match".
        "refs/heads/untrusted/" + "x" * MAX_CLAIM_TEXT_LENGTH,
        # Values of a type no pattern can be matched against count as forbidden too.
        12345,
        ["refs/heads/untrusted/x"],
        {"ref": "refs/heads/untrusted/x"},
    ],
)
def test_forbidden_claim_refuses_matching_and_unmatchable_values(value: object) -> None:
    central = issuer_forbidding(ref="refs/heads/untrusted/.*")
    with pytest.raises(ExchangeRefused) as refused:
        check_central(central, token(ref=value))
    assert refused.value.code is ErrorCode.ISSUER_NOT_ALLOWED
    assert refused.value.details == {"claim": "ref"}


@pytest.mark.parametrize("value", [None, "refs/heads/main", "x" * 10])
def test_forbidden_claim_passes_absent_and_non_matching_values(value: object) -> None:
    central = issuer_forbidding(ref="refs/heads/untrusted/.*")
    check_central(central, token(ref=value))  # no refusal
