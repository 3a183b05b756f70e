"""JSON Schemas (draft 2020-12) of the vending policy and the exchange configuration documents.

Generated from the parsers' own field specs (``POLICY_SPEC`` in :mod:`kernel_access.policy.parser`,
``EXCHANGE_SPEC`` in :mod:`kernel_access.exchange.config`), never written by hand, and shipped with
the package as ``policy.schema.json`` and ``exchange.schema.json`` so editors and CI can check a
document before ``kernel-access policy lint`` does (the parser still has the last word: a schema
cannot know that a rule names an unknown partner). ``kernel-access policy schema`` and
``kernel-access exchange schema`` print them; a test keeps the shipped files equal to the generator.

No Lambda handler imports this package, so neither it nor the JSON files are in the Lambda asset.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final, Literal

DocumentKind = Literal["policy", "exchange"]

#: Shipped file of each schema, next to this module.
SCHEMA_FILES: Final[dict[DocumentKind, str]] = {
    "policy": "policy.schema.json",
    "exchange": "exchange.schema.json",
}


def generate(kind: DocumentKind) -> dict[str, Any]:
    """The schema of ``kind`` as the parser's spec describes it now."""
    from kernel_access.fields import json_schema

    if kind == "policy":
        from kernel_access.policy.parser import POLICY_SPEC

        return json_schema(
            POLICY_SPEC,
            title="kernel-access vending policy",
            description="The vending policy document (docs/policy.md). Structure only: "
            "`kernel-access policy lint` also checks what a schema cannot (unknown partners, "
            "groups and attributes, CIDRs, time zones, one account per partner).",
        )
    from kernel_access.exchange.config import EXCHANGE_SPEC

    return json_schema(
        EXCHANGE_SPEC,
        title="kernel-access exchange configuration",
        description="The OIDC token exchange configuration document (docs/exchange.md). Structure "
        "only: the parser also checks patterns compile, audiences are not shared, permissions "
        "suit their target and trust policies name a declared target.",
    )


def render(kind: DocumentKind) -> str:
    """The schema of ``kind`` as the shipped file holds it (two-space indent, trailing newline)."""
    return json.dumps(generate(kind), indent=2, ensure_ascii=False) + "\n"


def shipped(kind: DocumentKind) -> str:
    """The text of the schema file shipped in the package."""
    return resources.files(__name__).joinpath(SCHEMA_FILES[kind]).read_text(encoding="utf-8")
