"""Principal ARN patterns: exact glob semantics, and bounded work on adversarial input.

The pattern is written by the operator but the name it is matched against is the caller's ARN,
whose session-name tail the partner chooses: a matcher that backtracks lets a partner stall the
vending Lambda. The property test compares the matcher with two independent references (a dynamic
program over the documented semantics, and the regex translation on inputs small enough for it)
on names and patterns drawn from the characters that make backtracking explode.
"""

from __future__ import annotations

import re
import time
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.policy import PrincipalPattern, parse_policy
from kernel_access.policy.patterns import MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS

PREFIX = "arn:aws:sts::111111111111:assumed-role/kernel-access/"


def reference_match(pattern: str, name: str) -> bool:
    """Dynamic program over the documented semantics: ``*`` = any run of non-``/``/``:``
    characters, everything else literal. O(len(pattern) * len(name)), no shared code."""

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(name)
        if pattern[i] == "*":
            if match(i + 1, j):
                return True
            return j < len(name) and name[j] not in "/:" and match(i, j + 1)
        return j < len(name) and pattern[i] == name[j] and match(i + 1, j + 1)

    return match(0, 0)


def regex_match(pattern: str, name: str) -> bool:
    """The regex translation the matcher replaced (fine on small inputs)."""
    body = "[^/:]*".join(re.escape(literal) for literal in pattern.split("*"))
    return re.fullmatch(body, name, re.DOTALL) is not None


# Few characters, chosen to make wildcards ambiguous: '-' and 'a' repeat, separators split.
adversarial_chars = st.sampled_from("-a*-/:.?[x")  # at most 24 characters: under the wildcard cap
name_chars = st.sampled_from("-a-/:.?[x\n")
patterns = st.text(adversarial_chars, min_size=1, max_size=24)
names = st.text(name_chars, max_size=40)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=patterns, name=names)
def test_matches_like_the_references(pattern: str, name: str) -> None:
    compiled = PrincipalPattern.compile(pattern)
    expected = reference_match(pattern, name)
    assert compiled.matches(name) is expected
    assert regex_match(pattern, name) is expected  # the references agree with each other


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.text(adversarial_chars, min_size=1, max_size=16),
    data=st.data(),
)
def test_names_built_from_the_pattern_match(pattern: str, data: st.DataObject) -> None:
    """Random names rarely match; build matching names by filling each wildcard."""
    fills = [data.draw(st.text(st.sampled_from("-ax."), max_size=6)) for _ in pattern.split("*")[1:]]
    pieces = pattern.split("*")
    name = pieces[0] + "".join(fill + piece for fill, piece in zip(fills, pieces[1:], strict=True))
    assert PrincipalPattern.compile(pattern).matches(name)
    assert reference_match(pattern, name)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        (PREFIX + "*", PREFIX + "payments.ci", True),
        (PREFIX + "*", PREFIX + "a/b", False),  # '*' stays within a segment
        ("arn:aws:sts::*:assumed-role/x/*", "arn:aws:sts::1:2:assumed-role/x/y", False),
        ("arn:aws:sts::*:assumed-role/x/*", "arn:aws:sts:::assumed-role/x/", True),
        (PREFIX + "payments.?", PREFIX + "payments.x", False),  # '?' is literal
        (PREFIX + "[ab]", PREFIX + "[ab]", True),  # brackets are literal
        (PREFIX + "Payments*", PREFIX + "payments.ci", False),  # case-sensitive
        (PREFIX + "*.ci", PREFIX + "payments.ci", True),
        (PREFIX + "*.ci", PREFIX + "payments.ci.x", False),  # anchored at the end
        (PREFIX + "ci*", PREFIX + "x.ci", False),  # anchored at the start
        (PREFIX + "a**b", PREFIX + "ab", True),
        (PREFIX + "*a*a*", PREFIX + "aa", True),
        (PREFIX + "*a*a*", PREFIX + "a", False),
        (PREFIX + "ab*ba", PREFIX + "aba", False),  # prefix and suffix must not overlap
    ],
)
def test_documented_semantics(pattern: str, name: str, expected: bool) -> None:
    assert PrincipalPattern.compile(pattern).matches(name) is expected
    assert reference_match(pattern, name) is expected


