"""Document shapes as data: the one definition of every field that a parser reads and a schema shows.

A parser (the vending policy's, the exchange configuration's) declares its document as a tree of
these specs, built from its own constants (the regexes of :mod:`kernel_access.validation`, its
bounds and enums). The parser takes its field names, required fields and patterns from the tree;
:func:`json_schema` renders the same tree as JSON Schema (draft 2020-12) for editors and CI. There
is no second, hand-written copy of the rules to drift.

What a spec cannot say (an account owned by two partners, a rule naming an unknown group, a regex
that does not compile) stays in the parser: the schema checks structure, the parser has the last
word. Every document the parser accepts validates against the schema (the tests check it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

#: The JSON Schema dialect of every generated schema.
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Str:
    """A string: matching ``pattern`` (``re.match`` semantics: write it anchored), one of ``enum``."""

    pattern: re.Pattern[str] | None = None
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Int:
    """An integer (never a boolean) in ``minimum..maximum``; ``default`` when the field is left out."""

    minimum: int
    maximum: int
    default: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Bool:
    description: str = ""


@dataclass(frozen=True)
class AnyObject:
    """Any JSON object (an inline IAM policy: IAM checks its grammar)."""

    description: str = ""


@dataclass(frozen=True)
class Array:
    items: Spec
    min_items: int = 1
    max_items: int | None = None
    unique: bool = False
    description: str = ""


@dataclass(frozen=True)
class Map:
    """An object used as a dictionary: keys matching ``keys``, every value a ``values``."""

    keys: Str
    values: Spec
    min_properties: int = 0
    max_properties: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Object:
    """An object with known fields; any other field is an error.

    ``required`` in the order the parser reports missing ones; ``one_of``: groups of which exactly
    one field must be given; ``at_most_one``: groups of which at most one may be given;
    ``any_of``: groups of which at least one must be given.
    """

    fields: Mapping[str, Spec]
    required: tuple[str, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    at_most_one: tuple[tuple[str, ...], ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()
    description: str = ""

    @property
    def names(self) -> frozenset[str]:
        """The allowed field names (what the parser's unknown-field check admits)."""
        return frozenset(self.fields)


@dataclass(frozen=True)
class Tagged:
    """An object whose ``tag`` field (one of ``variants``) decides its shape."""

    tag: str
    variants: Mapping[str, Object] = field(default_factory=dict)
    description: str = ""


Spec: TypeAlias = Str | Int | Bool | AnyObject | Array | Map | Object | Tagged


def json_schema(spec: Spec, *, title: str = "", description: str = "") -> dict[str, Any]:
    """``spec`` as a JSON Schema (draft 2020-12) document; no reference leaves the document."""
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT}
    if title:
        schema["title"] = title
    schema.update(_render(spec))
    if description:
        schema["description"] = description
    return schema


def _describe(schema: dict[str, Any], description: str) -> dict[str, Any]:
    if description:
        schema["description"] = description
    return schema


def _render(spec: Spec) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 - one branch per spec kind
    if isinstance(spec, Str):
        schema: dict[str, Any] = {"type": "string"}
        if spec.enum is not None:
            schema["enum"] = list(spec.enum)
        if spec.pattern is not None:
            schema["pattern"] = spec.pattern.pattern
        if spec.min_length is not None:
            schema["minLength"] = spec.min_length
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
        return _describe(schema, spec.description)
    if isinstance(spec, Int):
        schema = {"type": "integer", "minimum": spec.minimum, "maximum": spec.maximum}
        if spec.default is not None:
            schema["default"] = spec.default
        return _describe(schema, spec.description)
    if isinstance(spec, Bool):
        return _describe({"type": "boolean"}, spec.description)
    if isinstance(spec, AnyObject):
        return _describe({"type": "object"}, spec.description)
    if isinstance(spec, Array):
        schema = {"type": "array", "items": _render(spec.items)}
        if spec.min_items:
            schema["minItems"] = spec.min_items
        if spec.max_items is not None:
            schema["maxItems"] = spec.max_items
        if spec.unique:
            schema["uniqueItems"] = True
        return _describe(schema, spec.description)
    if isinstance(spec, Map):
        schema = {
            "type": "object",
            "propertyNames": _render(spec.keys),
            "additionalProperties": _render(spec.values),
        }
        if spec.min_properties:
            schema["minProperties"] = spec.min_properties
        if spec.max_properties is not None:
            schema["maxProperties"] = spec.max_properties
        return _describe(schema, spec.description)
    if isinstance(spec, Object):
        return _describe(_render_object(spec), spec.description)
    return _describe(_render_tagged(spec), spec.description)


def _render_object(spec: Object, *, tag: tuple[str, str] | None = None) -> dict[str, Any]:
    properties = {name: _render(value) for name, value in spec.fields.items()}
    if tag is not None:
        properties[tag[0]] = {"const": tag[1]}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if spec.required:
        schema["required"] = list(spec.required)
    constraints: list[dict[str, Any]] = [
        {"oneOf": [{"required": [name]} for name in group]} for group in spec.one_of
    ]
    constraints += [{"not": {"required": list(group)}} for group in spec.at_most_one]
    constraints += [{"anyOf": [{"required": [name]} for name in group]} for group in spec.any_of]
    if constraints:
        schema["allOf"] = constraints
    return schema


def _render_tagged(spec: Tagged) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [spec.tag],
        "properties": {spec.tag: {"enum": list(spec.variants)}},
        "allOf": [
            {
                "if": {"properties": {spec.tag: {"const": name}}},
                "then": _render_object(variant, tag=(spec.tag, name)),
            }
            for name, variant in spec.variants.items()
        ],
    }
