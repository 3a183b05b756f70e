"""Support for ``kernel-access policy lint`` on exchange configuration (trust-policy) files.

``kernel-access policy lint`` owns the command; it needs only two things from here: how to tell an
exchange configuration from a vending policy (:func:`is_exchange_document`: it has ``issuers``,
``trust_policies`` or ``targets`` and no ``rules``/``partners``) and a result it can print
(:func:`lint_exchange`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kernel_access.exchange.config import ExchangeConfigError, parse_exchange_config

_EXCHANGE_KEYS = frozenset({"issuers", "trust_policies", "targets"})
_VENDING_KEYS = frozenset({"rules", "partners"})


def is_exchange_document(document: object) -> bool:
    """True for an exchange configuration (as text or parsed JSON), False for anything else."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return False
    return (
        isinstance(document, Mapping)
        and bool(_EXCHANGE_KEYS & set(document))
        and not (_VENDING_KEYS & set(document))
    )


@dataclass(frozen=True)
class LintResult:
    valid: bool
    #: ``{"path": ..., "message": ...}`` per problem (empty when valid).
    errors: list[dict[str, str]] = field(default_factory=list)
    #: Counts for the one-line summary (empty when invalid).
    summary: dict[str, Any] = field(default_factory=dict)

    def text(self, source: str) -> str:
        if not self.valid:
            lines = [f"{source}: {e['path']}: {e['message']}" for e in self.errors]
            return "\n".join([*lines, f"{len(self.errors)} error(s)"])
        s = self.summary
        return (
            f"{source}: valid exchange configuration version {s['version']!r}: {s['issuers']} issuer(s), "
            f"{s['targets']} target(s), {s['trust_policies']} trust polic(ies)"
        )


def lint_exchange(document: Mapping[str, Any] | str) -> LintResult:
    try:
        config = parse_exchange_config(document)
    except ExchangeConfigError as error:
        return LintResult(False, [{"path": e.path, "message": e.message} for e in error.errors])
    return LintResult(
        True,
        summary={
            "kind": "exchange",
            "version": config.version,
            "issuers": len(config.issuers),
            "targets": len(config.targets),
            "trust_policies": sum(len(p) for p in config.trust_policies.values()),
        },
    )
