"""Principal ARN patterns: the worst case a partner can force on the policy evaluator.

The caller's ARN ends in a session name the partner chooses, and a rule's ``principal_arns``
pattern is matched against it on every request. Each row times one adversarial pattern/name
pair — many wildcards that every character of the name could satisfy, failing only at the end,
at the limits (pattern 2,048 characters and 16 wildcards, ARN 2,048 characters) — against the
everyday case in the same run (``.../kernel-access/*`` against a short session ARN). Goal: worst case ≤ 1 ms.
"""

from __future__ import annotations

from kernel_access.policy.patterns import MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS, PrincipalPattern

from benchmarks.harness import Result, median_seconds

PREFIX = "arn:aws:sts::111111111111:assumed-role/kernel-access/"
#: The longest caller ARN the vending handler accepts (``vending.identity.MAX_ARN_LENGTH``),
#: ending in ``x`` so that patterns ending in ``*x`` get past the suffix check.
LONG_DASHES = PREFIX + "-" * (2048 - len(PREFIX) - 1) + "x"
_MOST = MAX_PATTERN_WILDCARDS - 2  # leaves room for the failing '*c*x' tail

#: (label, pattern, name): each fails only after the matcher has done all the work it can.
CASES: tuple[tuple[str, str, str], ...] = (
    # what took 15.9 s with the backtracking regex: 8 '*-' against a 64-character session name
    ("8 '*-' vs 64-char session name", PREFIX + "*-" * 8 + "x", PREFIX + "-" * 64),
    # every wildcard placed, the last literal missing
    (f"{_MOST} '*-' then '*c*x' vs 2048-char ARN", PREFIX + "*-" * _MOST + "*c*x", LONG_DASHES),
    # a literal half the name long, almost matching at every position (worst case of a
    # Horspool-style substring search; linear for the KMP search the matcher uses)
    ("'*' + 996-char literal + '*x' vs 2048-char ARN", PREFIX + "*" + "-" * 994 + "c-*x", LONG_DASHES),
    # literals holding separators: every one placed at a forced position, the last one missing
    (
        f"{_MOST} '*/' then '*c*x' vs 2048-char ARN of '-/'",
        PREFIX + "*/" * _MOST + "*c*x",
        PREFIX + "-/" * 997 + "x",
    ),
)


def run() -> list[Result]:
    everyday = PrincipalPattern.compile(PREFIX + "*")
    everyday_name = PREFIX + "payments.ci-job"
    baseline = median_seconds(lambda: everyday.matches(everyday_name), number=20_000)
    rows = []
    for label, pattern, name in CASES:
        compiled = PrincipalPattern.compile(pattern)
        assert len(pattern) <= MAX_PATTERN_LENGTH
        assert not compiled.matches(name)
        figure = median_seconds(lambda c=compiled, n=name: c.matches(n), number=200)
        rows.append(
            Result(
                f"patterns: {label}",
                figure * 1e6,
                baseline * 1e6,
                "us",
                "<= 1000 us (worst case a partner can force)",
            )
        )
    return rows
