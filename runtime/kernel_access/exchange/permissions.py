"""Effective permissions: requested ∩ trust policy ∩ central maximum, and the session policy.

Permissions of an ``aws_role`` target are IAM action patterns ``service:Action`` where the
service is literal (``[a-z0-9-]+``) and the action may contain ``*`` wildcards
(``s3:Get*``). ``?`` is not accepted and neither is a bare ``*``: every granted action names its
service, and the coverage test below is only sound for ``*``.

**Coverage.** Pattern ``P`` *covers* pattern ``Q`` when every action ``Q`` matches is also
matched by ``P``. We decide it by matching ``P`` (as a glob) against the text of ``Q`` with
``Q``'s ``*`` taken literally: every ``*`` of ``Q`` is then swallowed by a ``*`` of ``P``, which
could swallow any replacement just as well, so the test never says "covered" wrongly (it may
say "not covered" for exotic pairs, which only ever narrows a grant). Comparison is
case-insensitive like IAM's.

**Intersection.** ``intersect(A, B)`` keeps every item of ``A`` covered by some item of ``B``
and every item of ``B`` covered by some item of ``A``: ``{s3:*} ∩ {s3:Get*}`` is
``{s3:Get*}``, ``{s3:GetObject} ∩ {s3:Get*}`` is ``{s3:GetObject}``. Each kept item
is inside both sets, so the result never grants more than either side. Effective permissions are
``intersect(intersect(requested, trust), maximum)``; an absent request means "everything the
trust policy offers".

CodeArtifact targets use the two access levels ``read`` < ``publish`` (publish includes read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final, Literal

#: An IAM action pattern with a literal service prefix and an action of letters/digits/``*``.
ACTION_PATTERN_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}:[A-Za-z0-9*]{1,128}$")
CODEARTIFACT_LEVELS: Final[tuple[str, ...]] = ("read", "publish")
#: STS limit on an inline session policy (plain-text characters).
MAX_SESSION_POLICY_CHARS: Final = 2048

AccessLevel = Literal["read", "publish"]


def is_action_pattern(value: str) -> bool:
    return ACTION_PATTERN_RE.fullmatch(value) is not None and not value.endswith(":")


@lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled glob of ``pattern``; cached because every grant compares the same configured
    patterns again (bounded: requested patterns are caller-chosen)."""
    parts = (re.escape(part) for part in pattern.lower().split("*"))
    return re.compile(".*".join(parts), re.DOTALL)


def _collapse(item: str) -> str:
    """``s3:Get**`` and ``s3:Get*`` are the same pattern; keep one spelling."""
    return re.sub(r"\*{2,}", "*", item)


def covers(pattern: str, item: str) -> bool:
    """True when every IAM action ``item`` matches is also matched by ``pattern``."""
    return _glob_regex(pattern).fullmatch(item.lower()) is not None


def intersect(left: Iterable[str], right: Iterable[str]) -> tuple[str, ...]:
    """Items of either side that the other side covers; sorted, case-insensitively deduplicated."""
    left_items = [_collapse(item) for item in left]
    right_items = [_collapse(item) for item in right]
    kept: dict[str, str] = {}
    for item in left_items:
        if any(covers(other, item) for other in right_items):
            kept.setdefault(item.lower(), item)
    for item in right_items:
        if any(covers(other, item) for other in left_items):
            kept.setdefault(item.lower(), item)
    # Drop items another kept item already covers: shorter session policies, same grant.
    # (Ties between items covering each other keep the alphabetically first one.)
    minimal = [
        item
        for key, item in kept.items()
        if not any(
            other_key != key and covers(other, item) and (other_key < key or not covers(item, other))
            for other_key, other in kept.items()
        )
    ]
    return tuple(sorted(minimal, key=str.lower))


def effective_actions(
    requested: Sequence[str] | None, trust: Sequence[str], maximum: Sequence[str]
) -> tuple[str, ...]:
    """IAM actions granted: requested (default: all the trust policy offers) ∩ trust ∩ maximum."""
    # Requested items that are not action patterns are dropped (the service refuses them earlier
    # with INVALID_REQUEST; this keeps the function safe on its own).
    wanted = trust if requested is None else [item for item in requested if is_action_pattern(item)]
    return intersect(intersect(wanted, trust), [m for m in maximum if is_action_pattern(m)])


def effective_level(
    requested: Sequence[str] | None,
    trust: Sequence[str],
    maximum: Sequence[str],
    target_access: AccessLevel,
) -> AccessLevel | None:
    """The CodeArtifact access level granted, or None when the layers leave nothing.

    Each layer's level is the highest level it names; the grant is the lowest of the layers'
    levels (the request defaults to the trust policy's level). A request naming something that
    is not a level grants nothing.
    """
    levels = [_level_of(trust), _level_of(maximum), CODEARTIFACT_LEVELS.index(target_access)]
    if requested is not None:
        if any(item not in CODEARTIFACT_LEVELS for item in requested):
            return None
        levels.append(_level_of(requested))
    lowest = min(levels)
    if lowest < 0:
        return None
    return "publish" if lowest == 1 else "read"


def _level_of(items: Iterable[str]) -> int:
    present = [CODEARTIFACT_LEVELS.index(item) for item in items if item in CODEARTIFACT_LEVELS]
    return max(present, default=-1)


def level_permissions(level: AccessLevel) -> tuple[str, ...]:
    """The permissions an access level stands for, as reported to the caller."""
    return ("read", "publish") if level == "publish" else ("read",)


def session_policy(actions: Sequence[str]) -> str:
    """The inline session policy (compact JSON) allowing exactly ``actions`` on any resource.

    The target role's own identity policy still bounds what the session can touch: a session
    policy only ever narrows, so ``Resource: *`` here grants nothing the role does not have.
    """
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
    return json.dumps(document, separators=(",", ":"))
