"""The exchange request body: ``{target, policy_name?, requested_permissions?, requested_ttl?}``.

Everything is checked before any AWS call: unknown fields, wrong types, oversized bodies and
out-of-range TTLs are INVALID_REQUEST. The body never carries identity; that comes only from the
JWT authorizer's context.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from kernel_access.contract import ErrorCode
from kernel_access.exchange.config import MAX_TOKEN_TTL, MIN_TOKEN_TTL, NAME_RE
from kernel_access.exchange.refusal import ExchangeRefused

MAX_BODY_BYTES: Final = 4096
MAX_REQUESTED_PERMISSIONS: Final = 50
MAX_PERMISSION_LENGTH: Final = 200
_FIELDS: Final = frozenset({"target", "policy_name", "requested_permissions", "requested_ttl"})


@dataclass(frozen=True)
class ExchangeRequest:
    target: str
    policy_name: str | None = None
    requested_permissions: tuple[str, ...] | None = None
    requested_ttl: int | None = None


def _invalid(message: str, **details: Any) -> ExchangeRefused:
    return ExchangeRefused(ErrorCode.INVALID_REQUEST, message, details=details or None)


def decode_body(body: object, is_base64: bool) -> str:
    """The request body as text, bounded in size before it is decoded or parsed."""
    if body is None or body == "":
        raise _invalid("a JSON body is required")
    if not isinstance(body, str):
        raise _invalid("the body must be JSON text")
    if len(body) > (MAX_BODY_BYTES * 4) // 3 + 4:
        raise _invalid(f"the body exceeds {MAX_BODY_BYTES} bytes")
    raw = body.encode("utf-8")
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("the body is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise _invalid(f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("the body is not UTF-8") from None


def parse_request(text: str) -> ExchangeRequest:
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _invalid("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise _invalid("unknown fields in the request", fields=unknown[:10])
    target = document.get("target")
    if not isinstance(target, str) or not NAME_RE.fullmatch(target):
        raise _invalid("target is required: a name of 1-64 characters of [A-Za-z0-9_.-]", field="target")
    policy_name = document.get("policy_name")
    if policy_name is not None and (not isinstance(policy_name, str) or not NAME_RE.fullmatch(policy_name)):
        raise _invalid("policy_name must be 1-64 characters of [A-Za-z0-9_.-]", field="policy_name")
    permissions = document.get("requested_permissions")
    requested: tuple[str, ...] | None = None
    if permissions is not None:
        if (
            not isinstance(permissions, list)
            or not permissions
            or len(permissions) > MAX_REQUESTED_PERMISSIONS
            or not all(isinstance(p, str) and 0 < len(p) <= MAX_PERMISSION_LENGTH for p in permissions)
        ):
            raise _invalid(
                f"requested_permissions must be a non-empty list of at most {MAX_REQUESTED_PERMISSIONS} "
                "non-empty strings",
                field="requested_permissions",
            )
        requested = tuple(permissions)
    ttl = document.get("requested_ttl")
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL
    ):
        raise _invalid(
            f"requested_ttl must be an integer number of seconds from {MIN_TOKEN_TTL} to {MAX_TOKEN_TTL}",
            field="requested_ttl",
        )
    return ExchangeRequest(
        target=target, policy_name=policy_name, requested_permissions=requested, requested_ttl=ttl
    )


def effective_ttl(requested: int | None, policy_ttl: int) -> int:
    """requested (default 900) clamped to the trust policy's ``token_ttl`` (itself ≤ 3600)."""
    wanted = MIN_TOKEN_TTL if requested is None else requested
    return max(MIN_TOKEN_TTL, min(wanted, policy_ttl, MAX_TOKEN_TTL))
