"""IAM for the local kernel: trust policies on ``AssumeRole`` and ``execute-api:Invoke`` on IAM routes.

moto stores policies but evaluates none, so without this module any key assumes any role locally and
every signed request reaches the handler: the controls kernel-access is built on (who may assume which
role, with which external ID and session name, which routes a role may call) would only ever be read,
never run. This module evaluates them from the template, as AWS would:

* ``AssumeRole``: the target role's trust policy (its resource-based policy) and the caller's identity
  policies, for ``sts:AssumeRole`` plus ``sts:SetSourceIdentity`` when a source identity is passed and
  ``sts:TagSession`` when session tags are passed. An explicit deny anywhere wins; otherwise the trust
  policy must allow, and so must the caller's identity policies unless the trust policy names the
  caller itself (a role, session or service) in the same account. Cross-account, both sides always.
* ``execute-api:Invoke`` on an ``AWS_IAM`` route: HTTP APIs have no resource policies, so the caller
  must be in the API's account and its identity policies must allow the route's ARN.

Why our own evaluator rather than a library: what exists on the package index either evaluates no
request context (policyuniverse parses and expands; parliament and cloudsplaining lint and audit), or
works on a whole account's downloaded authorization details with a last release in early 2022
(principalmapper's local simulation), or is not in Python at all. None would let us hand it a template
role and a request context, and each would add a heavy dependency to the dev extra. The evaluator here
is deliberately small: the IAM User Guide's evaluation logic ("Policy evaluation logic",
"Cross-account policy evaluation logic"), its condition operators and set qualifiers, and policy
variables, limited to what a kernel template can express. ``tests/runtime/local/test_iam.py`` pins each rule
with the User Guide's own examples, and ``docs/local-iam.md`` lists what is not evaluated.

Fail closed: a condition this module cannot evaluate (an operator it does not know, a number that does
not parse, a policy variable with no value and no default) makes an ``Allow`` statement not apply and a
``Deny`` statement apply. Where that differs from AWS, the emulator is stricter than AWS, never looser.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

#: The actions an AssumeRole request is authorized for, beyond sts:AssumeRole itself.
SET_SOURCE_IDENTITY: Final = "sts:SetSourceIdentity"
TAG_SESSION: Final = "sts:TagSession"
ASSUME_ROLE: Final = "sts:AssumeRole"
INVOKE: Final = "execute-api:Invoke"
#: The identity policy a role outside the template holds unless one is declared for it: it may assume
#: roles (what a partner stack grants its workload role), and nothing else. The trust policy decides.
DEFAULT_WORKLOAD_POLICY: Final[Mapping[str, Any]] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "LocalDefaultWorkload",
            "Effect": "Allow",
            "Action": [ASSUME_ROLE, SET_SOURCE_IDENTITY, TAG_SESSION],
            "Resource": "*",
        }
    ],
}

_VARIABLE_RE: Final = re.compile(r"\$\{([^}]*)\}")
_ROLE_ARN_RE: Final = re.compile(r"^arn:(?P<p>aws[a-z-]*):iam::(?P<a>[0-9]{12}):role/(?:.*/)?(?P<n>[^/]+)$")
_SESSION_ARN_RE: Final = re.compile(
    r"^arn:(?P<p>aws[a-z-]*):sts::(?P<a>[0-9]{12}):assumed-role/(?P<n>[^/]+)/(?P<s>[^/]+)$"
)
_ACCOUNT_RE: Final = re.compile(r"^(?:arn:aws[a-z-]*:iam::)?(?P<a>[0-9]{12})(?::root)?$")


class Unevaluable(Exception):
    """A condition (or a variable in an element) that cannot be evaluated: it counts against the caller."""


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class PrincipalMatch(StrEnum):
    """How a resource policy statement's ``Principal`` named the caller."""

    SPECIFIC = "specific"  # the caller's role, session, user or service by name
    ACCOUNT = "account"  # the caller's account (or "*"): its identity policies must allow too


