"""Load the policy from SSM Parameter Store with a short cache and a bounded last-good fallback.

Why the store keeps its own clock-driven cache on top of Powertools Parameters: what it caches
is the *parsed and validated* policy (parsing on every request would cost more than the SSM
call it replaces), and the fail-closed rule — serve the last good policy for at most
``max_staleness`` seconds after the last *successful* load, then deny everything — needs the
success time on an injectable clock. Powertools does the fetching (client creation, error
wrapping); every fetch the store decides to make is a real one (``force_fetch=True``).

A parameter that fails to parse counts exactly like a failed fetch: a broken policy is never
served, and no failure ever opens access.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from kernel_access.contract import ErrorCode
from kernel_access.policy.document import Policy
from kernel_access.policy.model import PolicyValidationError
from kernel_access.policy.parser import parse_policy

DEFAULT_MAX_STALENESS = 300.0
DEFAULT_CACHE_SECONDS = 30.0
#: After a failed load, wait this long before the next attempt, so an SSM outage does not turn
#: every request into another SSM call (a retry storm against a throttled API).
DEFAULT_RETRY_SECONDS = 5.0


class ParameterProvider(Protocol):
    """The part of a Powertools parameters provider (``SSMProvider``) the store uses."""

    def get(
        self, name: str, max_age: int | None = ..., *, force_fetch: bool = ...
    ) -> str | bytes | dict[Any, Any] | None: ...


class PolicyUnavailable(Exception):
    """No policy fresh enough to decide with: deny with ``POLICY_LOAD_FAILED``."""

    error_code = ErrorCode.POLICY_LOAD_FAILED


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and when (store clock) it was successfully loaded."""

    policy: Policy
    loaded_at: float
    version: str


@dataclass(frozen=True)
class PolicyStatus:
    """What ``/health`` reports: no policy content, just version and freshness."""

    version: str | None
    age_seconds: float | None
    #: True while a good policy is loaded and within ``max_staleness``.
    available: bool
    #: Type name of the last load failure since the last success, if any.
    last_error: str | None


class PolicyStore:
    """Thread-safe accessor for the current policy (one per Lambda container)."""

    def __init__(
        self,
        parameter_name: str,
        *,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        provider: ParameterProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        if not parameter_name:
            raise ValueError("parameter_name must not be empty")
        if max_staleness < 0 or cache_seconds < 0 or retry_seconds < 0:
            raise ValueError("max_staleness, cache_seconds and retry_seconds must not be negative")
        self.parameter_name = parameter_name
        self.max_staleness = max_staleness
        self.cache_seconds = cache_seconds
        self.retry_seconds = retry_seconds
        self._provider = provider
        self._clock = clock
        self._lock = threading.Lock()
        self._good: LoadedPolicy | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None

    def _get_provider(self) -> ParameterProvider:
        if self._provider is None:
            # Created lazily: building a boto3 client at import time would slow every cold start.
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            provider: ParameterProvider = SSMProvider()
            self._provider = provider
            return provider
        return self._provider

    def _fetch(self) -> Policy:
        value = self._get_provider().get(
            self.parameter_name, max_age=int(self.cache_seconds), force_fetch=True
        )
        if not isinstance(value, str | bytes):
            raise TypeError(f"parameter value is {type(value).__name__}, not a JSON string")
        return parse_policy(value)

    def _next_attempt_due(self, now: float) -> bool:
        if self._last_attempt is None:
            return True
        wait = self.cache_seconds if self._last_error is None else min(self.retry_seconds, self.cache_seconds)
        return now - self._last_attempt >= wait

    def get(self) -> LoadedPolicy:
        """The policy to decide with. Raises :class:`PolicyUnavailable` when the last good
        policy is older than ``max_staleness`` (or there never was one)."""
        with self._lock:
            now = self._clock()
            if self._next_attempt_due(now):
                self._last_attempt = now
                try:
                    policy = self._fetch()
                except Exception as exc:  # any failure is a failed load, never an allow
                    self._last_error = _describe(exc)
                else:
                    self._good = LoadedPolicy(policy=policy, loaded_at=now, version=policy.version)
                    self._last_error = None
            good = self._good
            if good is not None and now - good.loaded_at <= self.max_staleness:
                return good
            cause = self._last_error or "no policy loaded"
            raise PolicyUnavailable(f"policy {self.parameter_name!r} unavailable: {cause}")

    def status(self) -> PolicyStatus:
        """Version and age of the policy in use, for ``/health``; never fetches."""
        with self._lock:
            now = self._clock()
            good = self._good
            if good is None:
                return PolicyStatus(
                    version=None, age_seconds=None, available=False, last_error=self._last_error
                )
            age = now - good.loaded_at
            return PolicyStatus(
                version=good.version,
                age_seconds=age,
                available=age <= self.max_staleness,
                last_error=self._last_error,
            )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PolicyValidationError):
        return f"invalid policy document ({len(exc.errors)} error(s))"
    # The message of an SSM failure names the parameter and the AWS error code; no secrets.
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
