"""Anchored regular expressions for claim matching, and how claim values become text.

Every trust-policy regex is anchored at both ends: matching uses ``re.fullmatch`` (no ``^…$``
needed), so a pattern written without anchors can never match a prefix or a suffix of a longer
value (``repo:acme/app`` must not match ``repo:acme/app-evil``). Operators still write
``[^/]+`` rather than ``.*`` when a segment must not cross ``/``: full matching alone cannot know
where a path segment ends, and the docs say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

#: Longest pattern we accept: configuration is operator-written, but a bound keeps a typo from
#: becoming a catastrophic-backtracking expression over a huge alternation.
MAX_PATTERN_LENGTH: Final = 1024
#: Longest claim value we try to match; longer values never match (no claim we care about is
#: that long, and it bounds the regex engine's work per request).
MAX_CLAIM_TEXT_LENGTH: Final = 2048


@dataclass(frozen=True)
class AnchoredPattern:
    """A regex that must match the whole claim value (``fullmatch`` semantics)."""

    source: str
    compiled: re.Pattern[str] = field(repr=False, compare=False)

    @classmethod
    def compile(cls, source: str) -> AnchoredPattern:
        """Compile ``source``; raises ``ValueError`` with a readable message when invalid."""
        if not source:
            raise ValueError("pattern must not be empty")
        if len(source) > MAX_PATTERN_LENGTH:
            raise ValueError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
        try:
            compiled = re.compile(source)
        except re.error as error:
            raise ValueError(f"invalid regular expression {source!r}: {error}") from None
        if has_nested_repeat(source):
            raise ValueError(
                f"nested repeat in {source!r}: a repeat inside a repeat (such as '(a+)+' or "
                "'([a-z]+/?)*') can backtrack for minutes on a crafted claim value; write it without "
                "the nesting, or make a repeat possessive ('a++') or atomic ('(?>...)')"
            )
        return cls(source=source, compiled=compiled)

    def matches(self, value: str | None) -> bool:
        """Whether ``value`` matches. Used where a match *grants* something (required claims, trust
        policies), so a value that cannot be evaluated (absent, too long) does not match."""
        if value is None or len(value) > MAX_CLAIM_TEXT_LENGTH:
            return False
        return self.compiled.fullmatch(value) is not None

    def forbids(self, value: object) -> bool:
        """Whether a claim ``value`` trips this pattern used as a *forbidden* claim.

        The mirror image of :meth:`matches`: here a match refuses, so a present value the check
        cannot evaluate (over :data:`MAX_CLAIM_TEXT_LENGTH`, or a type no pattern is matched
        against) counts as a match. Otherwise padding a forbidden value past the length bound would
        turn a refusal into a pass. An absent claim (``None``) is not forbidden.
        """
        if value is None:
            return False
        text = claim_text(value)
        if text is None or len(text) > MAX_CLAIM_TEXT_LENGTH:
            return True
        return self.compiled.fullmatch(text) is not None


#: Opcodes of CPython's regex parse tree (``re._parser``) that the nesting check looks into.
_REPEATS: Final = frozenset({"MAX_REPEAT", "MIN_REPEAT"})


def has_nested_repeat(source: str) -> bool:
    """Whether a repeat that may run more than once contains a repeat of variable length.

    That shape (``(a+)+``, ``(.*)*``, ``(a?)+``) is what makes a backtracking engine take
    exponential time on a value that almost matches, and claim values (branch and repository
    names) are chosen by whoever holds the token. Possessive repeats and atomic groups never
    backtrack into what they matched, so nothing inside them counts. Overlapping alternatives
    under a repeat (``(a|a)+``) are not detected; the docs ask for character classes instead.

    The tree is CPython's own parse of the pattern (``re._parser``, the one ``re.compile`` uses):
    Python's regex module has no public parse tree and no backtracking limit, and nothing in the
    Lambda runtime offers a linear-time engine.
    """
    from re import _parser  # type: ignore[attr-defined]

    def children(name: str, argument: Any) -> list[Any]:
        """The sub-trees of a non-repeat node (possessive repeats and atomic groups have none that
        count: they are never backtracked into; literals and classes are leaves)."""
        if name == "SUBPATTERN":
            return [argument[-1]]
        if name == "BRANCH":
            return list(argument[1])
        if name in {"ASSERT", "ASSERT_NOT"}:
            return [argument[1]]
        if name == "GROUPREF_EXISTS":
            return [branch for branch in argument[1:] if branch is not None]
        return []

    def walk(items: Any, inside_repeat: bool) -> bool:
        for op, argument in items:
            name = str(op)
            if name in _REPEATS:
                low, high, body = argument
                if (inside_repeat and high != low) or walk(body, inside_repeat or high > 1):
                    return True
            elif any(walk(child, inside_repeat) for child in children(name, argument)):
                return True
        return False

    return walk(_parser.parse(source), False)


def claim_text(value: object) -> str | None:
    """The text a claim pattern is matched against, or None when the claim is not matchable.

    Strings match as they are, booleans as ``"true"``/``"false"`` (as JSON writes them).
    Every other type (numbers, lists, objects) is not matchable, so a pattern on it never matches:
    guessing a textual form for a list would let ``.*`` patterns match things nobody meant.
    Note: API Gateway HTTP API JWT authorizers hand claims to the Lambda already turned into
    strings (``true`` stays ``"true"``), so in production nearly every claim arrives as a string.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return None
