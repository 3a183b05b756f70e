"""Partner attributes and named groups, compiled to partner sets when the policy is parsed.

An organization of thousands of accounts cannot be governed by rules that list partners by name:
a rule for "every production workload" would be as long as the organization and every onboarding
would edit it. So partners carry attributes (``environment``, ``tier``, ``business_unit``, an OU
path, ...) and rules select partners by them — directly (``partner_attributes``) or through a named
group the document defines once (``groups``).

Why compile at parse time: every partner is in the document, so the partners a selector admits
are known before the first request. A selector becomes a ``frozenset`` of partner names and a
request pays one set lookup, whatever the number of partners. Rules that use the same selector
share one set (the resolver caches by selector), so 2,000 rules naming the same group cost one set.

Matching: a partner satisfies a selector when, for every attribute the selector names, the
partner has that attribute and its value is one of the listed values. A partner without the
attribute does not satisfy it (its absence is known, not unknown). A caller that is no partner at
all cannot be evaluated: like every unknown, that fails an allow rule and trips a deny rule
(see ``evaluate``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, TypeAlias

#: Attribute names: short identifiers (they appear in rules and in operators' tooling).
ATTRIBUTE_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$", re.ASCII)
#: Attribute values: 1-256 printable ASCII characters (an OU path such as
#: ``o-abc/r-ab12/ou-ab12-11111111/`` fits).
ATTRIBUTE_VALUE_RE: Final = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,255}$", re.ASCII)
MAX_ATTRIBUTES_PER_PARTNER: Final = 20

#: A selector in canonical form: attribute name -> admitted values, sorted by name.
Selector: TypeAlias = tuple[tuple[str, frozenset[str]], ...]


def canonical(selector: Mapping[str, frozenset[str]]) -> Selector:
    return tuple(sorted(selector.items()))


class PartnerSets:
    """Resolves selectors against the document's partners; one shared set per distinct selector."""

    def __init__(self, attributes: Mapping[str, Mapping[str, str]]) -> None:
        self._attributes = attributes
        self._cache: dict[Selector, frozenset[str]] = {}
        self.known_attributes: frozenset[str] = frozenset(
            name for partner_attributes in attributes.values() for name in partner_attributes
        )

    def members(self, selector: Selector) -> frozenset[str]:
        found = self._cache.get(selector)
        if found is None:
            found = frozenset(
                partner
                for partner, values in self._attributes.items()
                if all(values.get(name) in admitted for name, admitted in selector)
            )
            self._cache[selector] = found
        return found

    def union(self, selectors: list[Selector]) -> frozenset[str]:
        if len(selectors) == 1:
            return self.members(selectors[0])
        return frozenset().union(*(self.members(s) for s in selectors))


EMPTY_ATTRIBUTES: Final[Mapping[str, str]] = MappingProxyType({})
