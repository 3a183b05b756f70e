"""The vending Lambda's configuration, read once per container from the environment infra sets.

Names come from :mod:`kernel_access.settings` (the same constants the construct uses to set the
function environment). A malformed value raises :class:`ConfigError` when the service is built,
which turns every request into INTERNAL_ERROR (audited where possible) — a misconfigured
deployment fails closed and loudly, never open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from kernel_access import settings
from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE
from kernel_access.policy.identity import KernelIdentity
from kernel_access.validation import ACCOUNT_ID_RE, ROLE_NAME_RE, ConfigError

__all__ = ["ConfigError", "VendingConfig"]

_PARTITIONS: Final = frozenset({"aws", "aws-cn", "aws-us-gov"})


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, "must be an integer") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}")
    return value


def _target_roles(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ConfigError(settings.TARGET_ROLES, "must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ConfigError(settings.TARGET_ROLES, "must be a JSON object")
    roles: dict[str, str] = {}
    for name, arn in parsed.items():
        if not isinstance(name, str) or not ROLE_NAME_RE.fullmatch(name):
            raise ConfigError(settings.TARGET_ROLES, f"invalid role name {name!r}")
        if not isinstance(arn, str) or not arn.startswith("arn:") or ":role/" not in arn:
            raise ConfigError(settings.TARGET_ROLES, f"{name!r} must map to a role ARN")
        roles[name] = arn
    return roles


@dataclass(frozen=True)
class VendingConfig:
    audit_table: str
    rate_limit_table: str
    revocation_table: str
    #: The policy document: object ``policy_key`` of ``config_bucket``.
    config_bucket: str
    policy_key: str
    policy_max_staleness: int = 300
    target_roles: Mapping[str, str] = field(default_factory=dict)
    rate_limit_requests: int = 100
    #: None: ``kernel_access.ratelimit.DEFAULT_SESSION_LIMIT`` (capped at the partner's limit).
    rate_limit_session_requests: int | None = None
    rate_limit_window_seconds: int = 60
    audit_retention_days: int = 400
    codeartifact_reader_role_arn: str | None = None
    codeartifact_publisher_role_arn: str | None = None
    codeartifact_domain_owner: str | None = None
    audit_hmac_key_parameter: str | None = None
    in_org_role_name: str = KERNEL_ACCESS_ROLE
    external_role_name: str = KERNEL_ACCESS_EXTERNAL_ROLE
    #: The function's own account and partition (``None``: nobody resolves to a partner).
    kernel_account_id: str | None = None
    partition: str | None = None

    @property
    def kernel(self) -> KernelIdentity:
        """Who the deployment is, as partner resolution needs it."""
        return KernelIdentity(
            account_id=self.kernel_account_id,
            partition=self.partition,
            in_org_role=self.in_org_role_name,
            external_role=self.external_role_name,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VendingConfig:
        def required(name: str) -> str:
            value = environ.get(name, "")
            if not value:
                raise ConfigError(name, "is not set")
            return value

        return cls(
            audit_table=required(settings.AUDIT_TABLE_NAME),
            rate_limit_table=required(settings.RATE_LIMIT_TABLE_NAME),
            revocation_table=required(settings.REVOCATION_TABLE_NAME),
            config_bucket=required(settings.CONFIG_BUCKET),
            policy_key=required(settings.POLICY_OBJECT_KEY),
            policy_max_staleness=_int(environ, settings.POLICY_MAX_STALENESS_SECONDS, 300, minimum=0),
            target_roles=_target_roles(environ.get(settings.TARGET_ROLES)),
            rate_limit_requests=_int(environ, settings.RATE_LIMIT_REQUESTS, 100),
            rate_limit_session_requests=_int(environ, settings.RATE_LIMIT_SESSION_REQUESTS, 0) or None,
            rate_limit_window_seconds=_int(environ, settings.RATE_LIMIT_WINDOW_SECONDS, 60),
            audit_retention_days=_int(environ, settings.AUDIT_RETENTION_DAYS, 400),
            codeartifact_reader_role_arn=environ.get(settings.CODEARTIFACT_READER_ROLE_ARN) or None,
            codeartifact_publisher_role_arn=environ.get(settings.CODEARTIFACT_PUBLISHER_ROLE_ARN) or None,
            codeartifact_domain_owner=environ.get(settings.CODEARTIFACT_DOMAIN_OWNER) or None,
            audit_hmac_key_parameter=environ.get(settings.AUDIT_HMAC_KEY_PARAMETER) or None,
            in_org_role_name=environ.get(settings.IN_ORG_ROLE_NAME) or KERNEL_ACCESS_ROLE,
            external_role_name=environ.get(settings.EXTERNAL_ROLE_NAME) or KERNEL_ACCESS_EXTERNAL_ROLE,
            kernel_account_id=_account(environ),
            partition=_partition(environ),
        )


def _account(environ: Mapping[str, str]) -> str | None:
    value = environ.get(settings.KERNEL_ACCOUNT_ID) or None
    if value is not None and not ACCOUNT_ID_RE.fullmatch(value):
        raise ConfigError(settings.KERNEL_ACCOUNT_ID, "must be a 12-digit account id")
    return value


def _partition(environ: Mapping[str, str]) -> str | None:
    value = environ.get(settings.PARTITION) or None
    if value is not None and value not in _PARTITIONS:
        raise ConfigError(settings.PARTITION, f"must be one of {sorted(_PARTITIONS)}")
    return value