def _worst_case_seconds(pattern: str, name: str, *, repeat: int = 5) -> float:
    compiled = PrincipalPattern.compile(pattern)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        compiled.matches(name)
        best = min(best, time.perf_counter() - started)
    return best


def test_eight_wildcards_on_a_hostile_session_name_is_fast() -> None:
    """Regression: ``*-`` eight times against a session name of dashes backtracked for seconds
    (40 dashes: about 2 s; a 64-character session name: far longer)."""
    pattern = PREFIX + "*-" * 8 + "x"
    name = PREFIX + "-" * 40
    started = time.perf_counter()
    assert PrincipalPattern.compile(pattern).matches(name) is False
    assert time.perf_counter() - started < 0.05


LONG_DASHES = PREFIX + "-" * (2048 - len(PREFIX) - 1) + "x"


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        # every wildcard placed, the last literal missing
        (PREFIX + "*-" * (MAX_PATTERN_WILDCARDS - 2) + "*c*x", LONG_DASHES),
        # a long literal that almost matches at every position (quadratic for str.find)
        (PREFIX + "*" + "-" * 994 + "c-" + "*x", LONG_DASHES),
        (PREFIX + "*" + "-" * (MAX_PATTERN_LENGTH - len(PREFIX) - 5) + "c-*x", LONG_DASHES),
        # literals with separators, each at a forced position
        (PREFIX + "*/" * (MAX_PATTERN_WILDCARDS - 2) + "*c*x", PREFIX + "-/" * 997 + "x"),
    ],
    ids=["dash-wildcards", "long-literal", "longest-literal", "separator-wildcards"],
)
def test_bounded_work_at_the_size_limits(pattern: str, name: str) -> None:
    """Generous bound (the benchmark shows the real figure): backtracking or quadratic search
    takes tens of milliseconds to seconds here; the linear matcher well under one."""
    assert len(pattern) <= MAX_PATTERN_LENGTH
    assert not PrincipalPattern.compile(pattern).matches(name)
    assert _worst_case_seconds(pattern, name) < 0.01


def test_wildcards_are_capped_at_parse_time() -> None:
    PrincipalPattern.compile(PREFIX + "*" * MAX_PATTERN_WILDCARDS)
    with pytest.raises(ValueError, match="at most 16 '\\*' wildcards"):
        PrincipalPattern.compile(PREFIX + "*" * (MAX_PATTERN_WILDCARDS + 1))


def test_policy_rule_uses_the_linear_matcher() -> None:
    """The pattern reaches the evaluator through the parser unchanged."""
    policy = parse_policy(
        {
            "version": "1",
            "partners": {"payments": {"account_id": "222222222222", "in_organization": True}},
            "rules": [
                {
                    "id": "r",
                    "effect": "allow",
                    "partners": ["payments"],
                    "roles": ["kernel-reader"],
                    "principal_arns": [PREFIX + "*-" * 8 + "x"],
                }
            ],
        }
    )
    (pattern,) = policy.rules[0].principal_arns or ()
    started = time.perf_counter()
    assert not pattern.matches(PREFIX + "-" * 40)
    assert time.perf_counter() - started < 0.05


def test_policy_lint_names_the_pattern_over_the_wildcard_cap() -> None:
    """``policy lint`` reports the field (it runs the same parser the Lambda does)."""
    from kernel_access.policy import PolicyValidationError

    document = {
        "version": "1",
        "partners": {"payments": {"account_id": "222222222222", "in_organization": True}},
        "rules": [
            {
                "id": "r",
                "effect": "allow",
                "partners": ["payments"],
                "roles": ["kernel-reader"],
                "principal_arns": [PREFIX + "*-" * (MAX_PATTERN_WILDCARDS + 1)],
            }
        ],
    }
    with pytest.raises(PolicyValidationError, match=r"principal_arns\[0\].*at most 16"):
        parse_policy(document)
