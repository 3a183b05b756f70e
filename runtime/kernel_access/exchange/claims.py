"""Checks on the presented token's claims: shape, lifetime, the central layer, the trust policies.

Claims come only from the HTTP API JWT authorizer's context (which has verified signature,
issuer, audience and expiry). API Gateway hands them over as strings: numbers such as ``iat``
arrive as ``"1700000000"`` and a list-valued ``aud`` as ``"[a b]"``. The code below accepts both
that form and real JSON types, so tests can pass decoded claims straight in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from kernel_access.contract import ErrorCode
from kernel_access.exchange.config import IssuerConfig, TrustPolicy
from kernel_access.exchange.patterns import claim_text
from kernel_access.exchange.refusal import ExchangeRefused

#: Clock skew tolerated between the issuer and us for ``iat`` (and ``nbf``).
CLOCK_SKEW_SECONDS: Final = 60
_INTEGER_RE: Final = re.compile(r"^[0-9]{1,12}$")
_MAX_JTI_LENGTH: Final = 256


@dataclass(frozen=True)
class TokenClaims:
    """The claims the exchange relies on, checked for presence and type."""

    issuer: str
    subject: str
    jti: str
    issued_at: int
    expires_at: int
    audiences: tuple[str, ...]
    all: Mapping[str, object]


def _invalid(message: str) -> ExchangeRefused:
    return ExchangeRefused(ErrorCode.INVALID_TOKEN, message)


def _epoch(claims: Mapping[str, object], name: str) -> int | None:
    value = claims.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value):
        return int(value)
    return None


def audiences_of(value: object) -> tuple[str, ...]:
    """``aud`` as a tuple: a string, a JSON list, or API Gateway's ``"[a b]"`` rendering of a list."""
    if isinstance(value, str):
        if value.startswith("[") and value.endswith("]"):
            return tuple(value[1:-1].split())
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str) and item)
    return ()


def read_claims(claims: Mapping[str, object]) -> TokenClaims:
    """Extract and type-check the required claims; refuses with INVALID_TOKEN when one is absent."""
    issuer, subject, jti = claims.get("iss"), claims.get("sub"), claims.get("jti")
    if not isinstance(issuer, str) or not issuer:
        raise _invalid("the token has no issuer (iss)")
    if not isinstance(subject, str) or not subject:
        raise _invalid("the token has no subject (sub)")
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
        raise _invalid("the token has no usable token id (jti); tokens without one cannot be replay-checked")
    issued_at, expires_at = _epoch(claims, "iat"), _epoch(claims, "exp")
    if issued_at is None:
        raise _invalid("the token has no issue time (iat)")
    if expires_at is None:
        raise _invalid("the token has no expiry (exp)")
    audiences = audiences_of(claims.get("aud"))
    if not audiences:
        raise _invalid("the token has no audience (aud)")
    return TokenClaims(issuer, subject, jti, issued_at, expires_at, audiences, claims)


def check_lifetime(token: TokenClaims, *, now: datetime, max_age_seconds: int) -> None:
    """Refuse expired tokens, tokens issued in the future and tokens older than the issuer's maximum age."""
    current = int(now.timestamp())
    if token.expires_at <= current:
        raise _invalid("the token has expired")
    if token.issued_at > current + CLOCK_SKEW_SECONDS:
        raise _invalid("the token's issue time (iat) is in the future")
    not_before = _epoch(token.all, "nbf")
    if not_before is not None and not_before > current + CLOCK_SKEW_SECONDS:
        raise _invalid("the token is not valid yet (nbf)")
    if current - token.issued_at > max_age_seconds:
        raise _invalid(
            f"the token is older than this issuer's maximum age of {max_age_seconds} s; request a fresh one"
        )


def check_central(issuer: IssuerConfig, token: TokenClaims) -> None:
    """The central layer: right issuer and audience, required claims present, forbidden claims absent."""
    if token.issuer != issuer.issuer:
        raise ExchangeRefused(
            ErrorCode.ISSUER_NOT_ALLOWED,
            f"this route accepts only tokens of issuer {issuer.name!r}",
            reason=f"route issuer {issuer.issuer} != token iss {token.issuer}",
        )
    if not set(token.audiences) & set(issuer.audiences):
        raise _invalid(f"the token's audience is not accepted for issuer {issuer.name!r}")
    for claim, pattern in issuer.required_claims.items():
        if not pattern.matches(claim_text(token.all.get(claim))):
            raise ExchangeRefused(
                ErrorCode.ISSUER_NOT_ALLOWED,
                f"the token does not meet issuer {issuer.name!r}'s requirements",
                details={"claim": claim},
                reason=f"required claim {claim} does not match /{pattern.source}/",
            )
    for claim, pattern in issuer.forbidden_claims.items():
        if pattern.forbids(token.all.get(claim)):
            raise ExchangeRefused(
                ErrorCode.ISSUER_NOT_ALLOWED,
                f"the token does not meet issuer {issuer.name!r}'s requirements",
                details={"claim": claim},
                reason=f"forbidden claim {claim} matches /{pattern.source}/",
            )


def policy_matches(policy: TrustPolicy, token: TokenClaims) -> bool:
    """True when every condition of ``policy`` holds for ``token`` (all conditions, fullmatch)."""
    if not policy.issuer.matches(token.issuer) or not policy.subject.matches(token.subject):
        return False
    if policy.audience is not None and not any(policy.audience.matches(aud) for aud in token.audiences):
        return False
    return all(
        pattern.matches(claim_text(token.all.get(claim))) for claim, pattern in policy.claim_patterns.items()
    )


def select_policy(
    target: str, policies: Sequence[TrustPolicy], token: TokenClaims, policy_name: str | None
) -> TrustPolicy:
    """The trust policy that admits ``token``: the named one, or the first that matches in order."""
    if not policies:
        raise ExchangeRefused(
            ErrorCode.TRUST_POLICY_NOT_FOUND,
            f"no trust policy exists for target {target!r}",
            details={"target": target},
        )
    candidates = [p for p in policies if p.name == policy_name] if policy_name is not None else list(policies)
    if not candidates:
        raise ExchangeRefused(
            ErrorCode.POLICY_NOT_FOUND,
            f"target {target!r} has no trust policy named {policy_name!r}",
            details={"target": target, "policy_name": policy_name},
        )
    for policy in candidates:
        if policy_matches(policy, token):
            return policy
    raise ExchangeRefused(
        ErrorCode.POLICY_NOT_FOUND,
        f"no trust policy of target {target!r} admits this token",
        details={"target": target},
        reason=f"claims matched none of: {', '.join(p.name for p in candidates)}",
    )
