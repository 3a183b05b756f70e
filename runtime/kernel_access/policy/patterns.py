"""Principal ARN patterns, matched in linear time.

Semantics: ``*`` matches ``[^/:]*`` (zero or more characters within one ARN segment) and every
other character — ``?``, ``[``, ``.`` included — matches only itself. Patterns are anchored at both
ends and case-sensitive, as IAM compares ARNs.

Why not :mod:`fnmatch`: its ``*`` crosses ``/`` and ``:`` and it gives ``?`` and ``[...]``
meanings, so ``arn:aws:sts::*:assumed-role/x/*`` would let ``*`` swallow a whole account-and-path
and a bracket in a role path would become a character class.

Why not :mod:`re` (the earlier implementation translated the glob into ``[^/:]*`` groups): Python's
regex engine backtracks, and ``[^/:]*-[^/:]*-…`` against a caller-chosen session name full of
``-`` that fails at the end explores every way of splitting the name between the wildcards —
exponential in the number of wildcards (eight ``*-`` took 15.9 s on a 64-character session name,
past the Lambda's timeout). The session name is chosen by the partner, so that is a denial of
service any partner could trigger. No well-kept library offers a non-backtracking glob with this
segment rule, and the matcher is short, so it is written here. The pattern is ``L0*L1*…*Lk``
(literals ``Li``); a match is found greedily, left to right, in one pass:

- ``L0`` must be a prefix of the name and ``Lk`` a suffix (the match is anchored);
- each middle literal is placed at the first position the wildcard before it can reach. The
  wildcard covers ``name[pos:found]``, which must hold no separator, so ``found`` is at most the
  next separator at or after ``pos``. A literal that contains a separator (first one at offset
  ``d``) has exactly one possible place, ``next_separator - d``. A literal without separators is
  searched for between ``pos`` and the next separator, and its *leftmost* occurrence is taken:
  every other occurrence lies in the same separator-free run further right, so it only leaves
  less room for what follows — no alternative ever needs to be revisited;
- the last wildcard covers ``name[pos:len(name) - len(Lk)]``, which must hold no separator.

The substring search is a compiled *literal* regex (``re.escape(literal)``, no wildcard in it):
for a pure literal, CPython's regex engine searches with a Knuth-Morris-Pratt overlap table, linear
in the name, whereas ``str.find`` on names this short (< 2,500 characters) uses a Horspool-style
search that is quadratic on periodic input (a 996-character almost-matching literal in a
2,048-character name cost 250 times more). Separator positions are found by forward scans that
never move back. So the work per match is linear in ``len(name)`` per literal, and the number of
literals is capped at parse time (:data:`MAX_PATTERN_WILDCARDS`): principal patterns need a
handful of wildcards, and the cap keeps the Python-level steps per match — a few per wildcard —
well inside the ≤ 1 ms budget that ``benchmarks/bench_patterns.py`` checks at the length limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

#: Longest pattern accepted; an ARN is at most 2048 characters.
MAX_PATTERN_LENGTH = 2048
#: Characters ``*`` never matches (ARN segment separators).
SEPARATORS: Final = "/:"  # the matcher below spells out both
#: Most ``*`` in one pattern (an ARN has a handful of segments; see the module docstring).
MAX_PATTERN_WILDCARDS: Final = 16


def _first_separator(literal: str) -> int:
    """Offset of the first separator in ``literal``, or -1."""
    offsets = [i for i in (literal.find(c) for c in SEPARATORS) if i >= 0]
    return min(offsets) if offsets else -1


def _at_or_after(arn: str, separator: str, known: int, pos: int) -> int:
    """Index of the first ``separator`` at or after ``pos`` (``len(arn)`` if none), given ``known``,
    the previous answer for a smaller position: it is reused while still ahead of ``pos``, so the
    searches over one name add up to a single forward scan."""
    if known >= pos or known == len(arn):
        return known
    found = arn.find(separator, pos)
    return len(arn) if found < 0 else found


@dataclass(frozen=True)
class PrincipalPattern:
    """One anchored principal ARN pattern, compiled once at parse time."""

    text: str
    #: ``(literal, offset of its first separator or -1, linear search for it)`` between wildcards;
    #: one literal means the pattern has no ``*``.
    _literals: tuple[tuple[str, int, re.Pattern[str]], ...] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, text: str) -> PrincipalPattern:
        if not text:
            raise ValueError("a principal ARN pattern must not be empty")
        if len(text) > MAX_PATTERN_LENGTH:
            raise ValueError(f"a principal ARN pattern must be at most {MAX_PATTERN_LENGTH} characters")
        if text.count("*") > MAX_PATTERN_WILDCARDS:
            raise ValueError(
                f"a principal ARN pattern must have at most {MAX_PATTERN_WILDCARDS} '*' wildcards"
            )
        return cls(
            text=text,
            _literals=tuple(
                (lit, _first_separator(lit), re.compile(re.escape(lit))) for lit in text.split("*")
            ),
        )

    def matches(self, arn: str) -> bool:
        literals = self._literals
        if len(literals) == 1:
            return arn == self.text
        head, tail = literals[0][0], literals[-1][0]
        tail_start = len(arn) - len(tail)
        if tail_start < len(head) or not arn.startswith(head) or not arn.endswith(tail):
            return False
        pos = len(head)
        slash = colon = -1  # next '/' and ':' at or after pos, found lazily
        for literal, separator_offset, search in literals[1:-1]:
            if not literal:
                continue
            slash = _at_or_after(arn, "/", slash, pos)
            colon = _at_or_after(arn, ":", colon, pos)
            limit = min(slash, colon)  # the wildcard before ``literal`` cannot reach past it
            if separator_offset >= 0:
                found = limit - separator_offset
                if found < pos or found + len(literal) > tail_start or not arn.startswith(literal, found):
                    return False
            else:
                occurrence = search.search(arn, pos, min(limit, tail_start))
                if occurrence is None:
                    return False
                found = occurrence.start()
            pos = found + len(literal)
        # the last wildcard covers arn[pos:tail_start]: no separator there
        return min(_at_or_after(arn, "/", slash, pos), _at_or_after(arn, ":", colon, pos)) >= tail_start
