"""Parse and validate a policy document, collecting every error before raising.

The same parser runs at synth time (the construct library validates the policy from config, so
a broken policy never deploys), in the Lambda (a parameter that does not parse is a failed load,
never a policy), and in ``kernel-access policy lint``. It never raises anything but
:class:`PolicyValidationError` for bad input, whatever JSON it is given.

The document's shape is data, :data:`POLICY_SPEC` (:mod:`kernel_access.fields`): the parser takes its
field names and required fields from it, and ``kernel-access policy schema`` renders it as the
JSON Schema shipped in :mod:`kernel_access.schemas`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel_access.fields import AnyObject, Array, Bool, Int, Map, Object, Str
from kernel_access.policy.document import Policy
from kernel_access.policy.groups import (
    ATTRIBUTE_NAME_RE,
    ATTRIBUTE_VALUE_RE,
    EMPTY_ATTRIBUTES,
    MAX_ATTRIBUTES_PER_PARTNER,
    PartnerSets,
    Selector,
    canonical,
)
from kernel_access.policy.model import (
    DEFAULT_MAX_DURATION,
    MAX_DURATION,
    MIN_DURATION,
    CodeArtifactAccess,
    CodeArtifactCondition,
    Effect,
    IPNetwork,
    PartnerInfo,
    PolicyIssue,
    PolicyValidationError,
    Rule,
    SessionPolicy,
)
from kernel_access.policy.patterns import MAX_PATTERN_LENGTH, PrincipalPattern
from kernel_access.policy.timewindow import DAY_NAMES, HHMM_RE, TimeWindow, parse_hhmm
from kernel_access.validation import (
    ACCOUNT_ID_RE,
    CODEARTIFACT_DOMAIN_RE,
    CODEARTIFACT_REPOSITORY_RE,
    IDENTIFIER_RE,
    ORG_ID_RE,
    PARTNER_NAME_RE,
    ROLE_NAME_RE,
    Collector,
    ValidationError,
    json_type_name,
    matching,
    require_account_id,
    require_org_id,
    require_partner_name,
    require_role_name,
)

T = TypeVar("T")

RULE_ID_RE: Final = IDENTIFIER_RE
DOMAIN_RE: Final = CODEARTIFACT_DOMAIN_RE
REPOSITORY_RE: Final = CODEARTIFACT_REPOSITORY_RE
MANAGED_POLICY_ARN_RE: Final = re.compile(
    r"^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\w+=,.@/-]{1,512}$", re.ASCII
)
#: STS limits: an inline session policy of at most 2048 characters, at most 10 managed policies.
MAX_INLINE_POLICY_CHARS: Final = 2048
MAX_MANAGED_POLICIES: Final = 10
MAX_VERSION_LENGTH: Final = 128
MAX_DESCRIPTION_LENGTH: Final = 1024


#: Any string without a non-space character is no version.
VERSION_RE: Final = re.compile(r"\S")

# --- the document's shape: one definition the parser reads and `kernel-access policy schema` shows ---


#: The values of ``effect`` and of ``codeartifact.access``.
EFFECTS: Final = ("allow", "deny")
CODEARTIFACT_ACCESS: Final = ("read", "publish")


def _condition(item: Str, description: str) -> Array:
    """A rule condition: a non-empty list of admitted values."""
    return Array(item, description=description + " (omit the field to match any value)")


#: ``{attribute: [values]}``: a partner matches when it has every attribute with a listed value.
SELECTOR_SPEC: Final = Map(
    keys=Str(pattern=ATTRIBUTE_NAME_RE),
    values=Array(Str(pattern=ATTRIBUTE_VALUE_RE)),
    min_properties=1,
    description="attribute -> admitted values; a partner matches when it has every attribute "
    "with one of its values (every attribute must be one some partner carries)",
)
PARTNER_SPEC: Final = Object(
    {
        "account_id": Str(pattern=ACCOUNT_ID_RE, description="the account the partner's trust binds it to"),
        "in_organization": Bool(),
        "organization_id": Str(pattern=ORG_ID_RE, description="in-organization partners only"),
        "attributes": Map(
            keys=Str(pattern=ATTRIBUTE_NAME_RE),
            values=Str(pattern=ATTRIBUTE_VALUE_RE),
            max_properties=MAX_ATTRIBUTES_PER_PARTNER,
            description="what rules select partners by (partner_attributes, groups)",
        ),
    },
    required=("account_id", "in_organization"),
)
CODEARTIFACT_SPEC: Final = Object(
    {
        "domains": Array(Str(pattern=DOMAIN_RE)),
        "repositories": _condition(Str(pattern=REPOSITORY_RE), "CodeArtifact repositories"),
        "access": Str(enum=CODEARTIFACT_ACCESS, description="required on an allow rule"),
    },
    required=("domains",),
)
TIME_WINDOW_SPEC: Final = Object(
    {
        "days": Array(Str(enum=DAY_NAMES)),
        "start": Str(pattern=HHMM_RE, description="HH:MM, 00:00-23:59"),
        "end": Str(pattern=HHMM_RE, description="HH:MM, 00:01-24:00, not start"),
        "timezone": Str(min_length=1, description="an IANA time zone, e.g. Europe/London"),
    },
    required=("days", "start", "end", "timezone"),
)
SESSION_POLICY_SPEC: Final = Object(
    {
        "inline": AnyObject(
            description=f"an IAM policy; at most {MAX_INLINE_POLICY_CHARS} characters as compact JSON"
        ),
        "managed_policy_arns": Array(Str(pattern=MANAGED_POLICY_ARN_RE), max_items=MAX_MANAGED_POLICIES),
    },
    any_of=(("inline", "managed_policy_arns"),),
)
RULE_SPEC: Final = Object(
    {
        "id": Str(pattern=RULE_ID_RE),
        "effect": Str(enum=EFFECTS),
        "description": Str(max_length=MAX_DESCRIPTION_LENGTH),
        "partners": _condition(Str(pattern=PARTNER_NAME_RE), "partners of the document's partners map"),
        "partner_groups": _condition(Str(pattern=PARTNER_NAME_RE), "groups of the document's groups"),
        "partner_attributes": SELECTOR_SPEC,
        "accounts": _condition(Str(pattern=ACCOUNT_ID_RE), "the partner's account"),
        "organization_ids": _condition(Str(pattern=ORG_ID_RE), "the partner's organization"),
        "principal_arns": _condition(
            Str(min_length=1, max_length=MAX_PATTERN_LENGTH), "caller ARN patterns ('*' wildcards)"
        ),
        "roles": _condition(Str(pattern=ROLE_NAME_RE), "target roles"),
        "codeartifact": CODEARTIFACT_SPEC,
        "source_cidrs": _condition(Str(min_length=1), "IPv4/IPv6 networks in CIDR notation"),
        "time_window": TIME_WINDOW_SPEC,
        "max_duration": Int(MIN_DURATION, MAX_DURATION, default=DEFAULT_MAX_DURATION, description="seconds"),
        "session_policy": SESSION_POLICY_SPEC,
    },
    required=("id", "effect"),
)
POLICY_SPEC: Final = Object(
    {
        "$schema": Str(description="the JSON Schema editors check the document with (ignored)"),
        "version": Str(pattern=VERSION_RE, max_length=MAX_VERSION_LENGTH),
        "partners": Map(keys=Str(pattern=PARTNER_NAME_RE), values=PARTNER_SPEC),
        "groups": Map(keys=Str(pattern=PARTNER_NAME_RE), values=SELECTOR_SPEC),
        "rules": Array(RULE_SPEC, min_items=0, description="first match wins; no match denies"),
    },
    required=("version", "partners", "rules"),
)

DOCUMENT_FIELDS: Final = POLICY_SPEC.names
PARTNER_FIELDS: Final = PARTNER_SPEC.names
RULE_FIELDS: Final = RULE_SPEC.names
CODEARTIFACT_FIELDS: Final = CODEARTIFACT_SPEC.names
TIME_WINDOW_FIELDS: Final = TIME_WINDOW_SPEC.names
SESSION_POLICY_FIELDS: Final = SESSION_POLICY_SPEC.names


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the *last* duplicate silently; in a security policy that hides edits.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _network(text: str, _field: str) -> IPNetwork:
    try:
        # strict=True: "10.0.0.1/8" has host bits set, which usually means a typo.
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a valid IPv4/IPv6 CIDR ({exc})") from None


def _day(text: str, _field: str) -> int:
    if text not in DAY_NAMES:
        raise ValueError(f"must be one of {', '.join(DAY_NAMES)}, got {text!r}")
    return DAY_NAMES.index(text)


def _pattern(text: str, _field: str) -> PrincipalPattern:
    return PrincipalPattern.compile(text)


def _claim_account(owner_of: dict[str, str], account: str, name: str, field: str, c: Collector) -> bool:
    """One account is at most one partner: the account is what IAM binds a session to."""
    owner = owner_of.setdefault(account, name)
    if owner != name:
        c.error(
            None,
            f"{field}.account_id",
            f"account {account} is already partner {owner!r}'s: one account is at most one partner",
        )
        return False
    return True


def _parse_partners(value: object, c: Collector) -> dict[str, PartnerInfo]:
    partners: dict[str, PartnerInfo] = {}
    owner_of: dict[str, str] = {}  # account -> partner (a dict: parsing stays linear at 5,000 partners)
    mapping = c.mapping(value, None, "partners")
    if mapping is None:
        return partners
    for name, raw in mapping.items():
        field = f"partners.{name}"
        name_ok = True
        try:
            require_partner_name(name, field)
        except ValidationError as exc:
            c.error(None, field, exc.message)
            name_ok = False
        info = c.mapping(raw, None, field)
        if info is None:
            continue
        c.unknown_fields(info, PARTNER_FIELDS, None, field)
        account = info.get("account_id")
        account_ok = True
        try:
            require_account_id(account, f"{field}.account_id")
        except ValidationError as exc:
            c.error(None, exc.field, exc.message)
            account_ok = False
        in_org = info.get("in_organization")
        if not isinstance(in_org, bool):
            c.error(None, f"{field}.in_organization", f"must be a boolean, got {json_type_name(in_org)}")
            continue
        organization = info.get("organization_id")
        organization_ok = True
        if "organization_id" in info:  # present means a valid id: an explicit null is an error
            try:
                require_org_id(organization, f"{field}.organization_id")
            except ValidationError as exc:
                c.error(None, exc.field, exc.message)
                organization_ok = False
            else:
                if not in_org:
                    # Only in-organization partners' trust is conditioned on aws:PrincipalOrgID; for
                    # an external partner nothing IAM enforced says which organization it is in.
                    c.error(
                        None,
                        f"{field}.organization_id",
                        "only in-organization partners have an organization "
                        "(set in_organization to true or drop organization_id)",
                    )
                    organization_ok = False
        attributes = (
            _parse_attributes(info["attributes"], f"{field}.attributes", c) if "attributes" in info else {}
        )
        if account_ok and name_ok:
            account_ok = _claim_account(owner_of, cast("str", account), name, field, c)
        if name_ok and account_ok and organization_ok and attributes is not None:
            partners[name] = PartnerInfo(
                account_id=cast("str", account),
                in_organization=in_org,
                organization_id=cast("str | None", organization),
                attributes=MappingProxyType(attributes) if attributes else EMPTY_ATTRIBUTES,
            )
    return partners


def _parse_attributes(value: object, field: str, c: Collector) -> dict[str, str] | None:
    mapping = c.mapping(value, None, field)
    if mapping is None:
        return None
    ok = True
    if len(mapping) > MAX_ATTRIBUTES_PER_PARTNER:
        c.error(None, field, f"at most {MAX_ATTRIBUTES_PER_PARTNER} attributes, got {len(mapping)}")
        ok = False
    out: dict[str, str] = {}
    for name, text in mapping.items():
        if not ATTRIBUTE_NAME_RE.fullmatch(name):
            c.error(None, f"{field}.{name}", "attribute names are 1-32 of [a-z0-9_], starting with a letter")
            ok = False
        elif not isinstance(text, str) or not ATTRIBUTE_VALUE_RE.fullmatch(text):
            c.error(
                None, f"{field}.{name}", f"must be 1-256 printable characters, got {json_type_name(text)}"
            )
            ok = False
        else:
            out[name] = text
    return out if ok else None


def _parse_selector(
    value: object, rule_id: str | None, field: str, known: frozenset[str], c: Collector
) -> Selector | None:
    """``{attribute: [values, ...]}``: every attribute named must be one some partner carries."""
    mapping = c.mapping(value, rule_id, field)
    if mapping is None:
        return None
    if not mapping:
        c.error(rule_id, field, "must name at least one attribute")
        return None
    before = len(c.issues)
    selector: dict[str, frozenset[str]] = {}
    for name, raw_values in mapping.items():
        if name not in known:
            c.error(
                rule_id,
                f"{field}.{name}",
                f"unknown attribute {name!r} (no partner in the document has it"
                + (f"; known: {', '.join(sorted(known))})" if known else ")"),
            )
            continue
        values = c.string_list(
            raw_values, rule_id, f"{field}.{name}", matching(ATTRIBUTE_VALUE_RE, "must be printable")
        )
        if values is not None:
            selector[name] = frozenset(values)
    return canonical(selector) if len(c.issues) == before else None


def _parse_groups(value: object, sets: PartnerSets, c: Collector) -> dict[str, Selector]:
    groups: dict[str, Selector] = {}
    mapping = c.mapping(value, None, "groups")
    if mapping is None:
        return groups
    for name, raw in mapping.items():
        field = f"groups.{name}"
        try:
            require_partner_name(name, field)
        except ValidationError as exc:
            c.error(None, field, f"group names follow partner names: {exc.message}")
            continue
        selector = _parse_selector(raw, None, field, sets.known_attributes, c)
        if selector is not None:
            groups[name] = selector
    return groups


def _parse_codeartifact(
    value: object, effect: Effect | None, rule_id: str | None, c: Collector
) -> CodeArtifactCondition | None:
    mapping = c.mapping(value, rule_id, "codeartifact")
    if mapping is None:
        return None
    c.unknown_fields(mapping, CODEARTIFACT_FIELDS, rule_id, "codeartifact")
    domains: list[str] | None = None
    if "domains" not in mapping:
        c.error(rule_id, "codeartifact.domains", "is required")
    else:
        domains = c.string_list(
            mapping["domains"],
            rule_id,
            "codeartifact.domains",
            matching(DOMAIN_RE, "must be a CodeArtifact domain name (2-50 of [a-z0-9-])"),
        )
    repositories: list[str] | None = None
    repositories_ok = True
    if "repositories" in mapping:
        repositories = c.string_list(
            mapping["repositories"],
            rule_id,
            "codeartifact.repositories",
            matching(REPOSITORY_RE, "must be a CodeArtifact repository name (2-100 of [A-Za-z0-9._-])"),
        )
        repositories_ok = repositories is not None
    access: CodeArtifactAccess | None = None
    access_ok = True
    if "access" in mapping:
        raw_access = mapping["access"]
        if raw_access in CODEARTIFACT_ACCESS:
            access = cast("CodeArtifactAccess", raw_access)
        else:
            c.error(rule_id, "codeartifact.access", f'must be "read" or "publish", got {raw_access!r}')
            access_ok = False
    elif effect == "allow":
        c.error(rule_id, "codeartifact.access", 'is required on an allow rule ("read" or "publish")')
        access_ok = False
    if domains is None or not repositories_ok or not access_ok:
        return None
    return CodeArtifactCondition(
        domains=frozenset(domains),
        repositories=frozenset(repositories) if repositories is not None else None,
        access=access,
    )


def _parse_time_window(value: object, rule_id: str | None, c: Collector) -> TimeWindow | None:
    mapping = c.mapping(value, rule_id, "time_window")
    if mapping is None:
        return None
    c.unknown_fields(mapping, TIME_WINDOW_FIELDS, rule_id, "time_window")
    ok = True
    for required in TIME_WINDOW_SPEC.required:
        if required not in mapping:
            c.error(rule_id, f"time_window.{required}", "is required")
            ok = False
    days = c.string_list(mapping["days"], rule_id, "time_window.days", _day) if "days" in mapping else None
    start = end = None
    if "start" in mapping and (text := c.string(mapping["start"], rule_id, "time_window.start")) is not None:
        try:
            start = parse_hhmm(text, allow_24=False)
        except ValueError as exc:
            c.error(rule_id, "time_window.start", str(exc))
    if "end" in mapping and (text := c.string(mapping["end"], rule_id, "time_window.end")) is not None:
        try:
            end = parse_hhmm(text, allow_24=True)
        except ValueError as exc:
            c.error(rule_id, "time_window.end", str(exc))
    if start is not None and end is not None and start == end:
        c.error(rule_id, "time_window.end", "must differ from start (an empty window never matches)")
        ok = False
    zone: ZoneInfo | None = None
    if (
        "timezone" in mapping
        and (name := c.string(mapping["timezone"], rule_id, "time_window.timezone")) is not None
    ):
        zone = _zone(name, rule_id, c)
    if not ok or days is None or start is None or end is None or zone is None:
        return None
    return TimeWindow(days=frozenset(days), start_minute=start, end_minute=end, timezone=zone)


def _zone(name: str, rule_id: str | None, c: Collector) -> ZoneInfo | None:
    # ZoneInfo accepts odd keys (absolute paths are refused, but "../x" style keys raise ValueError);
    # any failure is a bad time zone, not a crash.
    if not name or name != name.strip() or "\x00" in name:
        c.error(rule_id, "time_window.timezone", f"unknown IANA time zone {name!r}")
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        c.error(rule_id, "time_window.timezone", f"unknown IANA time zone {name!r}")
        return None


def _parse_session_policy(value: object, rule_id: str | None, c: Collector) -> SessionPolicy | None:
    mapping = c.mapping(value, rule_id, "session_policy")
    if mapping is None:
        return None
    c.unknown_fields(mapping, SESSION_POLICY_FIELDS, rule_id, "session_policy")
    ok = True
    inline_json: str | None = None
    if "inline" in mapping:
        inline = mapping["inline"]
        if not isinstance(inline, Mapping):
            c.error(rule_id, "session_policy.inline", f"must be a JSON object, got {json_type_name(inline)}")
            ok = False
        else:
            try:
                inline_json = json.dumps(inline, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                c.error(
                    rule_id, "session_policy.inline", f"cannot be serialised as JSON ({type(exc).__name__})"
                )
                ok = False
            if inline_json is not None and len(inline_json) > MAX_INLINE_POLICY_CHARS:
                c.error(
                    rule_id,
                    "session_policy.inline",
                    f"is {len(inline_json)} characters when serialised compactly; "
                    f"STS accepts at most {MAX_INLINE_POLICY_CHARS}",
                )
                ok = False
    arns: list[str] = []
    if "managed_policy_arns" in mapping:
        parsed = c.string_list(
            mapping["managed_policy_arns"],
            rule_id,
            "session_policy.managed_policy_arns",
            matching(
                MANAGED_POLICY_ARN_RE,
                "must be an IAM managed policy ARN (arn:aws:iam::aws|ACCOUNT:policy/...)",
            ),
        )
        if parsed is None:
            ok = False
        elif len(parsed) > MAX_MANAGED_POLICIES:
            c.error(
                rule_id,
                "session_policy.managed_policy_arns",
                f"has {len(parsed)} ARNs; STS accepts at most {MAX_MANAGED_POLICIES}",
            )
            ok = False
        else:
            arns = parsed
    if "inline" not in mapping and "managed_policy_arns" not in mapping:
        c.error(rule_id, "session_policy", "must have inline and/or managed_policy_arns")
        ok = False
    if not ok:
        return None
    return SessionPolicy(inline_json=inline_json, managed_policy_arns=tuple(arns))


def _parse_rule_id(mapping: Mapping[str, Any], label: str, c: Collector) -> str | None:
    raw_id = mapping.get("id")
    if "id" not in mapping:
        c.error(None, f"{label}.id", "is required")
        return None
    if not isinstance(raw_id, str) or not RULE_ID_RE.fullmatch(raw_id):
        c.error(None, f"{label}.id", f"must be 1-64 characters of [A-Za-z0-9._-], got {raw_id!r}")
        return None
    return raw_id


def _parse_effect(mapping: Mapping[str, Any], where: str, c: Collector) -> Effect | None:
    raw_effect = mapping.get("effect")
    if "effect" not in mapping:
        c.error(where, "effect", 'is required ("allow" or "deny")')
        return None
    if raw_effect not in EFFECTS:
        c.error(where, "effect", f'must be "allow" or "deny", got {raw_effect!r}')
        return None
    return cast("Effect", raw_effect)


def _parse_description(mapping: Mapping[str, Any], where: str, c: Collector) -> str | None:
    if "description" not in mapping:
        return None
    description = c.string(mapping["description"], where, "description")
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        c.error(where, "description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    return description


def _parse_max_duration(mapping: Mapping[str, Any], where: str, c: Collector) -> int:
    if "max_duration" not in mapping:
        return DEFAULT_MAX_DURATION
    raw_duration = mapping["max_duration"]
    if isinstance(raw_duration, bool) or not isinstance(raw_duration, int):
        c.error(
            where, "max_duration", f"must be an integer number of seconds, got {json_type_name(raw_duration)}"
        )
        return DEFAULT_MAX_DURATION
    if not MIN_DURATION <= raw_duration <= MAX_DURATION:
        c.error(
            where,
            "max_duration",
            f"must be between {MIN_DURATION} and {MAX_DURATION} seconds (role chaining caps sessions "
            f"at one hour), got {raw_duration}",
        )
        return DEFAULT_MAX_DURATION
    return raw_duration


def _frozen(values: list[T] | None) -> frozenset[T] | None:
    return frozenset(values) if values is not None else None


@dataclass(frozen=True)
class _Partners:
    """What rules are checked against: the partners map, its groups and their resolver."""

    partners: Mapping[str, PartnerInfo]
    #: False when the partners map had errors ("unknown partner" in rules would only be noise).
    ok: bool
    groups: Mapping[str, Selector]
    sets: PartnerSets


def _parse_partner_selection(
    mapping: Mapping[str, Any], where: str, known: _Partners, c: Collector
) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """``partner_groups`` and ``partner_attributes`` compiled to the partner sets they admit."""
    group_members = attribute_members = None
    if "partner_groups" in mapping:

        def known_group(text: str, _field: str) -> str:
            if known.ok and text not in known.groups:
                raise ValueError(f"unknown group {text!r} (not in the document's groups)")
            return text

        names = c.string_list(mapping["partner_groups"], where, "partner_groups", known_group)
        if names is not None and known.ok:
            group_members = known.sets.union([known.groups[name] for name in names])
    if "partner_attributes" in mapping:
        selector = _parse_selector(
            mapping["partner_attributes"], where, "partner_attributes", known.sets.known_attributes, c
        )
        if selector is not None:
            attribute_members = known.sets.members(selector)
    return group_members, attribute_members


def _parse_rule(raw: object, index: int, known: _Partners, c: Collector) -> Rule | None:
    label = f"rules[{index}]"
    mapping = c.mapping(raw, None, label)
    if mapping is None:
        return None
    before = len(c.issues)
    rule_id = _parse_rule_id(mapping, label, c)
    # Errors of a rule without a usable id are reported against its position.
    where = rule_id if rule_id is not None else label
    c.unknown_fields(mapping, RULE_FIELDS, where, "")
    effect = _parse_effect(mapping, where, c)
    description = _parse_description(mapping, where, c)

    def known_partner(text: str, _field: str) -> str:
        if known.ok and text not in known.partners:
            raise ValueError(f"unknown partner {text!r} (not in the document's partners map)")
        return text

    def optional_list(name: str, item: Callable[[str, str], T]) -> list[T] | None:
        return c.string_list(mapping[name], where, name, item) if name in mapping else None

    rule_partners = optional_list("partners", known_partner)
    group_members, attribute_members = _parse_partner_selection(mapping, where, known, c)
    accounts = optional_list("accounts", require_account_id)
    org_ids = optional_list("organization_ids", require_org_id)
    principals = optional_list("principal_arns", _pattern)
    roles = optional_list("roles", require_role_name)
    cidrs = optional_list("source_cidrs", _network)
    codeartifact = (
        _parse_codeartifact(mapping["codeartifact"], effect, where, c) if "codeartifact" in mapping else None
    )
    if "roles" in mapping and "codeartifact" in mapping:
        c.error(
            where,
            "codeartifact",
            "a rule cannot have both roles (credential requests) and codeartifact (token requests); "
            "split it into two rules",
        )
    window = _parse_time_window(mapping["time_window"], where, c) if "time_window" in mapping else None
    max_duration = _parse_max_duration(mapping, where, c)
    session_policy = (
        _parse_session_policy(mapping["session_policy"], where, c) if "session_policy" in mapping else None
    )

    if len(c.issues) != before or rule_id is None or effect is None:
        return None
    return Rule(
        id=rule_id,
        effect=effect,
        description=description,
        partners=_frozen(rule_partners),
        group_members=group_members,
        attribute_members=attribute_members,
        accounts=_frozen(accounts),
        organization_ids=_frozen(org_ids),
        principal_arns=tuple(principals) if principals is not None else None,
        roles=_frozen(roles),
        codeartifact=codeartifact,
        source_cidrs=tuple(cidrs) if cidrs is not None else None,
        time_window=window,
        max_duration=max_duration,
        session_policy=session_policy,
    )


def _parse_rules(value: object, known: _Partners, c: Collector) -> list[Rule]:
    rules: list[Rule] = []
    if not isinstance(value, list):
        c.error(None, "rules", f"must be an array, got {json_type_name(value)}")
        return rules
    seen: set[str] = set()
    for index, raw_rule in enumerate(value):
        rule_id = raw_rule.get("id") if isinstance(raw_rule, Mapping) else None
        if isinstance(rule_id, str):
            if rule_id in seen:
                c.error(rule_id, "id", f"duplicate rule id (rules[{index}])")
            seen.add(rule_id)
        rule = _parse_rule(raw_rule, index, known, c)
        if rule is not None:
            rules.append(rule)
    return rules


def _invalid(c: Collector) -> PolicyValidationError:
    """The collected issues as the policy reports them: per rule id, else per document."""
    return PolicyValidationError([PolicyIssue(issue.scope, issue.path, issue.message) for issue in c.issues])


def _load_json(document: str | bytes) -> object:
    try:
        return json.loads(document, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise PolicyValidationError([PolicyIssue(None, "document", "JSON nested too deeply")]) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, duplicate keys
        raise PolicyValidationError([PolicyIssue(None, "document", f"not valid JSON: {exc}")]) from None


def _parse_version(mapping: Mapping[str, Any], c: Collector) -> str:
    if "version" not in mapping:
        c.error(None, "version", "is required")
        return ""
    text = c.string(mapping["version"], None, "version")
    if text is None:
        return ""
    if not VERSION_RE.search(text) or len(text) > MAX_VERSION_LENGTH:
        c.error(None, "version", f"must be a non-empty string of at most {MAX_VERSION_LENGTH} characters")
    return text


def parse_policy(document: Mapping[str, Any] | str | bytes) -> Policy:
    """Validate ``document`` (a mapping, or its JSON text) and return the :class:`Policy`.

    Raises :class:`PolicyValidationError` listing *every* problem found.
    """
    raw: object = _load_json(document) if isinstance(document, str | bytes) else document
    c = Collector(empty_list_hint="omit the field to match any value")
    mapping = c.mapping(raw, None, "document")
    if mapping is None:
        raise _invalid(c)
    c.unknown_fields(mapping, DOCUMENT_FIELDS, None, "")
    if "$schema" in mapping:  # for editors; ignored, but never anything but a string
        c.string(mapping["$schema"], None, "$schema")
    version = _parse_version(mapping, c)

    partners: dict[str, PartnerInfo] = {}
    partners_ok = False
    if "partners" not in mapping:
        c.error(None, "partners", "is required (an object mapping partner names to their account)")
    else:
        before = len(c.issues)
        partners = _parse_partners(mapping["partners"], c)
        # With a broken partners map, "unknown partner" errors in rules would only be noise.
        partners_ok = len(c.issues) == before

    sets = PartnerSets({name: info.attributes for name, info in partners.items()})
    before = len(c.issues)
    groups = _parse_groups(mapping["groups"], sets, c) if "groups" in mapping else {}
    known = _Partners(partners, partners_ok and len(c.issues) == before, groups, sets)

    rules: list[Rule] = []
    if "rules" not in mapping:
        c.error(None, "rules", "is required (an array of rules; an empty array denies everything)")
    else:
        rules = _parse_rules(mapping["rules"], known, c)

    if c.issues:
        raise _invalid(c)
    return Policy(version=version, partners=MappingProxyType(dict(partners)), rules=tuple(rules))
