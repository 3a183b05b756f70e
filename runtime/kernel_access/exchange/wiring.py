"""Builds the exchange service from the Lambda environment (names in :mod:`kernel_access.settings`).

Every table and the configuration object (bucket and key) are required: a deployment missing one fails to
build the service, and the handler answers INTERNAL_ERROR to every request — never an exchange
without replay protection, revocation list, rate limit or audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from kernel_access import settings
from kernel_access.audit import DEFAULT_RETENTION_DAYS, AuditLog, TokenFingerprinter, ssm_key_loader
from kernel_access.aws_clients import default_clients
from kernel_access.document_store import S3Reader, s3_fetcher
from kernel_access.exchange.issued import IssuedTokenStore
from kernel_access.exchange.minting import Minter
from kernel_access.exchange.replay import ReplayGuard
from kernel_access.exchange.service import ExchangeService
from kernel_access.exchange.store import ExchangeConfigStore
from kernel_access.ratelimit import DEFAULT_LIMIT, DEFAULT_WINDOW_SECONDS, RateLimiter
from kernel_access.revocation import RevocationStore
from kernel_access.vending.codeartifact import MINT_RATE_LIMIT, MINT_RATE_WINDOW_SECONDS, MintRateGate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise RuntimeError(f"environment variable {name} is required")
    return value


def _dynamodb() -> DynamoDBClient:
    return default_clients().dynamodb()


def _s3() -> S3Reader:
    return default_clients().s3()


def _ssm() -> SSMClient:
    return default_clients().ssm()


def _sts() -> STSClient:
    return default_clients().sts()


def service_from_env(environ: Mapping[str, str]) -> ExchangeService:
    return ExchangeService(
        config_store=ExchangeConfigStore(
            s3_fetcher(
                _required(environ, settings.CONFIG_BUCKET),
                _required(environ, settings.EXCHANGE_CONFIG_OBJECT_KEY),
                _s3,
            ),
            max_staleness=float(environ.get(settings.POLICY_MAX_STALENESS_SECONDS) or 300),
        ),
        replay_guard=ReplayGuard(_required(environ, settings.REPLAY_TABLE_NAME), _dynamodb),
        issued_tokens=IssuedTokenStore(_required(environ, settings.ISSUED_TOKENS_TABLE_NAME), _dynamodb),
        revocations=RevocationStore(_required(environ, settings.REVOCATION_TABLE_NAME), _dynamodb),
        fingerprint=TokenFingerprinter(ssm_key_loader(environ.get(settings.AUDIT_HMAC_KEY_PARAMETER), _ssm)),
        audit=AuditLog(
            _required(environ, settings.AUDIT_TABLE_NAME),
            _dynamodb,
            retention_days=int(environ.get(settings.AUDIT_RETENTION_DAYS) or DEFAULT_RETENTION_DAYS),
        ),
        rate_limiter=RateLimiter(
            _required(environ, settings.RATE_LIMIT_TABLE_NAME),
            _dynamodb,
            limit=int(environ.get(settings.RATE_LIMIT_REQUESTS) or DEFAULT_LIMIT),
            window_seconds=int(environ.get(settings.RATE_LIMIT_WINDOW_SECONDS) or DEFAULT_WINDOW_SECONDS),
        ),
        minter=Minter(
            sts_client_factory=_sts,
            reader_role_arn=environ.get(settings.CODEARTIFACT_READER_ROLE_ARN) or None,
            publisher_role_arn=environ.get(settings.CODEARTIFACT_PUBLISHER_ROLE_ARN) or None,
            domain_owner=environ.get(settings.CODEARTIFACT_DOMAIN_OWNER) or None,
            mint_gate=MintRateGate(
                RateLimiter(
                    _required(environ, settings.RATE_LIMIT_TABLE_NAME),
                    _dynamodb,
                    limit=MINT_RATE_LIMIT,
                    window_seconds=MINT_RATE_WINDOW_SECONDS,
                )
            ),
        ),
    )
