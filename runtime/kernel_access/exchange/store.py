"""Loads the exchange configuration from SSM, caches it briefly, and never fails open.

- A fresh copy is fetched at most every ``cache_seconds`` (30 s by default), like the vending policy.
- When a fetch fails or the new document does not parse, the last good configuration keeps
  serving for at most ``max_staleness`` seconds after it was loaded; after that every request is
  refused with POLICY_LOAD_FAILED. With no good configuration ever loaded the refusal is
  immediate. There is no built-in default: no configuration, no exchange (an issuer
  allow-list that is missing must not mean "every issuer").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from kernel_access.contract import ErrorCode
from kernel_access.exchange.config import ExchangeConfig, ExchangeConfigError, parse_exchange_config
from kernel_access.exchange.refusal import ExchangeRefused

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

logger = Logger(child=True)


def ssm_fetcher(parameter_name: str, client_factory: Callable[[], SSMClient]) -> Callable[[], str]:
    """Fetch the parameter with Powertools Parameters (no caching there: this store caches)."""

    def fetch() -> str:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        provider = SSMProvider(boto3_client=client_factory())
        value = provider.get(parameter_name, max_age=0, force_fetch=True)
        if not isinstance(value, str):
            raise TypeError("exchange configuration parameter is not a string")
        return value

    return fetch


class ExchangeConfigStore:
    def __init__(
        self,
        fetch: Callable[[], str],
        *,
        cache_seconds: float = 30.0,
        max_staleness: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.cache_seconds = cache_seconds
        self.max_staleness = max_staleness
        self._clock = clock
        self._raw: str | None = None
        self._config: ExchangeConfig | None = None
        self._loaded_at = 0.0
        self._checked_at = 0.0

    def get(self) -> ExchangeConfig:
        """The configuration to decide with, or ExchangeRefused(POLICY_LOAD_FAILED)."""
        now = self._clock()
        if self._config is not None and now - self._checked_at < self.cache_seconds:
            return self._config
        try:
            raw = self._fetch()
            config = self._config if raw == self._raw and self._config else parse_exchange_config(raw)
        except ExchangeConfigError as error:
            logger.error(
                "exchange configuration is invalid", extra={"errors": [str(e) for e in error.errors]}
            )
            return self._stale_or_refuse(now, "invalid")
        except Exception as error:
            logger.error("exchange configuration could not be loaded", extra={"error": type(error).__name__})
            return self._stale_or_refuse(now, "unavailable")
        self._raw, self._config = raw, config
        self._loaded_at = self._checked_at = now
        return config

    def _stale_or_refuse(self, now: float, what: str) -> ExchangeConfig:
        if self._config is not None and now - self._loaded_at <= self.max_staleness:
            return self._config
        raise ExchangeRefused(
            ErrorCode.POLICY_LOAD_FAILED,
            "the exchange configuration is unavailable; no token can be exchanged",
            reason=f"exchange configuration {what} and no good copy within {self.max_staleness:.0f} s",
            retry_after=30,
        )
