"""A configuration document read from SSM Parameter Store: cached, single-flight, fail closed.

Both Lambdas decide with a JSON document an operator deploys (the vending policy, the exchange
configuration). Both need exactly the same guarantees, so one store provides them:

- a fresh copy is fetched at most every ``cache_seconds`` (30 s by default), by one thread at a
  time (the lock: concurrent requests on a warm container share one fetch);
- what is cached is the *parsed and validated* document (parsing on every request would cost more
  than the fetch it replaces); a document that fails to parse counts exactly like a failed fetch;
- after a failed attempt the next one waits ``retry_seconds`` (5 s), so an SSM outage does not turn
  every request into another SSM call — a retry storm against a throttled API;
- the last good document keeps serving for at most ``max_staleness`` seconds after it was
  *successfully* loaded; after that (or when nothing good was ever loaded) :meth:`get` raises
  :class:`DocumentUnavailable`, which each service turns into ``POLICY_LOAD_FAILED``. There is no
  built-in default document: no document, no access.

Why our own cache on top of Powertools Parameters: the staleness rule needs the time of the last
*successful* load on an injectable clock, and the cached value is the parsed document. Powertools
still does the fetching (client, error wrapping): the default fetcher is :func:`ssm_fetcher`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

T = TypeVar("T")

DEFAULT_MAX_STALENESS = 300.0
DEFAULT_CACHE_SECONDS = 30.0
DEFAULT_RETRY_SECONDS = 5.0


class ParameterProvider(Protocol):
    """The part of a Powertools parameters provider (``SSMProvider``) the store uses."""

    def get(
        self, name: str, max_age: int | None = ..., *, force_fetch: bool = ...
    ) -> str | bytes | dict[Any, Any] | None: ...


class DocumentUnavailable(Exception):
    """No document fresh enough to decide with; ``cause`` says why (no content, no secrets)."""

    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"{name!r} unavailable: {cause}")
        self.name = name
        self.cause = cause


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A validated document and when (store clock) it was successfully loaded."""

    document: T
    loaded_at: float


@dataclass(frozen=True)
class DocumentStatus:
    """What ``/health`` reports: freshness, never content."""

    age_seconds: float | None
    #: True while a good document is loaded and within ``max_staleness``.
    available: bool
    #: Short description of the last load failure since the last success, if any.
    last_error: str | None


def ssm_fetcher(parameter_name: str, provider: Callable[[], ParameterProvider]) -> Callable[[], str | bytes]:
    """Fetch ``parameter_name`` through a Powertools provider; every call is a real fetch."""

    def fetch() -> str | bytes:
        value = provider().get(parameter_name, max_age=0, force_fetch=True)
        if not isinstance(value, str | bytes):
            raise TypeError(f"parameter value is {type(value).__name__}, not a JSON string")
        return value

    return fetch


class LazySSMProvider:
    """Powertools' ``SSMProvider`` on a given (bounded) SSM client, created on first fetch.

    Lazy because building clients at import time would slow every cold start.
    """

    def __init__(self, ssm_client: Callable[[], SSMClient]) -> None:
        self._ssm_client = ssm_client
        self._provider: Any = None

    def get(
        self, name: str, max_age: int | None = None, *, force_fetch: bool = False
    ) -> str | bytes | dict[Any, Any] | None:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            self._provider = SSMProvider(boto3_client=self._ssm_client())
        value: str | bytes | dict[Any, Any] | None = self._provider.get(
            name, max_age=max_age, force_fetch=force_fetch
        )
        return value


class DocumentStore(Generic[T]):
    """Thread-safe accessor for the current parsed document (one per Lambda container)."""

    def __init__(
        self,
        name: str,
        fetch: Callable[[], str | bytes],
        parse: Callable[[str | bytes], T],
        *,
        describe_error: Callable[[BaseException], str] | None = None,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not name:
            raise ValueError("name must not be empty")
        if max_staleness < 0 or cache_seconds < 0 or retry_seconds < 0:
            raise ValueError("max_staleness, cache_seconds and retry_seconds must not be negative")
        self.name = name
        self.max_staleness = max_staleness
        self.cache_seconds = cache_seconds
        self.retry_seconds = retry_seconds
        self._fetch = fetch
        self._parse = parse
        self._describe = describe_error or describe_exception
        self._clock = clock
        self._lock = threading.Lock()
        self._good: Loaded[T] | None = None
        self._raw: str | bytes | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None

    def _attempt_due(self, now: float) -> bool:
        if self._last_attempt is None:
            return True
        wait = self.cache_seconds if self._last_error is None else min(self.retry_seconds, self.cache_seconds)
        return now - self._last_attempt >= wait

    def _load(self, now: float) -> None:
        self._last_attempt = now
        try:
            raw = self._fetch()
            unchanged = self._good is not None and raw == self._raw
            document = self._good.document if unchanged and self._good is not None else self._parse(raw)
        except Exception as exc:  # any failure is a failed load, never an allow
            self._last_error = self._describe(exc)
        else:
            self._good, self._raw, self._last_error = Loaded(document, now), raw, None

    def get(self) -> Loaded[T]:
        """The document to decide with; raises :class:`DocumentUnavailable` when the last good one
        is older than ``max_staleness`` (or there never was one)."""
        with self._lock:
            now = self._clock()
            if self._attempt_due(now):
                self._load(now)
            good = self._good
            if good is not None and now - good.loaded_at <= self.max_staleness:
                return good
            raise DocumentUnavailable(self.name, self._last_error or "nothing loaded")

    def last_good(self) -> Loaded[T] | None:
        """The last successfully loaded document, however old; never fetches (for ``/health``)."""
        with self._lock:
            return self._good

    def status(self) -> DocumentStatus:
        """Age and availability of the document in use; never fetches."""
        with self._lock:
            good = self._good
            if good is None:
                return DocumentStatus(age_seconds=None, available=False, last_error=self._last_error)
            age = self._clock() - good.loaded_at
            return DocumentStatus(
                age_seconds=age, available=age <= self.max_staleness, last_error=self._last_error
            )


def describe_exception(exc: BaseException) -> str:
    """A one-line description for logs and ``/health``: type and first line (AWS error messages
    name the parameter and the error code; never the document)."""
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
