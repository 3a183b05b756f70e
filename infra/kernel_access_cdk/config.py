"""The ``"kernel-access"`` configuration (cdk.json context) as validated, frozen dataclasses.

Every invalid value fails synth with a :class:`ConfigError` whose message names the partner (where
there is one) and the field, so a platform team can fix cdk.json without reading a stack trace.
Identifier formats come from :mod:`kernel_access.validation`, the same validators the runtime uses,
and the vending policy is checked with :func:`kernel_access.policy.parse_policy`, the same parser the
Lambda uses: a policy that synthesises is a policy the Lambda accepts. The optional ``exchange``
section (OIDC token exchange) is checked the same way with
:func:`kernel_access.exchange.parse_exchange_config`, plus the cross-checks only the kernel config
can make (target roles exist, CodeArtifact targets name the kernel's domain, trust policies name a
configured issuer).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kernel_access import validation
from kernel_access.contract import EXAMPLE_SERVICE_FLAG
from kernel_access.ratelimit import DEFAULT_LIMIT, DEFAULT_SESSION_LIMIT
from kernel_access.validation import ValidationError

from .limits import QUOTA_MAXIMA, STACKSET_ORGANIZATIONAL_UNITS, Limits
from .monitoring import MonitoringThresholds

#: CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
#: Upstream names this library knows how to connect (CodeArtifact external connections).
KNOWN_UPSTREAMS: Final = {"pypi": "public:pypi", "npmjs": "public:npmjs"}
#: Defaults of the ``audit`` section, also the defaults of ``AuditTable`` and ``AuditArchive``.
DEFAULT_BREAK_GLASS_ROLE: Final = "kernel-access-audit-break-glass"
#: Seven years: a common retention for security records.
DEFAULT_ARCHIVE_RETENTION_DAYS: Final = 2557

_TOP_LEVEL_FIELDS: Final = frozenset(
    {
        "kernel_account",
        "region",
        "organization_id",
        "name_suffix",
        "partners",
        "target_roles",
        "codeartifact",
        "audit",
        "log_retention_days",
        "rate_limit",
        "api_throttling",
        "policy_max_staleness_seconds",
        "policy",
        "vending_api_url",
        "powertools_layer_version",
        "exchange",
        EXAMPLE_SERVICE_FLAG,
        "monitoring",
        "limits",
        "partner_rollout",
    }
)
_PARTNER_FIELDS: Final = frozenset(
    {"name", "account_id", "in_organization", "region", "external_id", "attributes"}
)
#: Keys of the ``policy`` section: the policy document without ``partners`` (derived from the list).
_POLICY_FIELDS: Final = frozenset({"version", "groups", "rules"})
_TARGET_ROLE_FIELDS: Final = frozenset({"name", "description", "managed_policy_arns", "inline_policy"})
_AUDIT_FIELDS: Final = frozenset({"retention_days", "break_glass_role", "archive_retention_days"})
#: IAM's limit on a role's inline policies (characters, whitespace excluded).
INLINE_POLICY_LIMIT: Final = 10_240
#: Keys of the ``exchange`` section that form the exchange configuration document (what the
#: exchange Lambda reads from SSM); the others are deployment settings of the ``TokenExchange``.
_EXCHANGE_DOCUMENT_FIELDS: Final = frozenset({"version", "issuers", "trust_policies", "targets"})
_EXCHANGE_FIELDS: Final = _EXCHANGE_DOCUMENT_FIELDS | {"rate_limit", "api_throttling"}
_MONITORING_FIELDS: Final = frozenset({"alarm_emails", "topic_arn", "runbook_url", "thresholds"})
#: Deliberately loose: SNS confirms the address; this only catches a name typed in the wrong field.
_EMAIL_RE: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_SNS_TOPIC_ARN_RE: Final = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


class ConfigError(validation.ConfigError):
    """The kernel-access configuration is invalid. ``partner`` is None for non-partner fields.

    The runtime's :class:`kernel_access.validation.ConfigError` (one implementation), whose messages
    say they come from the ``kernel-access`` config.
    """

    SOURCE = "kernel-access config"


@dataclass(frozen=True)
class PartnerConfig:
    """One partner account. In-organization partners use the ``kernel-access`` role (trust
    conditioned on ``aws:PrincipalOrgID``); each external one its own
    ``kernel-access-external-<name>`` role trusting its account with its ``sts:ExternalId``."""

    name: str
    account_id: str
    in_organization: bool
    region: str
    external_id: str | None = None
    #: ``(name, value)`` pairs sorted by name: what policy rules select partners by
    #: (``partner_attributes``, ``groups``); a tuple keeps the config hashable.
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TargetRoleConfig:
    """A kernel role the vending service may hand out sessions of.

    ``inline_policy_json`` (canonical JSON of an IAM policy document, or None) is the role's own
    least-privilege policy; every target role also carries the kernel-access permissions boundary,
    whatever its policies grant.
    """

    name: str
    description: str = ""
    managed_policy_arns: tuple[str, ...] = ()
    inline_policy_json: str | None = None

    @property
    def inline_policy(self) -> dict[str, Any] | None:
        """The inline policy document (a fresh copy), or None."""
        if self.inline_policy_json is None:
            return None
        document: dict[str, Any] = json.loads(self.inline_policy_json)
        return document


@dataclass(frozen=True)
class CodeArtifactConfig:
    domain: str
    repository: str = "internal"
    upstreams: tuple[str, ...] = ("pypi", "npmjs")


@dataclass(frozen=True)
class ExchangeSettings:
    """The ``exchange`` section: the OIDC token exchange (``TokenExchange`` in the kernel stack).

    ``document_json`` is the exchange configuration document as written in cdk.json (AWS-role
    targets may still say ``"role": NAME``; the construct substitutes the role's ARN).
    """

    document_json: str
    #: The audience of issuers that list no ``audiences`` (unique to this deployment).
    default_audience: str = ""
    #: CodeArtifact access levels the trust policies can grant (which minting roles are trusted).
    codeartifact_levels: tuple[str, ...] = ()
    rate_limit_requests: int = 20
    rate_limit_window_seconds: int = 60
    api_throttling_rate_limit: int = 20
    api_throttling_burst_limit: int = 40

    @property
    def document(self) -> dict[str, Any]:
        """The exchange configuration document (a fresh copy on every access)."""
        document: dict[str, Any] = json.loads(self.document_json)
        return document


@dataclass(frozen=True)
class MonitoringSettings:
    """The optional ``monitoring`` section (``KernelAccessMonitoring`` in the kernel stack)."""

    #: Addresses subscribed (by email) to the alarm topic; each confirms its subscription.
    alarm_emails: tuple[str, ...] = ()
    #: An existing SNS topic for the alarms. Default: the construct creates an encrypted one.
    topic_arn: str | None = None
    #: Base URL of docs/operations.md for the runbook links. Default: the repository path.
    runbook_url: str | None = None
    thresholds: MonitoringThresholds = field(default_factory=MonitoringThresholds)


@dataclass(frozen=True)
class KernelAccessConfig:
    kernel_account: str
    region: str
    #: None only when no partner is in the organization and there is no CodeArtifact registry.
    organization_id: str | None
    partners: tuple[PartnerConfig, ...]
    target_roles: tuple[TargetRoleConfig, ...]
    #: Canonical JSON of the policy document ``{"version", "partners", "rules"}`` (a string keeps
    #: the dataclass hashable and frozen; see :attr:`policy_document`).
    policy_json: str
    name_suffix: str = ""
    codeartifact: CodeArtifactConfig | None = None
    audit_retention_days: int = 400
    #: The one role the audit table and archive let change or delete records (named, not created).
    audit_break_glass_role: str = DEFAULT_BREAK_GLASS_ROLE
    #: Object Lock (COMPLIANCE) retention of the audit archive; at least ``audit_retention_days``.
    audit_archive_retention_days: int = DEFAULT_ARCHIVE_RETENTION_DAYS
    log_retention_days: int = 365
    #: Requests per partner per window, and per session (never above the partner's).
    rate_limit_requests: int = DEFAULT_LIMIT
    rate_limit_session_requests: int = DEFAULT_SESSION_LIMIT
    rate_limit_window_seconds: int = 60
    api_throttling_rate_limit: int = 50
    api_throttling_burst_limit: int = 100
    policy_max_staleness_seconds: int = 300
    #: URL of the deployed vending API (a CfnOutput of the kernel stack); partner stacks publish it.
    vending_api_url: str | None = None
    powertools_layer_version: int | None = None
    #: The OIDC token exchange; None (no ``exchange`` section) = no exchange is deployed.
    exchange: ExchangeSettings | None = None
    #: Add the example ``EchoService`` (``"example_service": true``); off unless asked for, so a
    #: deployed kernel carries no example code. ``kernel-access local`` turns it on.
    example_service: bool = False
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    #: What the synth-time limits check enforces (``limits`` section; AWS defaults when absent).
    limits: Limits = field(default_factory=Limits)
    #: Partners whose resources a StackSet deploys (``partner_rollout.stackset``); None = none.
    partner_rollout: StackSetRollout | None = None
    _partner_index: Mapping[str, PartnerConfig] = field(default_factory=dict, compare=False, repr=False)

    @property
    def policy_document(self) -> dict[str, Any]:
        """The vending policy document exactly as the Lambda will load it from SSM."""
        document: dict[str, Any] = json.loads(self.policy_json)
        return document

    @property
    def in_org_partners(self) -> tuple[PartnerConfig, ...]:
        return tuple(p for p in self.partners if p.in_organization)

    @property
    def external_partners(self) -> tuple[PartnerConfig, ...]:
        return tuple(p for p in self.partners if not p.in_organization)

    def partner(self, name: str) -> PartnerConfig:
        return self._partner_index[name]


def _require_mapping(value: object, field_name: str, *, partner: str | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(field_name, f"must be an object, got {type(value).__name__}", partner=partner)
    return value


def _require_list(value: object, field_name: str, *, partner: str | None = None) -> Sequence[Any]:
    if not isinstance(value, list):
        raise ConfigError(field_name, f"must be a list, got {type(value).__name__}", partner=partner)
    return value


def _require_str(value: object, field_name: str, *, partner: str | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(field_name, f"must be a non-empty string, got {value!r}", partner=partner)
    return value


def _require_int(value: object, field_name: str, low: int, high: int) -> int:
    # bool is an int subclass: reject it explicitly so `true` never means 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field_name, f"must be an integer in {low}..{high}, got {value!r}")
    return value


def _reject_unknown(raw: Mapping[str, Any], allowed: frozenset[str], where: str, partner: str | None) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}{unknown[0]}", "unknown field", partner=partner)


def _checked(partner: str | None, check: Callable[[object, str], str], value: object, field_name: str) -> str:
    """Run a :mod:`kernel_access.validation` validator and re-raise with the partner's name."""
    try:
        return check(value, field_name)
    except ValidationError as error:
        raise ConfigError(error.field, error.message, partner=partner) from error


def _load_partner(raw: object, index: int, default_region: str) -> PartnerConfig:
    where = f"partners[{index}]"
    entry = _require_mapping(raw, where)
    name_value = entry.get("name")
    # Until the name is known, the message names the list position instead.
    name: str = _checked(None, validation.require_partner_name, name_value, f"{where}.name")
    if name in validation.RESERVED_PARTNER_NAMES:
        raise ConfigError(
            "name",
            f"is reserved: the kernel uses it itself (reserved: {sorted(validation.RESERVED_PARTNER_NAMES)})",
            partner=name,
        )
    _reject_unknown(entry, _PARTNER_FIELDS, "", name)
    account_id: str = _checked(name, validation.require_account_id, entry.get("account_id"), "account_id")
    in_org = entry.get("in_organization")
    if not isinstance(in_org, bool):
        raise ConfigError("in_organization", f"must be true or false, got {in_org!r}", partner=name)
    region = _require_str(entry.get("region", default_region), "region", partner=name)
    external_id: str | None = None
    if in_org:
        if entry.get("external_id") is not None:
            raise ConfigError(
                "external_id",
                "in-organization partners are trusted by aws:PrincipalOrgID; remove external_id "
                "or set in_organization to false",
                partner=name,
            )
    else:
        if entry.get("external_id") is None:
            raise ConfigError(
                "external_id", "external partners need an external_id (sts:ExternalId)", partner=name
            )
        external_id = _checked(name, validation.require_external_id, entry.get("external_id"), "external_id")
    attributes = _load_attributes(entry.get("attributes", {}), name)
    return PartnerConfig(name, account_id, in_org, region, external_id, attributes)


def _load_attributes(raw: object, partner: str) -> tuple[tuple[str, str], ...]:
    """A partner's ``attributes``, sorted by name.

    Their names, values and number are checked by the runtime policy parser together with the rest
    of the document (:func:`_check_policy`, which names this partner and the attribute): one
    definition of the rules, the one the Lambda applies.
    """
    entry = _require_mapping(raw, "attributes", partner=partner)
    return tuple(sorted(entry.items()))


def _load_target_role(raw: object, index: int) -> TargetRoleConfig:
    where = f"target_roles[{index}]"
    entry = _require_mapping(raw, where)
    _reject_unknown(entry, _TARGET_ROLE_FIELDS, f"{where}.", None)
    name: str = _checked(None, validation.require_role_name, entry.get("name"), f"{where}.name")
    if name.startswith(validation.KERNEL_ROLE_PREFIX):
        raise ConfigError(
            f"{where}.name",
            f"{name!r}: role names starting with {validation.KERNEL_ROLE_PREFIX!r} belong to the "
            "partner-facing roles kernel-access creates itself",
        )
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description", "must be a string")
    arns = _require_list(entry.get("managed_policy_arns", []), f"{where}.managed_policy_arns")
    for position, arn in enumerate(arns):
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise ConfigError(
                f"{where}.managed_policy_arns[{position}]", f"must be a policy ARN, got {arn!r}"
            )
    inline_json: str | None = None
    if entry.get("inline_policy") is not None:
        inline_json = _load_inline_policy(entry["inline_policy"], f"{where}.inline_policy")
    if not arns and inline_json is None:
        raise ConfigError(where, "needs managed_policy_arns or an inline_policy (a role that can do nothing)")
    return TargetRoleConfig(name, description, tuple(arns), inline_json)


def _load_inline_policy(raw: object, where: str) -> str:
    """An IAM policy document ``{"Version", "Statement": [...]}`` of explicit statements.

    Only the shape is checked here (IAM checks the grammar at deploy); what is refused is what would
    fail at deploy anyway or defeat least privilege: no statements, ``NotAction``/``NotResource``
    (they grant everything else), and a document over IAM's inline limit.
    """
    document = _require_mapping(raw, where)
    _reject_unknown(document, frozenset({"Version", "Statement"}), f"{where}.", None)
    statements = _require_list(document.get("Statement"), f"{where}.Statement")
    if not statements:
        raise ConfigError(f"{where}.Statement", "must list at least one statement")
    for index, statement in enumerate(statements):
        entry = _require_mapping(statement, f"{where}.Statement[{index}]")
        for broad in ("NotAction", "NotResource", "Principal", "NotPrincipal"):
            if broad in entry:
                raise ConfigError(
                    f"{where}.Statement[{index}].{broad}", "is not allowed in a target role policy"
                )
        if entry.get("Effect") not in ("Allow", "Deny"):
            raise ConfigError(f"{where}.Statement[{index}].Effect", "must be Allow or Deny")
        for required in ("Action", "Resource"):
            if required not in entry:
                raise ConfigError(f"{where}.Statement[{index}].{required}", "is required")
    canonical = json.dumps(
        {"Version": document.get("Version", "2012-10-17"), "Statement": statements},
        sort_keys=True,
        separators=(",", ":"),
    )
    if len(canonical) > INLINE_POLICY_LIMIT:
        raise ConfigError(where, f"is {len(canonical)} characters; IAM allows {INLINE_POLICY_LIMIT}")
    return canonical


def _load_codeartifact(raw: object) -> CodeArtifactConfig:
    entry = _require_mapping(raw, "codeartifact")
    _reject_unknown(entry, frozenset({"domain", "repository", "upstreams"}), "codeartifact.", None)
    domain = _require_str(entry.get("domain"), "codeartifact.domain")
    if not validation.CODEARTIFACT_DOMAIN_RE.fullmatch(domain):
        raise ConfigError("codeartifact.domain", f"must be a CodeArtifact domain name, got {domain!r}")
    repository = _require_str(entry.get("repository", "internal"), "codeartifact.repository")
    if not validation.CODEARTIFACT_REPOSITORY_RE.fullmatch(repository):
        raise ConfigError(
            "codeartifact.repository", f"must be a CodeArtifact repository name, got {repository!r}"
        )
    upstreams = _require_list(entry.get("upstreams", ["pypi", "npmjs"]), "codeartifact.upstreams")
    for position, upstream in enumerate(upstreams):
        if upstream not in KNOWN_UPSTREAMS:
            raise ConfigError(
                f"codeartifact.upstreams[{position}]",
                f"must be one of {sorted(KNOWN_UPSTREAMS)}, got {upstream!r}",
            )
    if len(set(upstreams)) != len(upstreams):
        raise ConfigError("codeartifact.upstreams", "lists an upstream twice")
    return CodeArtifactConfig(domain, repository, tuple(upstreams))


def build_policy_document(
    raw_policy: Mapping[str, Any], partners: Sequence[PartnerConfig], organization_id: str | None
) -> dict[str, Any]:
    """The document the Lambda loads: config's ``version``/``groups``/``rules`` plus the partner map.

    Each partner carries the account (and, in the organization, the organization) its trust
    statement binds it to: the facts rule conditions on ``accounts``/``organization_ids`` compare;
    and its ``attributes``, which ``partner_attributes`` and ``groups`` select by.
    """
    partner_map: dict[str, dict[str, Any]] = {}
    for p in partners:
        entry: dict[str, Any] = {"account_id": p.account_id, "in_organization": p.in_organization}
        if p.in_organization and organization_id is not None:
            entry["organization_id"] = organization_id
        if p.attributes:
            entry["attributes"] = dict(p.attributes)
        partner_map[p.name] = entry
    document: dict[str, Any] = {"version": raw_policy.get("version"), "partners": partner_map}
    if "groups" in raw_policy:
        document["groups"] = raw_policy["groups"]
    document["rules"] = raw_policy.get("rules", [])
    return document


def _check_policy(
    document: Mapping[str, Any], partners: Sequence[PartnerConfig], target_roles: Sequence[TargetRoleConfig]
) -> None:
    role_names = {role.name for role in target_roles}
    partner_names = {partner.name for partner in partners}
    for index, rule in enumerate(_require_list(document.get("rules"), "policy.rules")):
        rule_map = _require_mapping(rule, f"policy.rules[{index}]")
        rule_id = rule_map.get("id", index)
        for role in rule_map.get("roles", []) or []:
            if role not in role_names:
                raise ConfigError(
                    f"policy.rules[{rule_id}].roles",
                    f"unknown role {role!r}; target_roles are {sorted(role_names)}",
                )
        for partner in rule_map.get("partners", []) or []:
            if partner not in partner_names:
                raise ConfigError(
                    f"policy.rules[{rule_id}].partners",
                    f"unknown partner; partners are {sorted(partner_names)}",
                    partner=str(partner),
                )
    # The Lambda's own parser has the last word on everything else (fields, types, ranges).
    from kernel_access.policy import PolicyValidationError, parse_policy

    try:
        parse_policy(document)
    except PolicyValidationError as error:
        first = error.errors[0] if error.errors else None
        field_name, partner = "policy", None
        if first is not None and first.rule_id is None and first.field.startswith("partners."):
            # The partners map is built from the partners list: name the partner and its field.
            _, partner, *rest = first.field.split(".", 2)
            field_name = rest[0] if rest else "partners"
        elif first is not None:
            rule_part = f".rules[{first.rule_id}]" if first.rule_id else ""
            field_name = f"policy{rule_part}.{first.field}"
        raise ConfigError(field_name, str(error), partner=partner) from error


def _resolve_exchange_roles(
    document: dict[str, Any], target_roles: Sequence[TargetRoleConfig], kernel_account: str, name_suffix: str
) -> dict[str, Any]:
    """A copy of ``document`` whose ``"role": NAME`` targets carry the role's ARN instead.

    The copy is only for validation (the real ARN is a CloudFormation token the construct fills in);
    naming the kernel account and suffix makes it the very ARN the role will have.
    """
    checkable: dict[str, Any] = json.loads(json.dumps(document))
    targets = checkable.get("targets")
    if not isinstance(targets, dict):
        return checkable
    role_names = sorted(role.name for role in target_roles)
    for name, spec in targets.items():
        if not isinstance(spec, dict) or spec.get("type") != "aws_role" or "role" not in spec:
            continue
        where = f"exchange.targets.{name}"
        if "role_arn" in spec:
            raise ConfigError(f"{where}.role", "give either 'role' (a target_roles name) or 'role_arn'")
        role = spec.pop("role")
        if role not in role_names:
            raise ConfigError(f"{where}.role", f"unknown role {role!r}; target_roles are {role_names}")
        spec["role_arn"] = f"arn:aws:iam::{kernel_account}:role/{role}{name_suffix}"
    return checkable


def _load_exchange(
    raw: object,
    *,
    kernel_account: str,
    region: str,
    name_suffix: str,
    target_roles: Sequence[TargetRoleConfig],
    codeartifact: CodeArtifactConfig | None,
) -> ExchangeSettings:
    """The ``exchange`` section, validated by the exchange Lambda's own parser plus cross-checks.

    An issuer without ``audiences`` gets the deployment's own audience
    (:func:`kernel_access.exchange.config.default_audience`; the construct fills it in).
    """
    from kernel_access.exchange import ExchangeConfigError, parse_exchange_config
    from kernel_access.exchange.config import CodeArtifactTarget, default_audience, with_default_audiences

    entry = _require_mapping(raw, "exchange")
    _reject_unknown(entry, _EXCHANGE_FIELDS, "exchange.", None)
    document = {key: entry[key] for key in sorted(_EXCHANGE_DOCUMENT_FIELDS) if key in entry}
    audience = default_audience(kernel_account, region, name_suffix)
    issuers = _require_mapping(document.get("issuers", {}), "exchange.issuers")
    if not issuers:
        raise ConfigError(
            "exchange.issuers",
            "must name at least one trusted OIDC issuer (each gets a JWT authorizer and a route); "
            "remove the exchange section to deploy no exchange",
        )
    checkable = _resolve_exchange_roles(
        with_default_audiences(document, audience), target_roles, kernel_account, name_suffix
    )
    try:
        parsed = parse_exchange_config(checkable)
    except ExchangeConfigError as error:
        first = error.errors[0].path if error.errors else ""
        field_name = "exchange" if first in ("", "<document>") else f"exchange.{first}"
        raise ConfigError(field_name, str(error)) from error

    for name, target in sorted(parsed.targets.items()):
        if not isinstance(target, CodeArtifactTarget):
            continue
        where = f"exchange.targets.{name}"
        if codeartifact is None:
            raise ConfigError(
                where, "codeartifact targets need the kernel's registry (the codeartifact section)"
            )
        if target.domain != codeartifact.domain:
            raise ConfigError(
                f"{where}.domain",
                f"must be the kernel's domain {codeartifact.domain!r}: the minting roles may use no other",
            )
        if target.domain_owner not in (None, kernel_account):
            raise ConfigError(f"{where}.domain_owner", f"must be the kernel account {kernel_account}")

    # A trust policy whose issuer matches no configured issuer could never admit a token: a typo.
    urls = sorted(issuer.issuer for issuer in parsed.issuers.values())
    for target_name, policies in sorted(parsed.trust_policies.items()):
        for index, policy in enumerate(policies):
            if not any(policy.issuer.matches(url) for url in urls):
                raise ConfigError(
                    f"exchange.trust_policies.{target_name}[{index}].issuer",
                    f"{policy.issuer.describe()!r} matches none of the issuers in exchange.issuers {urls}",
                )

    rate_limit = _require_mapping(entry.get("rate_limit", {}), "exchange.rate_limit")
    _reject_unknown(rate_limit, frozenset({"requests", "window_seconds"}), "exchange.rate_limit.", None)
    throttling = _require_mapping(entry.get("api_throttling", {}), "exchange.api_throttling")
    _reject_unknown(throttling, frozenset({"rate_limit", "burst_limit"}), "exchange.api_throttling.", None)
    return ExchangeSettings(
        document_json=json.dumps(document, sort_keys=True, separators=(",", ":")),
        default_audience=audience,
        codeartifact_levels=parsed.codeartifact_levels(),
        rate_limit_requests=_require_int(
            rate_limit.get("requests", 20), "exchange.rate_limit.requests", 1, 100_000
        ),
        rate_limit_window_seconds=_require_int(
            rate_limit.get("window_seconds", 60), "exchange.rate_limit.window_seconds", 1, 86_400
        ),
        api_throttling_rate_limit=_require_int(
            throttling.get("rate_limit", 20), "exchange.api_throttling.rate_limit", 1, 100_000
        ),
        api_throttling_burst_limit=_require_int(
            throttling.get("burst_limit", 40), "exchange.api_throttling.burst_limit", 1, 100_000
        ),
    )


def _load_monitoring(raw: object) -> MonitoringSettings:
    section = _require_mapping(raw, "monitoring")
    _reject_unknown(section, _MONITORING_FIELDS, "monitoring.", None)
    emails = _require_list(section.get("alarm_emails", []), "monitoring.alarm_emails")
    for index, email in enumerate(emails):
        if not isinstance(email, str) or not _EMAIL_RE.fullmatch(email):
            raise ConfigError(f"monitoring.alarm_emails[{index}]", f"must be an email address, got {email!r}")
    if len(set(emails)) != len(emails):
        raise ConfigError("monitoring.alarm_emails", "an address is listed twice")
    topic_arn = section.get("topic_arn")
    if topic_arn is not None and (
        not isinstance(topic_arn, str) or not _SNS_TOPIC_ARN_RE.fullmatch(topic_arn)
    ):
        raise ConfigError("monitoring.topic_arn", f"must be an SNS topic ARN, got {topic_arn!r}")
    runbook_url = section.get("runbook_url")
    if runbook_url is not None and (
        not isinstance(runbook_url, str) or not runbook_url.startswith("https://") or "#" in runbook_url
    ):
        raise ConfigError(
            "monitoring.runbook_url", f"must be an https:// URL without '#', got {runbook_url!r}"
        )
    raw_thresholds = _require_mapping(section.get("thresholds", {}), "monitoring.thresholds")
    defaults = MonitoringThresholds()
    overrides: dict[str, Any] = {}
    for name, value in raw_thresholds.items():
        where = f"monitoring.thresholds.{name}"
        if name not in MonitoringThresholds.field_names():
            raise ConfigError(where, "unknown field")
        default = getattr(defaults, name)
        if isinstance(default, int):
            overrides[name] = _require_int(value, where, 1, 1_000_000)
            continue
        high = 1.0 if name.endswith("_fraction_of_timeout") or name.endswith("_fraction_of_limit") else 100.0
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
            raise ConfigError(where, f"must be a number in (0, {high:g}], got {value!r}")
        overrides[name] = float(value)
    thresholds = dataclasses.replace(defaults, **overrides)
    if thresholds.datapoints_to_alarm > thresholds.evaluation_periods:
        raise ConfigError("monitoring.thresholds.datapoints_to_alarm", "must not exceed evaluation_periods")
    if thresholds.period_minutes > 60:
        raise ConfigError("monitoring.thresholds.period_minutes", "must be at most 60")
    return MonitoringSettings(
        alarm_emails=tuple(emails),
        topic_arn=topic_arn,
        runbook_url=runbook_url,
        thresholds=thresholds,
    )


def _load_partners(
    raw: Mapping[str, Any], region: str, organization_id: str | None, kernel_account: str, name_suffix: str
) -> list[PartnerConfig]:
    """Partners, each valid on its own and together: unique names, unique external IDs, and
    identities that cannot collide — one account is at most one partner (the account is what IAM
    binds a session to) and the kernel account is never a partner (every kernel principal allowed
    ``sts:AssumeRole`` would otherwise become that partner)."""
    partners: list[PartnerConfig] = []
    names: set[str] = set()
    seen_external: dict[str, str] = {}
    owner_of: dict[str, str] = {}
    for index, entry in enumerate(_require_list(raw.get("partners"), "partners")):
        partner = _load_partner(entry, index, region)
        if partner.name in names:
            raise ConfigError("name", "partner is listed twice", partner=partner.name)
        names.add(partner.name)
        if partner.account_id == kernel_account:
            raise ConfigError(
                "account_id",
                f"is the kernel account {kernel_account}: the kernel is never a partner",
                partner=partner.name,
            )
        owner = owner_of.setdefault(partner.account_id, partner.name)
        if owner != partner.name:
            raise ConfigError(
                "account_id",
                f"account {partner.account_id} is already partner {owner!r}'s: one account is at most "
                "one partner",
                partner=partner.name,
            )
        if not partner.in_organization:
            role = validation.external_role_name("kernel-access-external" + name_suffix, partner.name)
            if not validation.ROLE_NAME_RE.fullmatch(role):
                raise ConfigError(
                    "name",
                    f"makes the external role name {role!r} longer than IAM's 64 characters "
                    "(shorten the name or the name_suffix)",
                    partner=partner.name,
                )
        if partner.external_id is not None:
            other = seen_external.get(partner.external_id)
            if other is not None:
                raise ConfigError(
                    "external_id",
                    f"is also the external_id of partner {other!r}; each partner needs its own",
                    partner=partner.name,
                )
            seen_external[partner.external_id] = partner.name
        partners.append(partner)
    if not partners:
        raise ConfigError("partners", "must list at least one partner")
    if organization_id is None:
        for partner in partners:
            if partner.in_organization:
                raise ConfigError(
                    "organization_id",
                    "in-organization partners are trusted by aws:PrincipalOrgID: set the kernel's "
                    "organization_id or set in_organization to false",
                    partner=partner.name,
                )

    return partners


def _load_limits(raw: object) -> Limits:
    """The ``limits`` section: each key of :class:`Limits`, at least 1 and at most what AWS grants
    (:data:`QUOTA_MAXIMA`): raise a quota with AWS first, then here."""
    entry = _require_mapping(raw, "limits")
    _reject_unknown(entry, frozenset(QUOTA_MAXIMA), "limits.", None)
    defaults = Limits()
    return Limits(
        **{
            name: _require_int(entry.get(name, getattr(defaults, name)), f"limits.{name}", 1, maximum)
            for name, maximum in QUOTA_MAXIMA.items()
        }
    )


def _load_audit(raw: object) -> tuple[int, str, int]:
    """``audit``: (retention days, break-glass role name, archive retention days)."""
    audit = _require_mapping(raw, "audit")
    _reject_unknown(audit, _AUDIT_FIELDS, "audit.", None)
    retention_days = _require_int(audit.get("retention_days", 400), "audit.retention_days", 1, 36500)
    break_glass_role: str = _checked(
        None,
        validation.require_role_name,
        audit.get("break_glass_role", DEFAULT_BREAK_GLASS_ROLE),
        "audit.break_glass_role",
    )
    archive_retention_days = _require_int(
        audit.get("archive_retention_days", DEFAULT_ARCHIVE_RETENTION_DAYS),
        "audit.archive_retention_days",
        1,
        36500,
    )
    if archive_retention_days < retention_days:
        raise ConfigError(
            "audit.archive_retention_days",
            f"must be at least audit.retention_days ({retention_days}): the archive keeps "
            "records beyond the table's TTL",
        )
    return retention_days, break_glass_role, archive_retention_days


# ----------------------------------------------------------------------------- partner_rollout

#: AWS Organizations OU ids (an OU, never the root: admitting accounts is a decision per OU).
ORGANIZATIONAL_UNIT_RE: Final = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")
#: AWS region names (us-east-1, us-gov-west-1, ap-southeast-3, ...).
REGION_RE: Final = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
CALL_AS: Final = ("SELF", "DELEGATED_ADMIN")
REGION_CONCURRENCY: Final = ("SEQUENTIAL", "PARALLEL")
#: Operation preferences of the StackSet unless configured (``PartnerStackSet``'s defaults too): a
#: broken template stops in the first region after a tenth of its accounts.
DEFAULT_FAILURE_TOLERANCE_PERCENTAGE: Final = 10
DEFAULT_MAX_CONCURRENT_PERCENTAGE: Final = 25
DEFAULT_REGION_CONCURRENCY: Final = "SEQUENTIAL"
#: ``partners`` value that puts every in-organization partner behind the StackSet.
ALL_IN_ORGANIZATION: Final = "in_organization"
_STACKSET_FIELDS: Final = frozenset(
    {
        "administrator_account",
        "administrator_region",
        "organizational_units",
        "regions",
        "call_as",
        "partners",
        "operation_preferences",
    }
)
_OPERATION_PREFERENCE_FIELDS: Final = frozenset(
    {"failure_tolerance_percentage", "max_concurrent_percentage", "region_concurrency"}
)


@dataclass(frozen=True)
class StackSetRollout:
    """``partner_rollout.stackset``: the partners whose resources one service-managed StackSet
    deploys to organizational units (``PartnerStackSet`` in the ``KernelAccessPartnerRollout``
    stack), instead of one ``KernelAccessPartner-<name>`` stack each."""

    #: The management account (``call_as`` SELF) or a registered delegated administrator.
    administrator_account: str
    #: Where the StackSet lives (a StackSet is a regional resource of its administrator account).
    administrator_region: str
    organizational_units: tuple[str, ...]
    #: Regions of the stack instances; the first one also holds the (global) workload role.
    regions: tuple[str, ...]
    #: Names of the partners the StackSet covers (in-organization partners only).
    partners: tuple[str, ...]
    call_as: str = "SELF"
    failure_tolerance_percentage: int = DEFAULT_FAILURE_TOLERANCE_PERCENTAGE
    max_concurrent_percentage: int = DEFAULT_MAX_CONCURRENT_PERCENTAGE
    region_concurrency: str = DEFAULT_REGION_CONCURRENCY


def _choice(value: object, where: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(where, f"must be one of {list(choices)}, got {value!r}")
    return str(value)


def _unique_matching(
    raw: object, where: str, pattern: re.Pattern[str], what: str, most: int | None = None
) -> tuple[str, ...]:
    values = _require_list(raw, where)
    if not values or (most is not None and len(values) > most):
        bound = f"1 to {most}" if most is not None else "at least 1"
        raise ConfigError(where, f"must list {bound} {what}s, got {len(values)}")
    for index, value in enumerate(values):
        if not isinstance(value, str) or not pattern.match(value):
            raise ConfigError(f"{where}[{index}]", f"must be an {what} ({pattern.pattern}), got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(where, f"lists an {what} twice")
    return tuple(values)


def _administrator(
    entry: Mapping[str, Any], where: str, partners: Sequence[PartnerConfig], kernel: str
) -> str:
    """The StackSet's administrator account: neither the kernel nor a partner."""
    field_name = f"{where}.administrator_account"
    account: str = _checked(
        None, validation.require_account_id, entry.get("administrator_account"), field_name
    )
    if account == kernel:
        raise ConfigError(
            field_name,
            "is the kernel account: the account that can deploy stacks to every admitted account must "
            "not be the one that vends sessions to partners",
        )
    owner = next((p.name for p in partners if p.account_id == account), None)
    if owner is not None:
        raise ConfigError(field_name, f"is partner {owner!r}'s account")
    return account


def _covered_partners(
    selection: object, where: str, partners: Sequence[PartnerConfig], regions: Sequence[str]
) -> tuple[str, ...]:
    """``partners``: "in_organization" (every in-organization partner) or a list of names."""
    if selection == ALL_IN_ORGANIZATION:
        covered = [p for p in partners if p.in_organization]
    else:
        names = _require_list(selection, f"{where}.partners")
        if not names or len(set(map(str, names))) != len(names):
            raise ConfigError(
                f"{where}.partners",
                f"must be {ALL_IN_ORGANIZATION!r} or a list of partners, each once, got {names!r}",
            )
        by_name = {p.name: p for p in partners}
        covered = []
        for index, name in enumerate(names):
            if not isinstance(name, str) or name not in by_name:
                raise ConfigError(f"{where}.partners[{index}]", f"unknown partner {name!r}")
            covered.append(by_name[name])
    for partner in covered:
        if not partner.in_organization:
            raise ConfigError(
                f"{where}.partners",
                "is outside the organization: a service-managed StackSet reaches only accounts of "
                "the organization; it keeps its KernelAccessPartner stack",
                partner=partner.name,
            )
        if partner.region not in regions:
            raise ConfigError(
                "region",
                f"{partner.region!r} is not among {where}.regions {list(regions)}: its workloads "
                "would find no /kernel-access/ parameters",
                partner=partner.name,
            )
    return tuple(p.name for p in covered)


def _load_partner_rollout(
    raw: object, partners: Sequence[PartnerConfig], kernel_account: str, region: str
) -> StackSetRollout | None:
    """``partner_rollout``: None without the section. External partners can never be covered: a
    service-managed StackSet reaches only accounts of the organization."""
    if raw is None:
        return None
    section = _require_mapping(raw, "partner_rollout")
    _reject_unknown(section, frozenset({"stackset"}), "partner_rollout.", None)
    where = "partner_rollout.stackset"
    entry = _require_mapping(section.get("stackset"), where)
    _reject_unknown(entry, _STACKSET_FIELDS, f"{where}.", None)
    administrator = _administrator(entry, where, partners, kernel_account)
    administrator_region = entry.get("administrator_region", region)
    if not isinstance(administrator_region, str) or not REGION_RE.fullmatch(administrator_region):
        raise ConfigError(
            f"{where}.administrator_region", f"must be a region name, got {administrator_region!r}"
        )
    units = _unique_matching(
        entry.get("organizational_units"),
        f"{where}.organizational_units",
        ORGANIZATIONAL_UNIT_RE,
        "organizational unit id",
        STACKSET_ORGANIZATIONAL_UNITS,
    )
    regions = _unique_matching(entry.get("regions"), f"{where}.regions", REGION_RE, "region")
    preferences = _require_mapping(entry.get("operation_preferences", {}), f"{where}.operation_preferences")
    prefix = f"{where}.operation_preferences."
    _reject_unknown(preferences, _OPERATION_PREFERENCE_FIELDS, prefix, None)
    return StackSetRollout(
        administrator_account=administrator,
        administrator_region=administrator_region,
        organizational_units=units,
        regions=regions,
        partners=_covered_partners(entry.get("partners", ALL_IN_ORGANIZATION), where, partners, regions),
        call_as=_choice(entry.get("call_as", "SELF"), f"{where}.call_as", CALL_AS),
        failure_tolerance_percentage=_require_int(
            preferences.get("failure_tolerance_percentage", DEFAULT_FAILURE_TOLERANCE_PERCENTAGE),
            f"{prefix}failure_tolerance_percentage",
            0,
            100,
        ),
        max_concurrent_percentage=_require_int(
            preferences.get("max_concurrent_percentage", DEFAULT_MAX_CONCURRENT_PERCENTAGE),
            f"{prefix}max_concurrent_percentage",
            1,
            100,
        ),
        region_concurrency=_choice(
            preferences.get("region_concurrency", DEFAULT_REGION_CONCURRENCY),
            f"{prefix}region_concurrency",
            REGION_CONCURRENCY,
        ),
    )


def load_config(context: object) -> KernelAccessConfig:
    """Validate the ``"kernel-access"`` context value and return it as a frozen config."""
    raw = _require_mapping(context, "kernel-access")
    _reject_unknown(raw, _TOP_LEVEL_FIELDS, "", None)
    kernel_account: str = _checked(
        None, validation.require_account_id, raw.get("kernel_account"), "kernel_account"
    )
    region = _require_str(raw.get("region"), "region")
    # Needed by in-organization partners (aws:PrincipalOrgID) and by the CodeArtifact domain policy;
    # a kernel with only external partners and no registry can do without it.
    organization_id: str | None = None
    if raw.get("organization_id") is not None:
        organization_id = _checked(None, validation.require_org_id, raw["organization_id"], "organization_id")
    name_suffix = raw.get("name_suffix", "")
    if not isinstance(name_suffix, str) or not validation.ROLE_NAME_RE.fullmatch(
        "kernel-access-external" + name_suffix
    ):
        raise ConfigError("name_suffix", f"must keep role names valid IAM names, got {name_suffix!r}")

    partners = _load_partners(raw, region, organization_id, kernel_account, name_suffix)

    target_roles = [
        _load_target_role(e, i)
        for i, e in enumerate(_require_list(raw.get("target_roles", []), "target_roles"))
    ]
    names = [role.name for role in target_roles]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("target_roles", f"role {name!r} is listed twice")

    codeartifact = _load_codeartifact(raw["codeartifact"]) if raw.get("codeartifact") is not None else None
    if codeartifact is not None and organization_id is None:
        raise ConfigError("codeartifact", "the domain permissions policy needs organization_id")
    audit_retention_days, break_glass_role, archive_retention_days = _load_audit(raw.get("audit", {}))
    log_retention_days = raw.get("log_retention_days", 365)
    if log_retention_days not in LOG_RETENTION_DAYS or isinstance(log_retention_days, bool):
        raise ConfigError(
            "log_retention_days", f"must be one of {LOG_RETENTION_DAYS}, got {log_retention_days!r}"
        )
    rate_limit = _require_mapping(raw.get("rate_limit", {}), "rate_limit")
    _reject_unknown(
        rate_limit, frozenset({"requests", "session_requests", "window_seconds"}), "rate_limit.", None
    )
    rate_limit_requests = _require_int(
        rate_limit.get("requests", DEFAULT_LIMIT), "rate_limit.requests", 1, 100_000
    )
    rate_limit_session_requests = _require_int(
        rate_limit.get("session_requests", min(DEFAULT_SESSION_LIMIT, rate_limit_requests)),
        "rate_limit.session_requests",
        1,
        rate_limit_requests,
    )
    limits = _load_limits(raw.get("limits", {}))
    throttling = _require_mapping(raw.get("api_throttling", {}), "api_throttling")
    vending_api_url = raw.get("vending_api_url")
    if vending_api_url is not None and (
        not isinstance(vending_api_url, str) or not vending_api_url.startswith("https://")
    ):
        raise ConfigError("vending_api_url", f"must be an https:// URL, got {vending_api_url!r}")
    layer_version = raw.get("powertools_layer_version")
    if layer_version is not None:
        layer_version = _require_int(layer_version, "powertools_layer_version", 1, 10_000)

    example_service = raw.get(EXAMPLE_SERVICE_FLAG, False)
    if not isinstance(example_service, bool):
        raise ConfigError(EXAMPLE_SERVICE_FLAG, f"must be true or false, got {example_service!r}")

    raw_policy = _require_mapping(raw.get("policy"), "policy")
    _reject_unknown(raw_policy, _POLICY_FIELDS, "policy.", None)
    document = build_policy_document(raw_policy, partners, organization_id)
    _check_policy(document, partners, target_roles)
    exchange: ExchangeSettings | None = None
    if raw.get("exchange") is not None:
        exchange = _load_exchange(
            raw["exchange"],
            kernel_account=kernel_account,
            region=region,
            name_suffix=name_suffix,
            target_roles=target_roles,
            codeartifact=codeartifact,
        )

    partner_rollout = _load_partner_rollout(raw.get("partner_rollout"), partners, kernel_account, region)

    return KernelAccessConfig(
        kernel_account=kernel_account,
        region=region,
        organization_id=organization_id,
        partners=tuple(partners),
        target_roles=tuple(target_roles),
        policy_json=json.dumps(document, sort_keys=True, separators=(",", ":")),
        name_suffix=name_suffix,
        codeartifact=codeartifact,
        audit_retention_days=audit_retention_days,
        audit_break_glass_role=break_glass_role,
        audit_archive_retention_days=archive_retention_days,
        log_retention_days=log_retention_days,
        rate_limit_requests=rate_limit_requests,
        rate_limit_session_requests=rate_limit_session_requests,
        rate_limit_window_seconds=_require_int(
            rate_limit.get("window_seconds", 60), "rate_limit.window_seconds", 1, 86_400
        ),
        api_throttling_rate_limit=_require_int(
            throttling.get("rate_limit", 50), "api_throttling.rate_limit", 1, 100_000
        ),
        api_throttling_burst_limit=_require_int(
            throttling.get("burst_limit", 100), "api_throttling.burst_limit", 1, 100_000
        ),
        policy_max_staleness_seconds=_require_int(
            raw.get("policy_max_staleness_seconds", 300), "policy_max_staleness_seconds", 0, 86_400
        ),
        vending_api_url=vending_api_url,
        powertools_layer_version=layer_version,
        exchange=exchange,
        example_service=example_service,
        monitoring=_load_monitoring(raw.get("monitoring", {})),
        limits=limits,
        partner_rollout=partner_rollout,
        _partner_index={p.name: p for p in partners},
    )
