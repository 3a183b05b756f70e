"""Principal ARN patterns.

Written by hand rather than with :mod:`fnmatch` because fnmatch's ``*`` crosses ``/`` and ``:``
and it gives ``?`` and ``[...]`` meanings: in an ARN pattern ``arn:aws:sts::*:assumed-role/x/*``
those would let ``*`` swallow a whole account-and-path and turn a bracket in a role path into a
character class. Here ``*`` matches ``[^/:]*`` (zero or more characters within one ARN segment)
and every other character — ``?``, ``[``, ``.`` included — matches only itself. Patterns are
anchored at both ends and case-sensitive, as IAM compares ARNs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Longest pattern accepted; an ARN is at most 2048 characters.
MAX_PATTERN_LENGTH = 2048


@dataclass(frozen=True)
class PrincipalPattern:
    """One anchored principal ARN pattern, compiled once at parse time."""

    text: str
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, text: str) -> PrincipalPattern:
        if not text:
            raise ValueError("a principal ARN pattern must not be empty")
        if len(text) > MAX_PATTERN_LENGTH:
            raise ValueError(f"a principal ARN pattern must be at most {MAX_PATTERN_LENGTH} characters")
        body = "[^/:]*".join(re.escape(literal) for literal in text.split("*"))
        return cls(text=text, regex=re.compile(body, re.DOTALL))

    def matches(self, arn: str) -> bool:
        return self.regex.fullmatch(arn) is not None
