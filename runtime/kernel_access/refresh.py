"""A generic refresh engine for short-lived values (credentials, bearer tokens).

Why hand-written: no library in the runtime's dependency set (stdlib, boto3, Powertools) offers
single-flight refresh with a circuit breaker, and botocore's ``RefreshableCredentials`` is tied
to credentials, blocks every caller on a refresh and has no breaker.

Behaviour:

* ``eager=True`` mints once at construction, so misconfiguration fails fast (``RefreshError``).
* A value's *usable* life ends ``min_remaining`` seconds before its expiry; a value past that is
  not valid. A refresh is due at ``min(issued + refresh_fraction·lifetime, end - refresh_margin)``
  where ``lifetime = end - issued`` (with ``min_remaining=0`` this is exactly
  ``min(issued + 0.8·lifetime, expiry - 30 s)``), moved *earlier* by a random amount of at most
  ``jitter`` seconds (and never before the value was issued), chosen once per minted value so a fleet of
  processes does not refresh in lock-step.
* Single flight: at most one mint runs at a time. While it runs, callers that hold a valid value
  get it at once; only callers with nothing valid wait for the mint in flight. If that mint fails,
  every waiter gets the error at once: nobody starts another mint after waiting for a failed one.
* A valid value keeps being served while refreshes fail.
* Circuit breaker: after ``failure_threshold`` consecutive failures it opens for ``open_seconds``;
  while open no mint is attempted and callers with nothing valid get ``RefreshError`` immediately.
  Then exactly one caller probes (half-open); success closes the breaker, failure re-opens it.
  Callers with nothing valid that arrive while the probe runs are refused, not queued.
* ``on_event(name, data)`` hears ``minted``, ``refresh_failed``, ``breaker_opened``,
  ``breaker_half_open``, ``breaker_closed`` (for metrics); it runs outside the lock and its
  exceptions are swallowed, so a metrics bug can never stop credentials from flowing.
* ``RefreshError`` never carries a secret: its message is the failing exception's type name plus,
  for AWS errors, the error code only. The original exception is kept on ``.cause`` for debugging
  but not chained (``__cause__`` is unset), so a logged traceback cannot print its text.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Literal, TypeAlias, TypeVar

T = TypeVar("T")

BreakerState: TypeAlias = Literal["closed", "open", "half-open"]
EventCallback: TypeAlias = Callable[[str, Mapping[str, object]], None]

EVENT_MINTED = "minted"
EVENT_REFRESH_FAILED = "refresh_failed"
EVENT_BREAKER_OPENED = "breaker_opened"
EVENT_BREAKER_HALF_OPEN = "breaker_half_open"
EVENT_BREAKER_CLOSED = "breaker_closed"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Minted(Generic[T]):
    """One minted value and its validity period (aware datetimes)."""

    value: T
    expires_at: datetime
    issued_at: datetime


class RefreshError(Exception):
    """No valid value could be produced. ``cause`` is the mint's exception (if any); the
    message is safe to log and to return to a caller."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def safe_description(exc: BaseException) -> str:
    """Type name plus, for botocore ``ClientError``, the AWS error code — never free text, which
    for some errors echoes request parameters or tokens."""
    if isinstance(exc, RefreshError):
        return str(exc)
    name = type(exc).__name__
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping):
            code = error.get("Code")
            if isinstance(code, str) and code.replace(".", "").replace("_", "").isalnum() and len(code) <= 64:
                return f"{name}: {code}"
    return name


@dataclass
class _Failure:
    message: str
    cause: BaseException | None


