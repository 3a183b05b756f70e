"""OIDC token exchange: a CI pipeline's OIDC token → scoped, audited, short-lived credentials.

Two layers of authorization (central issuer rules, then per-target trust policies with
``issuer``/``subject``/``audience`` exact-or-pattern and ``claim_pattern``, every regex anchored),
the intersection of permissions, fail-closed audit, issued tokens tracked by fingerprint, and no
fail-open path: a missing or unreadable configuration refuses every exchange.

Public API used outside this package: :func:`parse_exchange_config` (``kernel-access policy lint``),
:class:`ExchangeConfig`, :class:`ExchangeConfigError`, :class:`IssuedTokenStore` (the CLI).
"""

from kernel_access.exchange.config import (
    ConfigIssue,
    ExchangeConfig,
    ExchangeConfigError,
    parse_exchange_config,
)
from kernel_access.exchange.issued import IssuedToken, IssuedTokenStore, revocation_advice

__all__ = [
    "ConfigIssue",
    "ExchangeConfig",
    "ExchangeConfigError",
    "IssuedToken",
    "IssuedTokenStore",
    "parse_exchange_config",
    "revocation_advice",
]
