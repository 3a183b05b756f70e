"""Permission intersection: wildcard coverage is sound (never grants more than every layer)."""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_access.exchange.permissions import (
    covers,
    effective_actions,
    effective_level,
    intersect,
    is_action_pattern,
    session_policy,
)


def test_covers() -> None:
    assert covers("s3:Get*", "s3:GetObject")
    assert covers("s3:Get*", "s3:GetObject*")
    assert covers("s3:*", "s3:Get*")
    assert covers("S3:getobject", "s3:GetObject")  # IAM is case-insensitive
    assert not covers("s3:Get*", "s3:*")
    assert not covers("s3:GetObject", "s3:Get*")
    assert not covers("s3:Get*", "s3:PutObject")
    assert not covers("s3:*", "s3x:GetObject")
    assert not covers("s3:Get*", "sqs:GetQueueUrl")


def test_intersect_keeps_the_narrower_side() -> None:
    assert intersect(["s3:*"], ["s3:Get*"]) == ("s3:Get*",)
    assert intersect(["s3:GetObject"], ["s3:Get*"]) == ("s3:GetObject",)
    assert intersect(["s3:GetObject", "s3:Get*"], ["s3:*"]) == ("s3:Get*",)
    assert intersect(["s3:Get*"], ["s3:Put*"]) == ()
    assert intersect(["s3:Get**"], ["s3:Get*"]) == ("s3:Get*",)
    assert intersect([], ["s3:*"]) == ()


def test_effective_actions() -> None:
    trust = ["s3:GetObject", "s3:PutObject", "cloudformation:*"]
    maximum = ["s3:Get*", "cloudformation:Describe*", "read"]
    assert effective_actions(None, trust, maximum) == ("cloudformation:Describe*", "s3:GetObject")
    assert effective_actions(["s3:PutObject"], trust, maximum) == ()
    assert effective_actions(["cloudformation:DescribeStacks"], trust, maximum) == (
        "cloudformation:DescribeStacks",
    )
    assert effective_actions(["*"], trust, maximum) == ()


def test_effective_level() -> None:
    assert effective_level(None, ["publish"], ["read", "publish"], "publish") == "publish"
    assert effective_level(None, ["publish"], ["read"], "publish") == "read"
    assert effective_level(["read"], ["publish"], ["publish"], "publish") == "read"
    assert effective_level(["publish"], ["read"], ["publish"], "publish") == "read"
    assert effective_level(None, ["publish"], ["publish"], "read") == "read"
    assert effective_level(None, ["read"], [], "publish") is None
    assert effective_level(["admin"], ["read"], ["read"], "read") is None


def test_session_policy_is_compact_json() -> None:
    assert session_policy(["s3:GetObject"]) == (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"*"}]}'
    )


def test_action_pattern_syntax() -> None:
    assert is_action_pattern("s3:GetObject")
    assert is_action_pattern("s3:*")
    for bad in ("*", "*:*", "s3:", "s3:Get?bject", "S3:Get", "s3:Get Object", "s3:Get/x", "read"):
        assert not is_action_pattern(bad), bad


services = st.sampled_from(["s3", "sqs", "s3x"])
fragments = st.text(alphabet="GetPuObjc*", min_size=1, max_size=8)
patterns = st.builds(lambda s, a: f"{s}:{a}", services, fragments)
actions = st.builds(lambda s, a: f"{s}:{a}", services, st.text(alphabet="GetPuObjc", min_size=1, max_size=8))


def matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower().replace("?", "[?]").replace("[", "[[]"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(patterns, max_size=4), st.lists(patterns, max_size=4), st.lists(patterns, max_size=4), actions
)
def test_intersection_never_grants_what_a_layer_denies(
    requested: list[str], trust: list[str], maximum: list[str], action: str
) -> None:
    granted = effective_actions(requested or None, trust, maximum)
    if any(matches(p, action) for p in granted):
        assert any(matches(p, action) for p in trust)
        assert any(matches(p, action) for p in maximum)
        if requested:
            assert any(matches(p, action) for p in requested)


@settings(max_examples=300, deadline=None)
@given(patterns, patterns, actions)
def test_covers_is_sound(pattern: str, item: str, action: str) -> None:
    if covers(pattern, item) and matches(item, action):
        assert matches(pattern, action)


levels = st.lists(st.sampled_from(["read", "publish"]), max_size=2, unique=True)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), levels), levels, levels, st.sampled_from(["read", "publish"]))
def test_codeartifact_level_never_exceeds_a_layer(
    requested: list[str] | None, trust: list[str], maximum: list[str], target: str
) -> None:
    order = {"read": 0, "publish": 1}
    granted = effective_level(requested, trust, maximum, target)  # type: ignore[arg-type]
    if granted is None:
        return
    for layer in ([requested] if requested else []) + [trust, maximum]:
        assert layer, "an empty layer must grant nothing"
        assert order[granted] <= max(order[item] for item in layer)
    assert order[granted] <= order[target]