class RefreshingValue(Generic[T]):
    """A value that refreshes itself before it expires (thread-safe; see the module docstring)."""

    def __init__(
        self,
        mint: Callable[[], Minted[T]],
        *,
        eager: bool = False,
        refresh_fraction: float = 0.8,
        refresh_margin: float = 30.0,
        jitter: float = 0.0,
        failure_threshold: int = 5,
        open_seconds: float = 60.0,
        min_remaining: float = 0.0,
        clock: Callable[[], datetime] = utc_now,
        on_event: EventCallback | None = None,
        name: str = "value",
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 < refresh_fraction <= 1.0:
            raise ValueError("refresh_fraction must be in (0, 1]")
        if refresh_margin < 0 or jitter < 0 or open_seconds < 0 or min_remaining < 0:
            raise ValueError("refresh_margin, jitter, open_seconds and min_remaining must not be negative")
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self._mint = mint
        self.refresh_fraction = refresh_fraction
        self.refresh_margin = refresh_margin
        self.jitter = jitter
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.min_remaining = min_remaining
        self.name = name
        self._clock = clock
        self._on_event = on_event
        self._rng = rng

        self._cond = threading.Condition(threading.Lock())
        self._current: Minted[T] | None = None
        self._due_at: datetime | None = None
        self._minting = False
        #: Incremented when a mint finishes; waiters compare it to learn that *their* mint ended.
        self._generation = 0
        self._last_outcome_failed = False
        self._last_failure: _Failure | None = None
        self._failures = 0
        self._state: BreakerState = "closed"
        self._opened_at: datetime | None = None
        self.mint_count = 0

        if eager:
            self.get()

    # ----------------------------------------------------------------- public API
    def get(self) -> T:
        """The current value, refreshing it when due. Raises :class:`RefreshError` only when no
        valid value is left (and none could be minted)."""
        with self._cond:
            # Fast path: a fresh value (due time is never after the end of the usable life).
            current, due_at = self._current, self._due_at
            if current is not None and due_at is not None and self._clock() < due_at:
                return current.value
        events: list[tuple[str, dict[str, object]]] = []
        try:
            with self._cond:
                outcome = self._claim(events)
            if not isinstance(outcome, _MintTicket):
                return outcome.value
        finally:
            self._emit(events)
        return self._run_mint()

    def current(self) -> Minted[T] | None:
        """The value held now (valid or not), without minting."""
        with self._cond:
            return self._current

    def invalidate(self) -> None:
        """Forget the held value (e.g. the service rejected it); the next ``get`` mints."""
        with self._cond:
            self._current = None
            self._due_at = None

    @property
    def breaker_state(self) -> BreakerState:
        with self._cond:
            return self._state

    @property
    def refresh_due_at(self) -> datetime | None:
        """When the held value is due for refresh (jitter applied), ``None`` without a value."""
        with self._cond:
            return self._due_at

    # ----------------------------------------------------------------- internals
    def _valid(self, minted: Minted[T] | None, now: datetime) -> bool:
        return minted is not None and (minted.expires_at - now).total_seconds() > self.min_remaining

    def _claim(self, events: list[tuple[str, dict[str, object]]]) -> Minted[T] | _MintTicket:
        """Under the lock: return a value to serve, or a ticket meaning "this caller mints"."""
        while True:
            now = self._clock()
            current = self._current
            valid = self._valid(current, now)
            if valid and current is not None and self._due_at is not None and now < self._due_at:
                return current
            if self._minting:
                if valid and current is not None:
                    return current  # a refresh is in flight: keep serving what we have
                if self._state == "half-open":
                    raise self._error("circuit breaker half-open: a probe is in flight")
                generation = self._generation
                while self._minting and self._generation == generation:
                    self._cond.wait()
                if self._last_outcome_failed and self._generation == generation + 1:
                    # The mint we waited for failed: report it, never start another one in turn.
                    raise self._error("mint failed")
                continue
            if self._state == "open":
                assert self._opened_at is not None
                if (now - self._opened_at).total_seconds() < self.open_seconds:
                    if valid and current is not None:
                        return current
                    raise self._error("circuit breaker open")
                self._state = "half-open"
                events.append((EVENT_BREAKER_HALF_OPEN, {"name": self.name}))
            self._minting = True
            return _MintTicket()

    def _error(self, context: str) -> RefreshError:
        failure = self._last_failure
        if failure is None:
            return RefreshError(f"{self.name}: {context}")
        return RefreshError(f"{self.name}: {context}: {failure.message}", cause=failure.cause)

    def _run_mint(self) -> T:
        events: list[tuple[str, dict[str, object]]] = []
        minted: Minted[T] | None = None
        failure: _Failure | None = None
        try:
            minted = self._mint()
            problem = self._check(minted)
            if problem is not None:
                failure = _Failure(problem, None)
                minted = None
        except Exception as exc:  # any mint failure is counted, wrapped and never leaks text
            failure = _Failure(safe_description(exc), exc)
        except BaseException:
            # KeyboardInterrupt/SystemExit: release the flight so other callers are not stuck.
            with self._cond:
                self._minting = False
                self._generation += 1
                self._last_outcome_failed = True
                self._cond.notify_all()
            raise
        try:
            with self._cond:
                result = self._finish(minted, failure, events)
        finally:
            self._emit(events)
        return result

    def _check(self, minted: Minted[T]) -> str | None:
        if minted.expires_at.tzinfo is None or minted.issued_at.tzinfo is None:
            return "mint returned a naive datetime"
        if not self._valid(minted, self._clock()):
            return "mint returned a value that is already expired or expires too soon"
        return None

    def _finish(
        self, minted: Minted[T] | None, failure: _Failure | None, events: list[tuple[str, dict[str, object]]]
    ) -> T:
        now = self._clock()
        self._minting = False
        self._generation += 1
        self.mint_count += 1
        self._cond.notify_all()
        if minted is not None:
            self._current = minted
            self._due_at = self._due(minted)
            self._last_outcome_failed = False
            self._last_failure = None
            self._failures = 0
            events.append((EVENT_MINTED, {"name": self.name, "expires_at": minted.expires_at.isoformat()}))
            if self._state != "closed":
                self._state = "closed"
                self._opened_at = None
                events.append((EVENT_BREAKER_CLOSED, {"name": self.name}))
            return minted.value
        assert failure is not None
        self._last_outcome_failed = True
        self._last_failure = failure
        self._failures += 1
        events.append(
            (
                EVENT_REFRESH_FAILED,
                {"name": self.name, "error": failure.message, "consecutive_failures": self._failures},
            )
        )
        if self._state == "half-open" or (
            self._state == "closed" and self._failures >= self.failure_threshold
        ):
            self._state = "open"
            self._opened_at = now
            events.append(
                (
                    EVENT_BREAKER_OPENED,
                    {
                        "name": self.name,
                        "consecutive_failures": self._failures,
                        "open_seconds": self.open_seconds,
                    },
                )
            )
        current = self._current
        if self._valid(current, now) and current is not None:
            return current.value
        raise RefreshError(f"{self.name}: mint failed: {failure.message}", cause=failure.cause)

    def _due(self, minted: Minted[T]) -> datetime:
        usable_end = minted.expires_at - timedelta(seconds=self.min_remaining)
        lifetime = max((usable_end - minted.issued_at).total_seconds(), 0.0)
        due = min(
            minted.issued_at + timedelta(seconds=self.refresh_fraction * lifetime),
            usable_end - timedelta(seconds=self.refresh_margin),
        )
        if self.jitter > 0 and due > minted.issued_at:
            # Only ever earlier (a later refresh could outlive the value), and never before the
            # value was issued.
            room = (due - minted.issued_at).total_seconds()
            due -= timedelta(seconds=self._rng() * min(self.jitter, room))
        return due

    def _emit(self, events: list[tuple[str, dict[str, object]]]) -> None:
        if self._on_event is None:
            return
        for event, data in events:
            try:
                self._on_event(event, data)
            except Exception:  # noqa: S112 - metrics must never break the value's delivery
                continue


class _MintTicket:
    """Returned by ``_claim`` to the one caller that performs the mint."""

    __slots__ = ()