# --------------------------------------------------------------------------------------------------
# Who is calling, and what the request says
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """A principal as IAM sees it.

    ``arn``: what AWS reports and puts in refusals (a session's ``assumed-role`` ARN, a user's ARN,
    a service name). ``role_arn``: the role behind a session. ``service``: set for service principals
    (``lambda.amazonaws.com``), which have no identity policies.
    """

    arn: str
    account: str | None
    role_arn: str | None = None
    role_name: str | None = None
    user_id: str | None = None
    service: str | None = None

    @classmethod
    def from_arn(cls, arn: str, *, user_id: str | None = None) -> Caller:
        session = _SESSION_ARN_RE.match(arn)
        if session:
            role_arn = f"arn:{session['p']}:iam::{session['a']}:role/{session['n']}"
            return cls(arn, session["a"], role_arn, session["n"], user_id)
        role = _ROLE_ARN_RE.match(arn)
        if role:
            return cls(arn, role["a"], arn, role["n"], user_id)
        account = re.match(r"^arn:aws[a-z-]*:iam::([0-9]{12}):", arn)
        return cls(arn, account.group(1) if account else None, None, None, user_id)

    @classmethod
    def of_service(cls, service: str) -> Caller:
        return cls(service, None, service=service)

    @property
    def principal_type(self) -> str:
        if self.service:
            return "AWSService"
        if _SESSION_ARN_RE.match(self.arn):
            return "AssumedRole"
        return "Account" if self.arn.endswith(":root") else "User"


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization; ``message`` is AWS's wording for the refusal."""

    allowed: bool
    action: str
    resource: str
    caller: str
    explicit_deny: bool = False
    reason: str = ""

    @property
    def message(self) -> str:
        text = f"User: {self.caller} is not authorized to perform: {self.action} on resource: {self.resource}"
        return f"{text} with an explicit deny" if self.explicit_deny else text


Context = Mapping[str, Sequence[str]]


def context_of(values: Mapping[str, str | Sequence[str] | None]) -> dict[str, list[str]]:
    """A request context: condition key names lower-cased (they are case-insensitive), values as lists."""
    out: dict[str, list[str]] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key.lower()] = [value] if isinstance(value, str) else [str(v) for v in value]
    return out


def principal_context(
    caller: Caller, org_id: str | None, now: datetime | None = None
) -> dict[str, list[str]]:
    """The global keys every request carries about its principal (and the time)."""
    moment = now or datetime.now(UTC)
    return context_of(
        {
            "aws:PrincipalArn": caller.role_arn or (None if caller.service else caller.arn),
            "aws:PrincipalAccount": caller.account,
            "aws:PrincipalOrgID": org_id,
            "aws:PrincipalType": caller.principal_type,
            "aws:PrincipalIsAWSService": "true" if caller.service else "false",
            "aws:PrincipalServiceName": caller.service,
            "aws:userid": caller.user_id,
            "aws:SecureTransport": "true",
            "aws:CurrentTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(moment.timestamp())),
        }
    )


# --------------------------------------------------------------------------------------------------
# Matching: wildcards, ARNs, policy variables
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """``*`` (any run) and ``?`` (one character) anywhere in ``pattern``; the whole value must match."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def arn_like(pattern: str, value: str) -> bool:
    """IAM's ``ArnLike``: each of the six colon-separated parts is matched separately, with wildcards."""
    wanted, actual = pattern.split(":", 5), value.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return False
    return all(wildcard_match(w, a) for w, a in zip(wanted, actual, strict=True))


_LITERAL_VARIABLES: Final[Mapping[str, str]] = {"*": "\x00star", "?": "\x00qm", "$": "$"}


def substitute(text: str, context: Context) -> str:
    """Replace ``${key}`` / ``${key, 'default'}`` with the request's value (IAM User Guide, policy variables).

    ``${*}``, ``${?}`` and ``${$}`` stand for the literal characters; a substituted value never acts as a
    wildcard (it is marked so and escaped by :func:`_pattern_match`). A key with no value and no
    default cannot be evaluated.
    """
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if inner in _LITERAL_VARIABLES:
            return _LITERAL_VARIABLES[inner]
        key, _, default = inner.partition(",")
        values = context.get(key.strip().lower())
        if values and len(values) == 1:
            return "\x01" + values[0] + "\x02"
        default = default.strip()
        if len(default) >= 2 and default[0] == default[-1] == "'":
            return "\x01" + default[1:-1] + "\x02"
        raise Unevaluable(f"policy variable ${{{inner}}} has no value")

    return _VARIABLE_RE.sub(replace, text)


