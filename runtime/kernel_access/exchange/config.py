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
from kernel_access.validation import ACCOUNT_ID_RE, CODEARTIFACT_DOMAIN_RE

#: Issuer names appear in the route path ``/exchange/{name}`` and in construct ids.
ISSUER_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
#: Target and trust-policy names: callers type them, audit records carry them.
NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROLE_ARN_RE: Final = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$", re.ASCII)
DOMAIN_RE: Final = CODEARTIFACT_DOMAIN_RE
CLAIM_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_:./-]{1,128}$")

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


class _Collector:
    def __init__(self) -> None:
        self.errors: list[ConfigIssue] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(ConfigIssue(path, message))

    def unknown_keys(self, path: str, value: Mapping[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(value) - allowed):
            self.add(f"{path}.{key}" if path else key, "unknown field")

    def mapping(self, path: str, value: object) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be an object, got {type(value).__name__}")
            return None
        return value

    def string(self, path: str, value: object, *, regex: re.Pattern[str] | None = None) -> str | None:
        if not isinstance(value, str) or not value:
            self.add(path, "must be a non-empty string")
            return None
        if regex is not None and not regex.match(value):
            self.add(path, f"must match {regex.pattern}, got {value!r}")
            return None
        return value

    def integer(self, path: str, value: object, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, "must be an integer")
            return None
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def https_url(self, path: str, value: object) -> str | None:
        text = self.string(path, value)
        if text is None:
            return None
        parts = urlsplit(text)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or " " in text:
            self.add(path, f"must be an https:// URL without query or fragment, got {text!r}")
            return None
        return text

    def pattern(self, path: str, value: object) -> AnchoredPattern | None:
        text = self.string(path, value)
        if text is None:
            return None
        try:
            return AnchoredPattern.compile(text)
        except ValueError as error:
            self.add(path, str(error))
            return None

    def claim_patterns(self, path: str, value: object) -> dict[str, AnchoredPattern]:
        patterns: dict[str, AnchoredPattern] = {}
        mapping = self.mapping(path, value)
        if mapping is None:
            return patterns
        for claim, source in mapping.items():
            if not isinstance(claim, str) or not CLAIM_NAME_RE.match(claim):
                self.add(f"{path}.{claim}", "claim names are 1-128 characters of [A-Za-z0-9_:./-]")
                continue
            compiled = self.pattern(f"{path}.{claim}", source)
            if compiled is not None:
                patterns[claim] = compiled
        return patterns

    def string_list(self, path: str, value: object, *, allow_empty: bool = False) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.add(path, "must be a list of non-empty strings")
            return None
        if not value and not allow_empty:
            self.add(path, "must not be empty")
            return None
        if len(value) > MAX_PERMISSIONS_PER_LIST:
            self.add(path, f"at most {MAX_PERMISSIONS_PER_LIST} entries")
            return None
        if len(set(value)) != len(value):
            self.add(path, "entries must be unique")
        return tuple(value)

    def matcher(
        self, path: str, spec: Mapping[str, Any], key: str, *, required: bool, https: bool = False
    ) -> StringMatcher | None:
        exact_key, pattern_key = key, f"{key}_pattern"
        has_exact, has_pattern = exact_key in spec, pattern_key in spec
        if has_exact and has_pattern:
            self.add(f"{path}.{key}", f"give exactly one of {exact_key!r} and {pattern_key!r}")
            return None
        if not has_exact and not has_pattern:
            if required:
                self.add(f"{path}.{key}", f"one of {exact_key!r} and {pattern_key!r} is required")
            return None
        if has_exact:
            exact_path = f"{path}.{exact_key}"
            raw = spec[exact_key]
            exact = self.https_url(exact_path, raw) if https else self.string(exact_path, raw)
            return StringMatcher(exact=exact) if exact is not None else None
        compiled = self.pattern(f"{path}.{pattern_key}", spec[pattern_key])
        return StringMatcher(pattern=compiled) if compiled is not None else None


_TOP_KEYS: Final = {"version", "issuers", "trust_policies", "targets"}
_ISSUER_KEYS: Final = {
    "issuer",
    "audiences",
    "required_claims",
    "forbidden_claims",
    "max_permissions",
    "max_token_age_seconds",
}
_POLICY_KEYS: Final = {
    "name",
    "issuer",
    "issuer_pattern",
    "subject",
    "subject_pattern",
    "audience",
    "audience_pattern",
    "claim_pattern",
    "permissions",
    "token_ttl",
}


def parse_exchange_config(document: Mapping[str, Any] | str) -> ExchangeConfig:
    """Validate and parse the exchange configuration; raises ``ExchangeConfigError`` listing every error."""
    out = _Collector()
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            raise ExchangeConfigError([ConfigIssue("<document>", f"not valid JSON: {error}")]) from None
    root = out.mapping("<document>", document)
    if root is None:
        raise ExchangeConfigError(out.errors)
    out.unknown_keys("", root, _TOP_KEYS)
    version = out.string("version", root.get("version"))
    issuers = _parse_issuers(out, root.get("issuers", {}))
    targets = _parse_targets(out, root.get("targets", {}))
    policies = _parse_trust_policies(out, root.get("trust_policies", {}), root.get("targets", {}), targets)
    if out.errors or version is None:
        raise ExchangeConfigError(out.errors)
    return ExchangeConfig(version=version, issuers=issuers, trust_policies=policies, targets=targets)


def _parse_issuers(out: _Collector, raw: object) -> dict[str, IssuerConfig]:
    issuers: dict[str, IssuerConfig] = {}
    mapping = out.mapping("issuers", raw)
    if mapping is None:
        return issuers
    for name, spec_raw in mapping.items():
        path = f"issuers.{name}"
        if not isinstance(name, str) or not ISSUER_NAME_RE.match(name):
            out.add(path, f"issuer names must match {ISSUER_NAME_RE.pattern}")
            continue
        spec = out.mapping(path, spec_raw)
        if spec is None:
            continue
        out.unknown_keys(path, spec, _ISSUER_KEYS)
        url = out.https_url(f"{path}.issuer", spec.get("issuer"))
        audiences = out.string_list(f"{path}.audiences", spec.get("audiences"))
        for index, audience in enumerate(audiences or ()):
            if is_shared_audience(audience):
                out.add(
                    f"{path}.audiences[{index}]",
                    f"{audience!r} is a shared audience other relying parties also accept: any "
                    "workflow could reach the exchange with it and tokens meant for others could be "
                    "replayed here; leave 'audiences' out to get the deployment's own audience "
                    "(kernel-access:<account>:<region>:exchange<suffix>) or name one unique to it",
                )
        required = out.claim_patterns(f"{path}.required_claims", spec.get("required_claims", {}))
        forbidden = out.claim_patterns(f"{path}.forbidden_claims", spec.get("forbidden_claims", {}))
        maximum = out.string_list(f"{path}.max_permissions", spec.get("max_permissions"), allow_empty=True)
        for index, item in enumerate(maximum or ()):
            if item not in CODEARTIFACT_LEVELS and not is_action_pattern(item):
                out.add(
                    f"{path}.max_permissions[{index}]",
                    f"must be an IAM action pattern like 's3:Get*' or a CodeArtifact level, got {item!r}",
                )
        age = out.integer(
            f"{path}.max_token_age_seconds",
            spec.get("max_token_age_seconds", DEFAULT_MAX_TOKEN_AGE),
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


def _parse_targets(out: _Collector, raw: object) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    mapping = out.mapping("targets", raw)
    if mapping is None:
        return targets
    for name, spec_raw in mapping.items():
        path = f"targets.{name}"
        if not isinstance(name, str) or not NAME_RE.match(name):
            out.add(path, f"target names must match {NAME_RE.pattern}")
            continue
        spec = out.mapping(path, spec_raw)
        if spec is None:
            continue
        kind = spec.get("type")
        if kind == "aws_role":
            out.unknown_keys(path, spec, {"type", "role_arn"})
            arn = out.string(f"{path}.role_arn", spec.get("role_arn"), regex=ROLE_ARN_RE)
            if arn is not None:
                targets[name] = AwsRoleTarget(name=name, role_arn=arn)
        elif kind == "codeartifact":
            out.unknown_keys(path, spec, {"type", "domain", "access", "domain_owner"})
            domain = out.string(f"{path}.domain", spec.get("domain"), regex=DOMAIN_RE)
            access = spec.get("access")
            if access not in CODEARTIFACT_LEVELS:
                out.add(f"{path}.access", f"must be 'read' or 'publish', got {access!r}")
            owner = spec.get("domain_owner")
            if owner is not None:
                owner = out.string(f"{path}.domain_owner", owner, regex=ACCOUNT_ID_RE)
            if domain is not None and access in CODEARTIFACT_LEVELS:
                targets[name] = CodeArtifactTarget(
                    name=name,
                    domain=domain,
                    access="publish" if access == "publish" else "read",
                    domain_owner=owner,
                )
        else:
            out.add(f"{path}.type", f"must be 'aws_role' or 'codeartifact', got {kind!r}")
    return targets


def _parse_trust_policies(
    out: _Collector, raw: object, raw_targets: object, targets: Mapping[str, Target]
) -> dict[str, tuple[TrustPolicy, ...]]:
    result: dict[str, tuple[TrustPolicy, ...]] = {}
    mapping = out.mapping("trust_policies", raw)
    if mapping is None:
        return result
    for target_name, policies_raw in mapping.items():
        path = f"trust_policies.{target_name}"
        target = targets.get(target_name)
        # Only report "unknown target" when the target was not declared at all (a declared but
        # invalid target already has its own error).
        if target is None and (not isinstance(raw_targets, Mapping) or target_name not in raw_targets):
            out.add(path, f"no target named {target_name!r} in targets")
        if not isinstance(policies_raw, list) or not policies_raw:
            out.add(path, "must be a non-empty list of trust policies")
            continue
        parsed: list[TrustPolicy] = []
        names: set[str] = set()
        for index, policy_raw in enumerate(policies_raw):
            policy = _parse_policy(out, f"{path}[{index}]", str(target_name), policy_raw, target)
            if policy is None:
                continue
            if policy.name in names:
                out.add(f"{path}[{index}].name", f"duplicate trust policy name {policy.name!r}")
                continue
            names.add(policy.name)
            parsed.append(policy)
        if target is not None:
            result[target_name] = tuple(parsed)
    return result


def _parse_policy(
    out: _Collector, path: str, target_name: str, raw: object, target: Target | None
) -> TrustPolicy | None:
    spec = out.mapping(path, raw)
    if spec is None:
        return None
    errors_before = len(out.errors)
    out.unknown_keys(path, spec, _POLICY_KEYS)
    name = out.string(f"{path}.name", spec.get("name"), regex=NAME_RE)
    issuer = out.matcher(path, spec, "issuer", required=True, https=True)
    subject = out.matcher(path, spec, "subject", required=True)
    audience = out.matcher(path, spec, "audience", required=False)
    claims = out.claim_patterns(f"{path}.claim_pattern", spec.get("claim_pattern", {}))
    permissions = out.string_list(f"{path}.permissions", spec.get("permissions"))
    ttl = out.integer(
        f"{path}.token_ttl", spec.get("token_ttl", DEFAULT_TOKEN_TTL), MIN_TOKEN_TTL, MAX_TOKEN_TTL
    )
    if permissions is not None and target is not None:
        _check_permissions(out, f"{path}.permissions", permissions, target)
    if len(out.errors) != errors_before or None in (name, issuer, subject, permissions, ttl):
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


def _check_permissions(out: _Collector, path: str, permissions: tuple[str, ...], target: Target) -> None:
    if isinstance(target, CodeArtifactTarget):
        for index, item in enumerate(permissions):
            if item not in CODEARTIFACT_LEVELS:
                out.add(f"{path}[{index}]", f"codeartifact targets take 'read' or 'publish', got {item!r}")
            elif item == "publish" and target.access == "read":
                out.add(f"{path}[{index}]", f"target {target.name!r} is read-only")
        return
    bad = False
    for index, item in enumerate(permissions):
        if not is_action_pattern(item):
            bad = True
            out.add(
                f"{path}[{index}]",
                "aws_role targets take IAM action patterns 'service:Action' (wildcard '*' allowed "
                f"in the action only), got {item!r}",
            )
    if not bad and len(session_policy(permissions)) > MAX_SESSION_POLICY_CHARS:
        out.add(
            path, f"the session policy for these permissions exceeds {MAX_SESSION_POLICY_CHARS} characters"
        )
