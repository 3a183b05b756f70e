"""The one validation toolkit: identifier formats AWS fixes, the error types, the error collector.

Every regex here is written anchored (``^...$``, as JSON Schema shows it) and checked with
``fullmatch``: Python's ``$`` also matches before a final newline, so ``match`` would accept
``"123456789012\n"`` as an account id.

Shared by the CDK config loader (synth-time errors), the runtime (request validation, the policy
and exchange document parsers, the Lambdas' environment) and the kernel client (construction-time
errors), so every layer rejects the same inputs the same way and reports them in the same shape:

* the regexes and ``require_*`` validators (:class:`ValidationError` names the field);
* :class:`ConfigError`, the error of every configuration (the Lambda environment, cdk.json);
* :class:`Collector`, which gathers *every* problem of a JSON document with its JSON path, so an
  operator fixes a broken document in one round trip instead of one error at a time.

Imported by the Lambda handlers: it must import nothing but the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar, cast

T = TypeVar("T")

ACCOUNT_ID_RE: Final = re.compile(r"^[0-9]{12}$")
ORG_ID_RE: Final = re.compile(r"^o-[a-z0-9]{10,32}$")
#: sts:ExternalId: 2-1224 characters of ``[\w+=,.@:/-]``.
EXTERNAL_ID_RE: Final = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
#: RoleSessionName and SourceIdentity: 2-64 characters of ``[\w+=,.@-]``.
STS_NAME_RE: Final = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
_STS_NAME_BAD_CHARS: Final = re.compile(r"[^\w+=,.@-]", re.ASCII)
#: IAM role names: 1-64 characters of ``[\w+=,.@-]``.
ROLE_NAME_RE: Final = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
#: IAM user/role and STS session ARNs as callers present them (what the audit records and the
#: revocation commands accept).
PRINCIPAL_ARN_RE: Final = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[\x21-\x7e]+$")
#: IAM role ARNs (paths allowed).
ROLE_ARN_RE: Final = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$", re.ASCII)
#: AWS access key ids (``AKIA...``/``ASIA...``).
ACCESS_KEY_ID_RE: Final = re.compile(r"^[A-Z0-9]{16,128}$")
#: Names operators type and audit records carry (policy rule ids, exchange targets and trust
#: policies): 1-64 characters of ``[A-Za-z0-9._-]``, starting with a letter or digit.
IDENTIFIER_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", re.ASCII)
#: Partner names are used inside RoleSessionNames and construct ids: keep them plain.
PARTNER_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
#: CodeArtifact's own naming rules: domains 2-50 of ``[a-z0-9-]`` starting with a letter and not
#: ending with a hyphen; repositories 2-100 of ``[A-Za-z0-9._-]`` starting alphanumerically.
CODEARTIFACT_DOMAIN_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,48}[a-z0-9]$", re.ASCII)
CODEARTIFACT_REPOSITORY_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,99}$", re.ASCII)


class ValidationError(ValueError):
    """A value does not have the format AWS (or kernel-access) requires; names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(ValidationError):
    """A configuration (the Lambda environment, the cdk.json ``kernel-access`` context) is invalid.

    Names the field and, where there is one, the partner. ``SOURCE`` prefixes the message with what
    was being read (a subclass sets it; the type and its attributes stay the same).
    """

    SOURCE: ClassVar[str] = ""

    def __init__(self, field: str, message: str, *, partner: str | None = None) -> None:
        super().__init__(field, message)
        where = f"partner {partner!r}: {field}" if partner is not None else field
        text = f"{where}: {message}"
        self.args = (f"{self.SOURCE}: {text}" if self.SOURCE else text,)
        self.partner = partner


def require_account_id(value: object, field: str = "account_id") -> str:
    if not isinstance(value, str) or not ACCOUNT_ID_RE.fullmatch(value):
        raise ValidationError(field, f"must be a 12-digit AWS account id, got {value!r}")
    return value


def require_org_id(value: object, field: str = "organization_id") -> str:
    if not isinstance(value, str) or not ORG_ID_RE.fullmatch(value):
        raise ValidationError(field, f"must match ^o-[a-z0-9]{{10,32}}$, got {value!r}")
    return value


def require_external_id(value: object, field: str = "external_id") -> str:
    # External IDs are not secrets (AWS says so), but we still do not echo long values back.
    if not isinstance(value, str) or not EXTERNAL_ID_RE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) and len(value) <= 64 else "<value>"
        raise ValidationError(field, f"must be 2-1224 characters of [A-Za-z0-9_+=,.@:/-], got {shown}")
    return value