def _literal(text: str) -> str:
    """A substituted string as plain text (markers removed)."""
    return text.replace("\x00star", "*").replace("\x00qm", "?").replace("\x01", "").replace("\x02", "")


def _pattern_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Wildcard match where substituted variables and ``${*}``/``${?}`` are literal text."""
    if "\x00" not in pattern and "\x01" not in pattern:
        return wildcard_match(pattern, value, ignore_case=ignore_case)
    regex: list[str] = []
    literal = False
    index = 0
    while index < len(pattern):
        if pattern.startswith("\x00star", index):
            regex.append(re.escape("*"))
            index += 5
            continue
        if pattern.startswith("\x00qm", index):
            regex.append(re.escape("?"))
            index += 3
            continue
        char = pattern[index]
        index += 1
        if char in "\x01\x02":
            literal = char == "\x01"
        elif not literal and char == "*":
            regex.append(".*")
        elif not literal and char == "?":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.fullmatch("".join(regex), value, flags) is not None


# --------------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise Unevaluable(f"condition value {value!r} is not a string")


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise Unevaluable(f"{value!r} is not a number") from error


def _date(value: str) -> float:
    try:
        return (
            float(value)
            if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value)
            else datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        )
    except ValueError as error:
        raise Unevaluable(f"{value!r} is not a date") from error


def _ip_in(network: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError as error:
        raise Unevaluable(f"{address!r} / {network!r} is not an IP address or range") from error


#: Base operator -> (matches(policy_value, request_value), negated). Policy values arrive substituted.
_OPERATORS: Final[Mapping[str, tuple[Callable[[str, str], bool], bool]]] = {
    "stringequals": (lambda p, v: _literal(p) == v, False),
    "stringnotequals": (lambda p, v: _literal(p) == v, True),
    "stringequalsignorecase": (lambda p, v: _literal(p).lower() == v.lower(), False),
    "stringnotequalsignorecase": (lambda p, v: _literal(p).lower() == v.lower(), True),
    "stringlike": (_pattern_match, False),
    "stringnotlike": (_pattern_match, True),
    "arnequals": (lambda p, v: arn_like(_literal(p), v), False),
    "arnlike": (lambda p, v: arn_like(_literal(p), v), False),
    "arnnotequals": (lambda p, v: arn_like(_literal(p), v), True),
    "arnnotlike": (lambda p, v: arn_like(_literal(p), v), True),
    "bool": (lambda p, v: _literal(p).lower() == v.lower(), False),
    "numericequals": (lambda p, v: _number(v) == _number(p), False),
    "numericnotequals": (lambda p, v: _number(v) == _number(p), True),
    "numericlessthan": (lambda p, v: _number(v) < _number(p), False),
    "numericlessthanequals": (lambda p, v: _number(v) <= _number(p), False),
    "numericgreaterthan": (lambda p, v: _number(v) > _number(p), False),
    "numericgreaterthanequals": (lambda p, v: _number(v) >= _number(p), False),
    "dateequals": (lambda p, v: _date(v) == _date(_literal(p)), False),
    "datenotequals": (lambda p, v: _date(v) == _date(_literal(p)), True),
    "datelessthan": (lambda p, v: _date(v) < _date(_literal(p)), False),
    "datelessthanequals": (lambda p, v: _date(v) <= _date(_literal(p)), False),
    "dategreaterthan": (lambda p, v: _date(v) > _date(_literal(p)), False),
    "dategreaterthanequals": (lambda p, v: _date(v) >= _date(_literal(p)), False),
    "ipaddress": (lambda p, v: _ip_in(_literal(p), v), False),
    "notipaddress": (lambda p, v: _ip_in(_literal(p), v), True),
}


def condition_holds(operator: str, block: Any, context: Context) -> bool:  # noqa: PLR0912 - IAM's rules
    """One operator of a ``Condition`` element: every key of ``block`` must hold (logical AND).

    Per key, several policy values are alternatives (OR), or for a negated operator all must miss
    (NOR). A key absent from the request fails a positive operator and satisfies a negated one, except
    with ``...IfExists`` (absent: true) and ``Null`` (tests presence). ``ForAllValues:`` holds when every
    request value matches (so also for an absent or empty key); ``ForAnyValue:`` when at least one does.
    """
    if not isinstance(block, Mapping):
        raise Unevaluable(f"condition {operator} is not a mapping")
    qualifier, _, name = operator.rpartition(":")
    qualifier = qualifier.lower()
    if qualifier not in ("", "forallvalues", "foranyvalue"):
        raise Unevaluable(f"unknown set operator {qualifier}")
    base = name.lower()
    if_exists = base.endswith("ifexists")
    base = base.removesuffix("ifexists")
    for key, raw in block.items():
        policy_values = [_text(v) for v in (raw if isinstance(raw, list) else [raw])]
        request_values = context.get(str(key).lower())
        absent = not request_values
        if base == "null":
            if not all(v.lower() in ("true", "false") for v in policy_values):
                raise Unevaluable("Null takes true or false")
            if not any((v.lower() == "true") == absent for v in policy_values):
                return False
            continue
        if base not in _OPERATORS:
            raise Unevaluable(f"operator {name} is not evaluated locally")
        matches, negated = _OPERATORS[base]
        if absent:
            if qualifier == "forallvalues":
                continue
            if qualifier == "foranyvalue":
                return False
            if if_exists or negated:
                continue
            return False
        substituted = [substitute(p, context) for p in policy_values]

        def one(
            value: str, substituted: list[str] = substituted, matches: Any = matches, negated: bool = negated
        ) -> bool:
            hit = any(matches(p, value) for p in substituted)
            return not hit if negated else hit

        assert request_values is not None
        if qualifier == "forallvalues":
            ok = all(one(v) for v in request_values)
        else:
            ok = any(one(v) for v in request_values)
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------------------------------
# Statements and policies
# --------------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def statements(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)]


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(wildcard_match(str(a), action, ignore_case=True) for a in _as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(
            wildcard_match(str(a), action, ignore_case=True) for a in _as_list(statement["NotAction"])
        )
    return False


def _resource_matches(statement: Mapping[str, Any], resource: str, context: Context) -> bool:
    if "Resource" in statement:
        return any(
            _pattern_match(substitute(str(r), context), resource) for r in _as_list(statement["Resource"])
        )
    if "NotResource" in statement:
        return not any(
            _pattern_match(substitute(str(r), context), resource) for r in _as_list(statement["NotResource"])
        )
    return True  # a trust policy (resource-based) has no Resource element


def principal_match(principal: Any, caller: Caller) -> PrincipalMatch | None:
    """How ``principal`` (a statement's ``Principal`` value) names ``caller``, if it does."""
    if principal == "*":
        return PrincipalMatch.ACCOUNT
    if not isinstance(principal, Mapping):
        return None
    best: PrincipalMatch | None = None
    for kind, values in principal.items():
        for raw in _as_list(values):
            value = str(raw)
            found: PrincipalMatch | None = None
            if kind == "Service":
                found = PrincipalMatch.SPECIFIC if caller.service and value == caller.service else None
            elif kind != "AWS" or caller.service:
                found = None  # Federated and CanonicalUser principals are not emulated
            elif value == "*":
                found = PrincipalMatch.ACCOUNT
            elif (account := _ACCOUNT_RE.match(value)) is not None:
                found = PrincipalMatch.ACCOUNT if account["a"] == caller.account else None
            elif (role := _ROLE_ARN_RE.match(value)) is not None:
                same = role["a"] == caller.account and role["n"] == caller.role_name
                found = PrincipalMatch.SPECIFIC if same and caller.role_arn else None
            else:
                found = PrincipalMatch.SPECIFIC if value == caller.arn else None
            if found is PrincipalMatch.SPECIFIC:
                return found
            best = best or found
    return best


@dataclass(frozen=True)
class PolicyResult:
    """What a set of policies says about one action: allowed (and how the principal matched), denied."""

    allowed: bool = False
    denied: bool = False
    match: PrincipalMatch | None = None
    statement: str = ""


def evaluate(  # noqa: PLR0912 - IAM's evaluation order, one branch per rule
    documents: Iterable[Any],
    *,
    action: str,
    resource: str,
    context: Context,
    caller: Caller | None = None,
) -> PolicyResult:
    """Evaluate policy documents for one action on one resource.

    ``caller`` given: the documents are resource-based (a trust policy) and each statement's
    ``Principal``/``NotPrincipal`` must name the caller. Without it they are identity policies.
    """
    allowed, match, allowed_by = False, None, ""
    for document in documents:
        for index, statement in enumerate(statements(document)):
            effect = statement.get("Effect")
            if effect not in (Effect.ALLOW, Effect.DENY):
                continue
            sid = str(statement.get("Sid", f"#{index}"))
            if not _action_matches(statement, action):
                continue
            statement_match: PrincipalMatch | None = PrincipalMatch.SPECIFIC
            if caller is not None:
                if "Principal" in statement:
                    statement_match = principal_match(statement["Principal"], caller)
                elif "NotPrincipal" in statement:
                    named = principal_match(statement["NotPrincipal"], caller)
                    statement_match = None if named else PrincipalMatch.ACCOUNT
                else:
                    statement_match = None
                if statement_match is None:
                    continue
            try:
                applies = _resource_matches(statement, resource, context) and all(
                    condition_holds(str(op), block, context)
                    for op, block in (statement.get("Condition") or {}).items()
                )
            except Unevaluable:
                applies = effect == Effect.DENY  # fail closed: never an allow, always a deny
            if not applies:
                continue
            if effect == Effect.DENY:
                return PolicyResult(denied=True, statement=sid)
            if not allowed or statement_match is PrincipalMatch.SPECIFIC:
                allowed, match, allowed_by = True, statement_match, sid
    return PolicyResult(allowed=allowed, match=match, statement=allowed_by)


# --------------------------------------------------------------------------------------------------
# The model: roles of the template, declared outside roles, accounts and their organization
# --------------------------------------------------------------------------------------------------


@dataclass
class RoleFacts:
    arn: str
    trust_policy: Mapping[str, Any]
    identity_policies: list[Mapping[str, Any]] = field(default_factory=list)
    #: Managed policies the emulator cannot read (AWS-managed ones): they grant nothing locally.
    unreadable_policies: list[str] = field(default_factory=list)


@dataclass
class AssumeRoleRequest:
    role_arn: str
    session_name: str
    external_id: str | None = None
    source_identity: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive_tag_keys: Sequence[str] = ()


@dataclass
class IamModel:
    """Everything the evaluator knows: roles by (account, name), declarations, organization membership.

    ``roles``: the template's roles. ``declared``: identity policies of roles outside the template
    (partner workload roles), by role ARN; a role outside the template with no declaration holds
    :data:`DEFAULT_WORKLOAD_POLICY`. ``organizations``: account -> organization id (accounts absent
    are in no organization).
    """

    roles: dict[tuple[str, str], RoleFacts] = field(default_factory=dict)
    declared: dict[tuple[str, str], list[Mapping[str, Any]]] = field(default_factory=dict)
    organizations: dict[str, str] = field(default_factory=dict)

    def add_role(self, facts: RoleFacts) -> None:
        match = _ROLE_ARN_RE.match(facts.arn)
        if match is None:
            raise ValueError(f"not a role ARN: {facts.arn}")
        self.roles[(match["a"], match["n"])] = facts

    def declare(self, role_arn: str, policies: Sequence[Mapping[str, Any]]) -> None:
        """Declare the identity policies of a role outside the template (e.g. a partner workload)."""
        match = _ROLE_ARN_RE.match(role_arn)
        if match is None:
            raise ValueError(f"not a role ARN: {role_arn}")
        self.declared[(match["a"], match["n"])] = list(policies)

    def role(self, arn: str) -> RoleFacts | None:
        match = _ROLE_ARN_RE.match(arn)
        return self.roles.get((match["a"], match["n"])) if match else None

    def org_of(self, account: str | None) -> str | None:
        return self.organizations.get(account) if account else None

    def identity_policies(self, caller: Caller) -> list[Mapping[str, Any]]:
        if caller.service or caller.account is None or caller.role_name is None:
            return []  # services have none; IAM users and root are not emulated (they get nothing)
        key = (caller.account, caller.role_name)
        if key in self.roles:
            return self.roles[key].identity_policies
        return self.declared.get(key, [DEFAULT_WORKLOAD_POLICY])

    def _principal_context(self, caller: Caller, now: datetime | None = None) -> dict[str, list[str]]:
        context = principal_context(caller, self.org_of(caller.account), now)
        if caller.account and caller.role_name and (caller.account, caller.role_name) in self.roles:
            # A session ARN drops the role's path; aws:PrincipalArn is the role's full ARN.
            context["aws:principalarn"] = [self.roles[(caller.account, caller.role_name)].arn]
        return context

    # ---- decisions ---------------------------------------------------------------------------------

    def assume_role(
        self, caller: Caller, request: AssumeRoleRequest, *, now: datetime | None = None
    ) -> Decision:
        """Decide an ``AssumeRole`` of a template role (trust policy and the caller's identity policies)."""
        role = self.role(request.role_arn)
        if role is None:
            return Decision(False, ASSUME_ROLE, request.role_arn, caller.arn, reason="role not in template")
        context = self._principal_context(caller, now)
        context.update(
            context_of(
                {
                    "sts:RoleSessionName": request.session_name,
                    "sts:ExternalId": request.external_id,
                    "sts:SourceIdentity": request.source_identity,
                    "sts:TransitiveTagKeys": list(request.transitive_tag_keys) or None,
                    "aws:TagKeys": list(request.tags) or None,
                    **{f"aws:RequestTag/{k}": v for k, v in request.tags.items()},
                }
            )
        )
        actions = [ASSUME_ROLE]
        if request.source_identity is not None:
            actions.append(SET_SOURCE_IDENTITY)
        if request.tags or request.transitive_tag_keys:
            actions.append(TAG_SESSION)
        role_account = _ROLE_ARN_RE.match(role.arn)
        same_account = role_account is not None and role_account["a"] == caller.account
        identity = self.identity_policies(caller)
        for action in actions:
            decision = self._both_sides(caller, role, action, context, identity, same_account=same_account)
            if not decision.allowed:
                return decision
        return Decision(True, ASSUME_ROLE, role.arn, caller.arn)

    def _both_sides(
        self,
        caller: Caller,
        role: RoleFacts,
        action: str,
        context: Context,
        identity: list[Mapping[str, Any]],
        *,
        same_account: bool,
    ) -> Decision:
        trust = evaluate(
            [role.trust_policy], action=action, resource=role.arn, context=context, caller=caller
        )
        own = (
            PolicyResult()
            if caller.service
            else evaluate(identity, action=action, resource=role.arn, context=context)
        )
        if trust.denied or own.denied:
            where = "trust policy" if trust.denied else "identity policy"
            statement = trust.statement if trust.denied else own.statement
            return Decision(
                False, action, role.arn, caller.arn, explicit_deny=True, reason=f"{where} {statement}"
            )
        if not trust.allowed:
            return Decision(False, action, role.arn, caller.arn, reason="no trust policy statement allows")
        if caller.service or (same_account and trust.match is PrincipalMatch.SPECIFIC) or own.allowed:
            return Decision(True, action, role.arn, caller.arn)
        return Decision(False, action, role.arn, caller.arn, reason="no identity policy allows")

    def invoke(
        self, caller: Caller, resource: str, *, api_account: str, source_ip: str | None = None
    ) -> Decision:
        """Decide ``execute-api:Invoke`` on ``resource`` (HTTP APIs have no resource policies)."""
        if caller.account != api_account:
            return Decision(
                False, INVOKE, resource, caller.arn, reason="cross-account: HTTP APIs have no resource policy"
            )
        context = self._principal_context(caller)
        if source_ip:
            context["aws:sourceip"] = [source_ip]
        result = evaluate(self.identity_policies(caller), action=INVOKE, resource=resource, context=context)
        if result.denied:
            return Decision(False, INVOKE, resource, caller.arn, explicit_deny=True, reason=result.statement)
        if not result.allowed:
            return Decision(False, INVOKE, resource, caller.arn, reason="no identity policy allows")
        return Decision(True, INVOKE, resource, caller.arn)
