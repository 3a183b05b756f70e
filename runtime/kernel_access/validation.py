"""Validators for identifiers whose format AWS fixes (account ids, external ids, STS names).

Shared by the CDK config loader (synth-time errors), the runtime (request validation) and the
kernel client (construction-time errors), so every layer rejects the same inputs the same way.
"""

from __future__ import annotations

import re
from typing import Final

ACCOUNT_ID_RE: Final = re.compile(r"^[0-9]{12}$")
ORG_ID_RE: Final = re.compile(r"^o-[a-z0-9]{10,32}$")
#: sts:ExternalId: 2-1224 characters of ``[\w+=,.@:/-]``.
EXTERNAL_ID_RE: Final = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
#: RoleSessionName and SourceIdentity: 2-64 characters of ``[\w+=,.@-]``.
STS_NAME_RE: Final = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
_STS_NAME_BAD_CHARS: Final = re.compile(r"[^\w+=,.@-]", re.ASCII)
#: IAM role names: 1-64 characters of ``[\w+=,.@-]``.
ROLE_NAME_RE: Final = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
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


def require_account_id(value: object, field: str = "account_id") -> str:
    if not isinstance(value, str) or not ACCOUNT_ID_RE.match(value):
        raise ValidationError(field, f"must be a 12-digit AWS account id, got {value!r}")
    return value


def require_org_id(value: object, field: str = "organization_id") -> str:
    if not isinstance(value, str) or not ORG_ID_RE.match(value):
        raise ValidationError(field, f"must match ^o-[a-z0-9]{{10,32}}$, got {value!r}")
    return value


def require_external_id(value: object, field: str = "external_id") -> str:
    # External IDs are not secrets (AWS says so), but we still do not echo long values back.
    if not isinstance(value, str) or not EXTERNAL_ID_RE.match(value):
        shown = repr(value) if isinstance(value, str) and len(value) <= 64 else "<value>"
        raise ValidationError(field, f"must be 2-1224 characters of [A-Za-z0-9_+=,.@:/-], got {shown}")
    return value


def require_role_name(value: object, field: str = "role_name") -> str:
    if not isinstance(value, str) or not ROLE_NAME_RE.match(value):
        raise ValidationError(field, f"must be 1-64 characters of [A-Za-z0-9_+=,.@-], got {value!r}")
    return value


def require_partner_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not PARTNER_NAME_RE.match(value):
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
    return partner if PARTNER_NAME_RE.match(partner) else None
