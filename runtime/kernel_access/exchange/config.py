"""The exchange configuration document: central issuer rules, trust policies and targets.

One JSON document (the object ``settings.EXCHANGE_CONFIG_OBJECT_KEY`` of ``settings.CONFIG_BUCKET``)::

    {"version": "...",
     "issuers": {NAME: {"issuer": "https://...", "audiences": [...],
                        "required_claims": {CLAIM: REGEX}, "forbidden_claims": {CLAIM: REGEX},
                        "max_permissions": [...], "max_token_age_seconds": N}},
     "trust_policies": {TARGET: [{"name", "issuer" | "issuer_pattern",
                                  "subject" | "subject_pattern",
                                  "audience" | "audience_pattern" (optional),
                                  "claim_pattern": {CLAIM: REGEX}, "permissions": [...],
                                  "token_ttl": N}]},
     "targets": {TARGET: {"type": "aws_role", "role_arn": ARN}
                       | {"type": "codeartifact", "domain": D, "access": "read" | "publish",
                          "domain_owner": ACCOUNT (optional)}}}

The parser reports every problem it finds (not just the first), each with the JSON path of the
offending field, so ``kernel-access policy lint`` can show an operator the whole list at once.
Unknown fields are errors: a misspelt ``subject_patern`` must not silently widen a policy.

The document's shape is data, :data:`EXCHANGE_SPEC` (:mod:`kernel_access.fields`): the parser takes
its field names from it, and ``kernel-access exchange schema`` renders it as the JSON Schema
shipped in :mod:`kernel_access.schemas`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from kernel_access.exchange.patterns import AnchoredPattern
from kernel_access.exchange.permissions import (
    CODEARTIFACT_LEVELS,
    MAX_SESSION_POLICY_CHARS,
    AccessLevel,
    is_action_pattern,
    session_policy,
)
from kernel_access.fields import Array, Int, Map, Object, Str, Tagged
from kernel_access.validation import (
    ACCOUNT_ID_RE,
    CODEARTIFACT_DOMAIN_RE,
    IDENTIFIER_RE,
    PARTNER_NAME_RE,
    ROLE_ARN_RE,
    Collector,
    non_empty_text,
)

#: Issuer names appear in the route path ``/exchange/{name}`` and in construct ids: the same plain
#: names as partners.
ISSUER_NAME_RE: Final = PARTNER_NAME_RE
#: Target and trust-policy names: callers type them, audit records carry them.
NAME_RE: Final = IDENTIFIER_RE
DOMAIN_RE: Final = CODEARTIFACT_DOMAIN_RE
CLAIM_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_:./-]{1,128}$")
#: Issuer URLs: https, a host, no query, fragment or white space (``urlsplit`` checks the host).
HTTPS_URL_RE: Final = re.compile(r"^https://[^\s?#/]+(/[^\s?#]*)?$")

MIN_TOKEN_TTL: Final = 900
MAX_TOKEN_TTL: Final = 3600
DEFAULT_TOKEN_TTL: Final = 900
DEFAULT_MAX_TOKEN_AGE: Final = 600
MAX_TOKEN_AGE_RANGE: Final = (30, 86400)
MAX_PERMISSIONS_PER_LIST: Final = 100

#: Audiences that many relying parties accept, so a token carrying one is not meant for *this*
#: exchange: ``sts.amazonaws.com`` is what every AWS-bound workflow requests (GitHub's
#: ``configure-aws-credentials``, GitLab's AWS examples), ``api://AzureADTokenExchange`` every
#: Azure-bound one. An issuer configured with one of them lets any workflow of that issuer reach
#: the exchange Lambda, and lets a token handed to another relying party (or to any third-party
#: action in a job) be replayed here. The parser refuses them; there is no override, because the
#: fix costs one line in the workflow (``audience: <the deployment's audience>``).
SHARED_AUDIENCES: Final = frozenset(
    {"sts.amazonaws.com", "sts.amazonaws.com.cn", "api://AzureADTokenExchange", "sigstore"}
)
#: Prefixes of audiences issuers use by default or that other clouds expect: GitHub's default
#: audience is the URL of the repository owner, Google's workload identity federation wants its
#: provider resource name.
SHARED_AUDIENCE_PREFIXES: Final = (
    "https://github.com/",
    "//iam.googleapis.com/",
    "https://iam.googleapis.com/",
)


def is_shared_audience(audience: str) -> bool:
    """True for an audience other relying parties also accept (see :data:`SHARED_AUDIENCES`)."""
    return audience in SHARED_AUDIENCES or audience.startswith(SHARED_AUDIENCE_PREFIXES)


def default_audience(account: str, region: str, name_suffix: str = "") -> str:
    """The audience an issuer gets when it lists none: unique to one deployment of the exchange.

    ``kernel-access:<kernel account>:<region>:exchange<name suffix>`` — two deployments (another
    account, region or suffix) never accept each other's tokens, and no other relying party asks
    for it. Workflows request it explicitly (GitHub: ``core.getIDToken(audience)``,
    ``configure-aws-credentials``' ``audience``; GitLab: ``id_tokens.<NAME>.aud``).
    """
    return f"kernel-access:{account}:{region}:exchange{name_suffix}"


def with_default_audiences(document: Mapping[str, Any], audience: str) -> dict[str, Any]:
    """A copy of ``document`` in which every issuer without ``audiences`` gets ``[audience]``."""
    result = dict(document)
    issuers = result.get("issuers")
    if isinstance(issuers, Mapping):
        filled: dict[str, Any] = {}
        for name, spec in issuers.items():
            missing = isinstance(spec, Mapping) and "audiences" not in spec
            filled[name] = {**spec, "audiences": [audience]} if missing else spec
        result["issuers"] = filled
    return result


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in the document: where (a JSON path such as ``trust_policies.ci[0].subject``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ExchangeConfigError(ValueError):
    """The document is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[ConfigIssue]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {issue}" for issue in errors)
        super().__init__(f"invalid exchange configuration ({len(errors)} error(s)):\n{lines}")


@dataclass(frozen=True)
class StringMatcher:
    """Either an exact value or an anchored pattern (the ``x`` / ``x_pattern`` pair of a trust policy)."""

    exact: str | None = None
    pattern: AnchoredPattern | None = None

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.pattern is not None and self.pattern.matches(value)

    def describe(self) -> str:
        if self.exact is not None:
            return self.exact
        return f"/{self.pattern.source}/" if self.pattern else "<nothing>"


@dataclass(frozen=True)
class IssuerConfig:
    """The central layer for one trusted issuer: what any of its tokens may ever get."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    required_claims: Mapping[str, AnchoredPattern]
    forbidden_claims: Mapping[str, AnchoredPattern]
    max_permissions: tuple[str, ...]
    max_token_age_seconds: int


@dataclass(frozen=True)
class AwsRoleTarget:
    name: str
    role_arn: str
    type: Literal["aws_role"] = "aws_role"


@dataclass(frozen=True)
class CodeArtifactTarget:
    name: str
    domain: str
    access: AccessLevel
    domain_owner: str | None = None
    type: Literal["codeartifact"] = "codeartifact"


Target = AwsRoleTarget | CodeArtifactTarget


@dataclass(frozen=True)
class TrustPolicy:
    """The target layer: which tokens may get which permissions on one target."""

    name: str
    target: str
    issuer: StringMatcher
    subject: StringMatcher
    audience: StringMatcher | None
    claim_patterns: Mapping[str, AnchoredPattern]
    permissions: tuple[str, ...]
    token_ttl: int


@dataclass(frozen=True)
class ExchangeConfig:
    version: str
    issuers: Mapping[str, IssuerConfig]
    trust_policies: Mapping[str, tuple[TrustPolicy, ...]]
    targets: Mapping[str, Target] = field(default_factory=dict)

    def role_arns(self) -> tuple[str, ...]:
        """ARNs of the AWS roles some trust policy can reach (what the exchange may assume)."""
        return tuple(
            sorted(
                {
                    target.role_arn
                    for name, target in self.targets.items()
                    if isinstance(target, AwsRoleTarget) and self.trust_policies.get(name)
                }
            )
        )

    def codeartifact_levels(self) -> tuple[AccessLevel, ...]:
        """CodeArtifact access levels some trust policy can mint (which minting roles are needed)."""
        levels: set[AccessLevel] = set()
        for name, target in self.targets.items():
            if isinstance(target, CodeArtifactTarget) and self.trust_policies.get(name):
                levels.add("read")
                if target.access == "publish" and any(
                    "publish" in policy.permissions for policy in self.trust_policies[name]
                ):
                    levels.add("publish")
        return tuple(level for level in CODEARTIFACT_LEVELS if level in levels)


def _https_url(out: Collector, path: str, value: object) -> str | None:
    text = out.string(value, None, path, non_empty=True)
    if text is None:
        return None
    parts = urlsplit(text)
    if not HTTPS_URL_RE.fullmatch(text) or parts.scheme != "https" or not parts.hostname:
        out.error(None, path, f"must be an https:// URL without query or fragment, got {text!r}")
        return None
    return text


def _pattern(out: Collector, path: str, value: object) -> AnchoredPattern | None:
    text = out.string(value, None, path, non_empty=True)
    if text is None:
        return None
    try:
        return AnchoredPattern.compile(text)
    except ValueError as error:
        out.error(None, path, str(error))
        return None


def _claim_patterns(out: Collector, path: str, value: object) -> dict[str, AnchoredPattern]:
    patterns: dict[str, AnchoredPattern] = {}
    mapping = out.mapping(value, None, path)
    if mapping is None:
        return patterns
    for claim, source in mapping.items():
        if not isinstance(claim, str) or not CLAIM_NAME_RE.fullmatch(claim):
            out.error(None, f"{path}.{claim}", "claim names are 1-128 characters of [A-Za-z0-9_:./-]")
            continue
        compiled = _pattern(out, f"{path}.{claim}", source)
        if compiled is not None:
            patterns[claim] = compiled
    return patterns


def _string_list(
    out: Collector, path: str, value: object, *, allow_empty: bool = False
) -> tuple[str, ...] | None:
    """A list of unique non-empty strings (audiences, permissions), at most 100."""
    items = out.string_list(
        value,
        None,
        path,
        non_empty_text,
        allow_empty=allow_empty,
        max_items=MAX_PERMISSIONS_PER_LIST,
        unique=True,
    )
    return tuple(items) if items is not None else None


def _matcher(
    out: Collector, path: str, spec: Mapping[str, Any], key: str, *, required: bool, https: bool = False
) -> StringMatcher | None:
    exact_key, pattern_key = key, f"{key}_pattern"
    has_exact, has_pattern = exact_key in spec, pattern_key in spec
    if has_exact and has_pattern:
        out.error(None, f"{path}.{key}", f"give exactly one of {exact_key!r} and {pattern_key!r}")
        return None
    if not has_exact and not has_pattern:
        if required:
            out.error(None, f"{path}.{key}", f"one of {exact_key!r} and {pattern_key!r} is required")
        return None
    if has_exact:
        exact_path = f"{path}.{exact_key}"
        raw = spec[exact_key]
        exact = (
            _https_url(out, exact_path, raw) if https else out.string(raw, None, exact_path, non_empty=True)
        )
        return StringMatcher(exact=exact) if exact is not None else None
    compiled = _pattern(out, f"{path}.{pattern_key}", spec[pattern_key])
    return StringMatcher(pattern=compiled) if compiled is not None else None


def _invalid(out: Collector) -> ExchangeConfigError:
    return ExchangeConfigError([ConfigIssue(issue.path, issue.message) for issue in out.issues])


# --- the document's shape: one definition the parser reads and `kernel-access exchange schema` shows ---

_PATTERN = Str(min_length=1, description="a regular expression, anchored at both ends")
_CLAIM_PATTERNS = Map(keys=Str(pattern=CLAIM_NAME_RE), values=_PATTERN, description="claim -> pattern")


def _unique_strings(description: str, *, min_items: int = 1) -> Array:
    return Array(
        Str(min_length=1),
        min_items=min_items,
        max_items=MAX_PERMISSIONS_PER_LIST,
        unique=True,
        description=description,
    )


ISSUER_SPEC: Final = Object(
    {
        "issuer": Str(pattern=HTTPS_URL_RE, description="the issuer URL (https://, no query or fragment)"),
        "audiences": _unique_strings("audiences this exchange accepts (never a shared one)"),
        "required_claims": _CLAIM_PATTERNS,
        "forbidden_claims": _CLAIM_PATTERNS,
        "max_permissions": _unique_strings(
            "the most any trust policy may grant: IAM action patterns or CodeArtifact levels", min_items=0
        ),
        "max_token_age_seconds": Int(*MAX_TOKEN_AGE_RANGE, default=DEFAULT_MAX_TOKEN_AGE),
    },
    required=("issuer", "audiences", "max_permissions"),
)
TRUST_POLICY_SPEC: Final = Object(
    {
        "name": Str(pattern=NAME_RE),
        "issuer": Str(pattern=HTTPS_URL_RE),
        "issuer_pattern": _PATTERN,
        "subject": Str(min_length=1),
        "subject_pattern": _PATTERN,
        "audience": Str(min_length=1),
        "audience_pattern": _PATTERN,
        "claim_pattern": _CLAIM_PATTERNS,
        "permissions": _unique_strings("IAM action patterns (aws_role) or read/publish (codeartifact)"),
        "token_ttl": Int(MIN_TOKEN_TTL, MAX_TOKEN_TTL, default=DEFAULT_TOKEN_TTL),
    },
    required=("name", "permissions"),
    one_of=(("issuer", "issuer_pattern"), ("subject", "subject_pattern")),
    at_most_one=(("audience", "audience_pattern"),),
)
TARGET_SPEC: Final = Tagged(
    "type",
    {
        "aws_role": Object({"role_arn": Str(pattern=ROLE_ARN_RE)}, required=("role_arn",)),
        "codeartifact": Object(
            {
                "domain": Str(pattern=DOMAIN_RE),
                "access": Str(enum=CODEARTIFACT_LEVELS),
                "domain_owner": Str(pattern=ACCOUNT_ID_RE),
            },
            required=("domain", "access"),
        ),
    },
)
EXCHANGE_SPEC: Final = Object(
    {
        "$schema": Str(description="the JSON Schema editors check the document with (ignored)"),
        "version": Str(min_length=1),
        "issuers": Map(keys=Str(pattern=ISSUER_NAME_RE), values=ISSUER_SPEC),
        "trust_policies": Map(
            keys=Str(pattern=NAME_RE),
            values=Array(TRUST_POLICY_SPEC),
            description="target name -> the trust policies that admit tokens to it",
        ),
        "targets": Map(keys=Str(pattern=NAME_RE), values=TARGET_SPEC),
    },
    required=("version",),
)
_TOP_KEYS: Final = EXCHANGE_SPEC.names
_ISSUER_KEYS: Final = ISSUER_SPEC.names
_POLICY_KEYS: Final = TRUST_POLICY_SPEC.names


def parse_exchange_config(document: Mapping[str, Any] | str) -> ExchangeConfig:
    """Validate and parse the exchange configuration; raises ``ExchangeConfigError`` listing every error."""
    out = Collector()
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise ExchangeConfigError([ConfigIssue("<document>", f"not valid JSON: {error}")]) from None
    root = out.mapping(document, None, "<document>")
    if root is None:
        raise _invalid(out)
    out.unknown_fields(root, _TOP_KEYS, None, "")
    if "$schema" in root:  # for editors; ignored, but never anything but a string
        out.string(root["$schema"], None, "$schema")
    version = out.string(root.get("version"), None, "version", non_empty=True)
    issuers = _parse_issuers(out, root.get("issuers", {}))
    targets = _parse_targets(out, root.get("targets", {}))
    policies = _parse_trust_policies(out, root.get("trust_policies", {}), root.get("targets", {}), targets)
    if out.issues or version is None:
        raise _invalid(out)
    return ExchangeConfig(version=version, issuers=issuers, trust_policies=policies, targets=targets)


def _parse_issuers(out: Collector, raw: object) -> dict[str, IssuerConfig]:
    issuers: dict[str, IssuerConfig] = {}
    mapping = out.mapping(raw, None, "issuers")
    if mapping is None:
        return issuers
    for name, spec_raw in mapping.items():
        path = f"issuers.{name}"
        if not isinstance(name, str) or not ISSUER_NAME_RE.fullmatch(name):
            out.error(None, path, f"issuer names must match {ISSUER_NAME_RE.pattern}")
            continue
        spec = out.mapping(spec_raw, None, path)
        if spec is None:
            continue
        out.unknown_fields(spec, _ISSUER_KEYS, None, path)
        url = _https_url(out, f"{path}.issuer", spec.get("issuer"))
        audiences = _string_list(out, f"{path}.audiences", spec.get("audiences"))
        for index, audience in enumerate(audiences or ()):
            if is_shared_audience(audience):
                out.error(
                    None,
                    f"{path}.audiences[{index}]",
                    f"{audience!r} is a shared audience other relying parties also accept: any "
                    "workflow could reach the exchange with it and tokens meant for others could be "
                    "replayed here; leave 'audiences' out to get the deployment's own audience "
                    "(kernel-access:<account>:<region>:exchange<suffix>) or name one unique to it",
                )
        required = _claim_patterns(out, f"{path}.required_claims", spec.get("required_claims", {}))
        forbidden = _claim_patterns(out, f"{path}.forbidden_claims", spec.get("forbidden_claims", {}))
        maximum = _string_list(out, f"{path}.max_permissions", spec.get("max_permissions"), allow_empty=True)
        for index, item in enumerate(maximum or ()):
            if item not in CODEARTIFACT_LEVELS and not is_action_pattern(item):
                out.error(
                    None,
                    f"{path}.max_permissions[{index}]",
                    f"must be an IAM action pattern like 's3:Get*' or a CodeArtifact level, got {item!r}",
                )
        age = out.integer(
            spec.get("max_token_age_seconds", DEFAULT_MAX_TOKEN_AGE),
            None,
            f"{path}.max_token_age_seconds",
            *MAX_TOKEN_AGE_RANGE,
        )
        if url is None or audiences is None or maximum is None or age is None:
            continue
        issuers[name] = IssuerConfig(
            name=name,
            issuer=url,
            audiences=audiences,
            required_claims=required,
            forbidden_claims=forbidden,
            max_permissions=maximum,
            max_token_age_seconds=age,
        )
    return issuers


def _parse_targets(out: Collector, raw: object) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    mapping = out.mapping(raw, None, "targets")
    if mapping is None:
        return targets
    for name, spec_raw in mapping.items():
        path = f"targets.{name}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            out.error(None, path, f"target names must match {NAME_RE.pattern}")
            continue
        spec = out.mapping(spec_raw, None, path)
        if spec is None:
            continue
        kind = spec.get("type")
        if kind == "aws_role":
            out.unknown_fields(spec, TARGET_SPEC.variants[kind].names | {"type"}, None, path)
            arn = out.string(
                spec.get("role_arn"), None, f"{path}.role_arn", non_empty=True, regex=ROLE_ARN_RE
            )
            if arn is not None:
                targets[name] = AwsRoleTarget(name=name, role_arn=arn)
        elif kind == "codeartifact":
            out.unknown_fields(spec, TARGET_SPEC.variants[kind].names | {"type"}, None, path)
            domain = out.string(spec.get("domain"), None, f"{path}.domain", non_empty=True, regex=DOMAIN_RE)
            access = spec.get("access")
            if access not in CODEARTIFACT_LEVELS:
                out.error(None, f"{path}.access", f"must be 'read' or 'publish', got {access!r}")
            owner = spec.get("domain_owner")
            if "domain_owner" in spec:  # present means an account id: an explicit null is an error
                owner = out.string(owner, None, f"{path}.domain_owner", non_empty=True, regex=ACCOUNT_ID_RE)
            if domain is not None and access in CODEARTIFACT_LEVELS:
                targets[name] = CodeArtifactTarget(
                    name=name,
                    domain=domain,
                    access="publish" if access == "publish" else "read",
                    domain_owner=owner,
                )
        else:
            out.error(None, f"{path}.type", f"must be 'aws_role' or 'codeartifact', got {kind!r}")
    return targets


def _parse_trust_policies(
    out: Collector, raw: object, raw_targets: object, targets: Mapping[str, Target]
) -> dict[str, tuple[TrustPolicy, ...]]:
    result: dict[str, tuple[TrustPolicy, ...]] = {}
    mapping = out.mapping(raw, None, "trust_policies")
    if mapping is None:
        return result
    for target_name, policies_raw in mapping.items():
        path = f"trust_policies.{target_name}"
        target = targets.get(target_name)
        # Only report "unknown target" when the target was not declared at all (a declared but
        # invalid target already has its own error).
        if target is None and (not isinstance(raw_targets, Mapping) or target_name not in raw_targets):
            out.error(None, path, f"no target named {target_name!r} in targets")
        if not isinstance(policies_raw, list) or not policies_raw:
            out.error(None, path, "must be a non-empty list of trust policies")
            continue
        parsed: list[TrustPolicy] = []
        names: set[str] = set()
        for index, policy_raw in enumerate(policies_raw):
            policy = _parse_policy(out, f"{path}[{index}]", str(target_name), policy_raw, target)
            if policy is None:
                continue
            if policy.name in names:
                out.error(None, f"{path}[{index}].name", f"duplicate trust policy name {policy.name!r}")
                continue
            names.add(policy.name)
            parsed.append(policy)
        if target is not None:
            result[target_name] = tuple(parsed)
    return result


def _parse_policy(
    out: Collector, path: str, target_name: str, raw: object, target: Target | None
) -> TrustPolicy | None:
    spec = out.mapping(raw, None, path)
    if spec is None:
        return None
    errors_before = len(out.issues)
    out.unknown_fields(spec, _POLICY_KEYS, None, path)
    name = out.string(spec.get("name"), None, f"{path}.name", non_empty=True, regex=NAME_RE)
    issuer = _matcher(out, path, spec, "issuer", required=True, https=True)
    subject = _matcher(out, path, spec, "subject", required=True)
    audience = _matcher(out, path, spec, "audience", required=False)
    claims = _claim_patterns(out, f"{path}.claim_pattern", spec.get("claim_pattern", {}))
    permissions = _string_list(out, f"{path}.permissions", spec.get("permissions"))
    ttl = out.integer(
        spec.get("token_ttl", DEFAULT_TOKEN_TTL), None, f"{path}.token_ttl", MIN_TOKEN_TTL, MAX_TOKEN_TTL
    )
    if permissions is not None and target is not None:
        _check_permissions(out, f"{path}.permissions", permissions, target)
    if len(out.issues) != errors_before or None in (name, issuer, subject, permissions, ttl):
        return None
    # (No error was added, so every part parsed; the asserts tell the type checker.)
    assert name is not None
    assert issuer is not None
    assert subject is not None
    assert permissions is not None
    assert ttl is not None
    return TrustPolicy(
        name=name,
        target=target_name,
        issuer=issuer,
        subject=subject,
        audience=audience,
        claim_patterns=claims,
        permissions=permissions,
        token_ttl=ttl,
    )


def _check_permissions(out: Collector, path: str, permissions: tuple[str, ...], target: Target) -> None:
    if isinstance(target, CodeArtifactTarget):
        for index, item in enumerate(permissions):
            if item not in CODEARTIFACT_LEVELS:
                out.error(
                    None, f"{path}[{index}]", f"codeartifact targets take 'read' or 'publish', got {item!r}"
                )
            elif item == "publish" and target.access == "read":
                out.error(None, f"{path}[{index}]", f"target {target.name!r} is read-only")
        return
    bad = False
    for index, item in enumerate(permissions):
        if not is_action_pattern(item):
            bad = True
            out.error(
                None,
                f"{path}[{index}]",
                "aws_role targets take IAM action patterns 'service:Action' (wildcard '*' allowed "
                f"in the action only), got {item!r}",
            )
    if not bad and len(session_policy(permissions)) > MAX_SESSION_POLICY_CHARS:
        out.error(
            None,
            path,
            f"the session policy for these permissions exceeds {MAX_SESSION_POLICY_CHARS} characters",
        )