def require_role_name(value: object, field: str = "role_name") -> str:
    if not isinstance(value, str) or not ROLE_NAME_RE.fullmatch(value):
        raise ValidationError(field, f"must be 1-64 characters of [A-Za-z0-9_+=,.@-], got {value!r}")
    return value


def require_partner_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not PARTNER_NAME_RE.fullmatch(value):
        raise ValidationError(
            field,
            "must be 2-32 characters of lower-case letters, digits and '-', starting with a letter, "
            f"got {value!r}",
        )
    return value


def sts_safe_name(value: str, *, max_length: int = 64, fallback: str = "kernel-access") -> str:
    """Turn arbitrary text into a valid RoleSessionName/SourceIdentity.

    Characters outside STS's set become ``-``, the result is cut to ``max_length``, padded to two
    characters and never starts with ``aws:`` (``:`` is not in the set, so it cannot).
    """
    cleaned = _STS_NAME_BAD_CHARS.sub("-", value)[:max_length]
    if len(cleaned) < 2:
        cleaned = (cleaned + fallback)[:max_length]
    return cleaned


#: Separator between the caller's account id and the rest of a kernel-access RoleSessionName.
#: The kernel-access trust policies require ``sts:RoleSessionName`` to match
#: ``${aws:PrincipalAccount}.*``: IAM itself writes the calling account into the session name, so
#: the session ARN the HTTP API's IAM authorizer reports says which account the partner is.
SESSION_ACCOUNT_SEPARATOR: Final = "."
#: The trust-policy pattern of kernel-access session names and source identities (a policy variable
#: IAM replaces with the account of the principal calling AssumeRole).
PRINCIPAL_ACCOUNT_PATTERN: Final = "${aws:PrincipalAccount}" + SESSION_ACCOUNT_SEPARATOR + "*"
#: Session tag keys a partner may set on its kernel-access session (``sts:TagSession`` is allowed
#: for these keys only). The keys the kernel sets itself on vended sessions (``partner``,
#: ``caller-account``, ``request-id``) are deliberately absent: a partner must not be able to
#: present a principal tag that a kernel service could mistake for one the kernel vouches for.
PARTNER_SESSION_TAG_KEYS: Final = ("workload", "job", "environment")
#: Session name (prefix) of the sessions the OIDC token exchange creates on target roles.
EXCHANGE_SESSION_NAME: Final = "exchange"
#: Names the kernel uses itself (as a session-name head, a role-name prefix or a fallback): a
#: partner with one of them would produce vended session names that look like the kernel's own.
RESERVED_PARTNER_NAMES: Final = frozenset(
    {EXCHANGE_SESSION_NAME, "kernel", "kernel-access", "unknown", "local", "codeartifact", "none"}
)
#: Role names the kernel-access construct keeps for its own partner-facing roles.
KERNEL_ROLE_PREFIX: Final = "kernel-access"


def session_name_prefix(account_id: str) -> str:
    """``<account>.``: what the trust policies require a kernel-access session name to start with."""
    return f"{account_id}{SESSION_ACCOUNT_SEPARATOR}"


def external_role_name(external_role_base: str, partner: str) -> str:
    """The role of one external partner: ``kernel-access-external[<suffix>]-<partner>``.

    One role per external partner (each trusting one account with one external ID) keeps every
    trust policy the same size whatever the number of partners; the partner is read back from the
    role name, which only the kernel account can choose.
    """
    return f"{external_role_base}-{partner}"


def partner_of_external_role(external_role_base: str, role_name: str) -> str | None:
    """Inverse of :func:`external_role_name` (``None`` when ``role_name`` is not such a role)."""
    prefix = f"{external_role_base}-"
    if not role_name.startswith(prefix):
        return None
    partner = role_name[len(prefix) :]
    return partner if PARTNER_NAME_RE.fullmatch(partner) else None


# --- collecting every error of a JSON document ---------------------------------------------------

# bool before number: in Python a bool is an int.
_JSON_TYPE_NAMES: Final[tuple[tuple[type | tuple[type, ...], str], ...]] = (
    (bool, "boolean"),
    ((int, float), "number"),
    (str, "string"),
    ((list, tuple), "array"),
    (Mapping, "object"),
)


