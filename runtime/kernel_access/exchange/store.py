"""The exchange configuration, loaded through the shared document store; never fails open.

The guarantees are :class:`~kernel_access.document_store.DocumentStore`'s, the same as the vending
policy's: a fresh copy at most every ``cache_seconds`` (30 s), one fetch at a time, a retry backoff
after a failure, the last good configuration for at most ``max_staleness`` seconds, then every
request refused with POLICY_LOAD_FAILED. There is no built-in default: no configuration, no
exchange (an issuer allow-list that is missing must not mean "any issuer").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools import Logger

from kernel_access.contract import ErrorCode
from kernel_access.document_store import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_MAX_STALENESS,
    DEFAULT_RETRY_SECONDS,
    DocumentStore,
    DocumentUnavailable,
    Fetch,
    describe_exception,
)
from kernel_access.exchange.config import ExchangeConfig, ExchangeConfigError, parse_exchange_config
from kernel_access.exchange.refusal import ExchangeRefused

logger = Logger(child=True)


def _describe(error: BaseException) -> str:
    # Called once per failed attempt (not per request): the log line an operator alarms on.
    if isinstance(error, ExchangeConfigError):
        logger.error("exchange configuration is invalid", extra={"errors": [str(e) for e in error.errors]})
        return f"invalid ({len(error.errors)} error(s))"
    logger.error("exchange configuration could not be loaded", extra={"error": type(error).__name__})
    return describe_exception(error)


def _parse(raw: str | bytes) -> ExchangeConfig:
    return parse_exchange_config(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


class ExchangeConfigStore:
    """Thread-safe accessor for the current exchange configuration (one per Lambda container).

    ``fetch``: where the document comes from, e.g.
    ``kernel_access.document_store.s3_fetcher(bucket, key, s3_client)``.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_staleness = max_staleness
        self._documents: DocumentStore[ExchangeConfig] = DocumentStore(
            "exchange configuration",
            fetch,
            _parse,
            describe_error=_describe,
            max_staleness=max_staleness,
            cache_seconds=cache_seconds,
            retry_seconds=retry_seconds,
            clock=clock,
        )

    def get(self) -> ExchangeConfig:
        """The configuration to decide with, or ExchangeRefused(POLICY_LOAD_FAILED)."""
        try:
            return self._documents.get().document
        except DocumentUnavailable as exc:
            raise ExchangeRefused(
                ErrorCode.POLICY_LOAD_FAILED,
                "the exchange configuration is unavailable; no token can be exchanged",
                reason=(
                    f"exchange configuration {exc.cause} and no good copy within {self.max_staleness:.0f} s"
                ),
                retry_after=30,
            ) from None