def json_type_name(value: object) -> str:
    """The JSON name of a value's type (``array``, not ``list``), for messages."""
    for kinds, name in _JSON_TYPE_NAMES:
        if isinstance(value, kinds):
            return name
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Issue:
    """One problem of a document: the JSON path of the field, what is wrong, and the scope.

    ``scope`` names the entity the path is relative to when a document reports that way (the
    policy's rule id); ``None`` when ``path`` starts at the document's root.
    """

    scope: str | None
    path: str
    message: str


class Collector:
    """Accumulates the problems of one document; each ``check`` returns the value or ``None``.

    A check that fails records an :class:`Issue` and returns ``None``, so a parser walks the whole
    document and reports everything at once. ``empty_list_hint`` is appended to the message of an
    empty array (the policy says that omitting the field matches any value).
    """

    def __init__(self, *, empty_list_hint: str = "") -> None:
        self.issues: list[Issue] = []
        self._empty_list_hint = empty_list_hint

    def error(self, scope: str | None, path: str, message: str) -> None:
        self.issues.append(Issue(scope, path, message))

    def mapping(self, value: object, scope: str | None, path: str) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.error(scope, path, f"must be an object, got {json_type_name(value)}")
            return None
        return cast("Mapping[str, Any]", value)

    def unknown_fields(
        self, value: Mapping[str, Any], allowed: frozenset[str], scope: str | None, prefix: str
    ) -> None:
        """Unknown fields are errors: a misspelt condition must not silently widen a policy."""
        for key in value:
            if key not in allowed:
                name = f"{prefix}.{key}" if prefix else str(key)
                self.error(scope, name, f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def string(
        self,
        value: object,
        scope: str | None,
        path: str,
        *,
        regex: re.Pattern[str] | None = None,
        non_empty: bool = False,
    ) -> str | None:
        if not isinstance(value, str):
            self.error(scope, path, f"must be a string, got {json_type_name(value)}")
            return None
        if non_empty and not value:
            self.error(scope, path, "must be a non-empty string")
            return None
        if regex is not None and not regex.fullmatch(value):
            self.error(scope, path, f"must match {regex.pattern}, got {value!r}")
            return None
        return value

    def integer(self, value: object, scope: str | None, path: str, low: int, high: int) -> int | None:
        # bool is an int subclass: reject it explicitly so `true` never means 1.
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(scope, path, f"must be an integer, got {json_type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(scope, path, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def string_list(
        self,
        value: object,
        scope: str | None,
        path: str,
        item: Callable[[str, str], T],
        *,
        allow_empty: bool = False,
        max_items: int | None = None,
        unique: bool = False,
    ) -> list[T] | None:
        """An array of strings, each converted by ``item(text, path)`` (which raises
        :class:`ValueError` with a message for a bad element); every bad element is reported."""
        if not isinstance(value, list):
            self.error(scope, path, f"must be an array of strings, got {json_type_name(value)}")
            return None
        if not value and not allow_empty:
            hint = f" ({self._empty_list_hint})" if self._empty_list_hint else ""
            self.error(scope, path, f"must not be empty{hint}")
            return None
        if max_items is not None and len(value) > max_items:
            self.error(scope, path, f"at most {max_items} entries, got {len(value)}")
            return None
        parsed: list[T] = []
        ok = True
        for index, element in enumerate(value):
            element_path = f"{path}[{index}]"
            if not isinstance(element, str):
                self.error(scope, element_path, f"must be a string, got {json_type_name(element)}")
                ok = False
                continue
            try:
                parsed.append(item(element, element_path))
            except ValidationError as exc:
                self.error(scope, element_path, exc.message)
                ok = False
            except ValueError as exc:
                self.error(scope, element_path, str(exc))
                ok = False
        if ok and unique and len(set(value)) != len(value):
            self.error(scope, path, "entries must be unique")
            ok = False
        return parsed if ok else None


def non_empty_text(text: str, _path: str) -> str:
    """A :meth:`Collector.string_list` item: any non-empty string."""
    if not text:
        raise ValueError("must be a non-empty string")
    return text


def matching(regex: re.Pattern[str], what: str) -> Callable[[str, str], str]:
    """A :meth:`Collector.string_list` item: a string ``regex`` matches (``what`` says what it is)."""

    def check(text: str, _path: str) -> str:
        if not regex.fullmatch(text):
            raise ValueError(f"{what}, got {text!r}")
        return text

    return check
