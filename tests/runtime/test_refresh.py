"""The refresh engine: due times, single flight under 64 threads, serving while refreshes fail,
the circuit breaker and its single half-open probe, jitter, and secret-free errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from kernel_access.refresh import Minted, RefreshError, RefreshingValue

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
THREADS = 64
JOIN_TIMEOUT = 30.0  # generous: only reached if something deadlocks


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.now += timedelta(**delta)


class Mint:
    """A scripted mint: counts calls, can fail, can block until released."""

    def __init__(self, clock: Clock, lifetime: timedelta = HOUR) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail_with: BaseException | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> Minted[str]:
        with self._lock:
            self.calls += 1
            number = self.calls
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(JOIN_TIMEOUT)
        if self.fail_with is not None:
            raise self.fail_with
        now = self.clock()
        return Minted(value=f"v{number}", expires_at=now + self.lifetime, issued_at=now)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, data: Any) -> None:
        with self._lock:
            self.seen.append((name, dict(data)))

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.seen]


def make(
    clock: Clock | None = None, lifetime: timedelta = HOUR, **kwargs: Any
) -> tuple[RefreshingValue[str], Mint, Clock, Events]:
    clock = clock or Clock()
    mint = Mint(clock, lifetime)
    events = Events()
    value = RefreshingValue(mint, clock=clock, on_event=events, **kwargs)
    return value, mint, clock, events


def run_threads(
    count: int, target: Callable[[], object]
) -> tuple[list[object], list[BaseException], list[threading.Thread]]:
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def worker() -> None:
        start.wait()
        try:
            result = target()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return results, errors, threads


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a caller is stuck"


def waiting_callers(value: RefreshingValue[str]) -> int:
    """Callers parked on the engine's condition (CPython's Condition keeps them in ``_waiters``)."""
    return len(value._cond._waiters)  # type: ignore[attr-defined]


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


def fail_until_open(value: RefreshingValue[str], mint: Mint, clock: Clock, threshold: int = 5) -> None:
    """Make the held value due, then fail ``threshold`` refreshes in a row."""
    mint.fail_with = RuntimeError("boom")
    for _ in range(threshold):
        value.get()


# --- construction and due times ----------------------------------------------------------------


def test_eager_mints_at_construction() -> None:
    value, mint, _, events = make(eager=True)
    assert mint.calls == 1
    assert events.names() == ["minted"]
    assert value.get() == "v1"
    assert mint.calls == 1


def test_lazy_waits_for_first_get() -> None:
    value, mint, _, _ = make()
    assert mint.calls == 0
    assert value.current() is None
    assert value.get() == "v1"


def test_eager_failure_fails_construction() -> None:
    clock = Clock()

    def mint() -> Minted[str]:
        raise RuntimeError("no role")

    with pytest.raises(RefreshError, match="RuntimeError"):
        RefreshingValue(mint, eager=True, clock=clock)


def test_refresh_due_at_eighty_percent_of_lifetime() -> None:
    value, mint, clock, _ = make(eager=True)
    assert value.refresh_due_at == T0 + timedelta(minutes=48)
    clock.advance(minutes=47, seconds=59)
    assert value.get() == "v1"
    clock.advance(seconds=1)
    assert value.get() == "v2"
    assert mint.calls == 2


def test_refresh_margin_wins_for_short_lifetimes() -> None:
    value, _, _, _ = make(lifetime=timedelta(seconds=100), eager=True)
    assert value.refresh_due_at == T0 + timedelta(seconds=70)  # min(80 s, 100 s - 30 s)


def test_min_remaining_shortens_validity_and_due_time() -> None:
    value, mint, clock, _ = make(eager=True, min_remaining=900)
    # usable life 2700 s: due at min(0.8 * 2700, 2700 - 30) = 2160 s
    assert value.refresh_due_at == T0 + timedelta(seconds=2160)
    mint.fail_with = RuntimeError("down")
    clock.advance(seconds=2699)
    assert value.get() == "v1"  # refresh failed, still valid
    clock.advance(seconds=1)
    with pytest.raises(RefreshError):
        value.get()  # 15 minutes left: not valid for this consumer


def test_invalidate_forces_a_new_mint() -> None:
    value, mint, _, _ = make(eager=True)
    value.invalidate()
    assert value.get() == "v2"
    assert mint.calls == 2


def test_minted_value_that_is_already_expired_counts_as_failure() -> None:
    clock = Clock()
    calls = 0

    def mint() -> Minted[str]:
        nonlocal calls
        calls += 1
        return Minted(value="stale", expires_at=clock() - timedelta(seconds=1), issued_at=clock() - HOUR)

    value = RefreshingValue(mint, clock=clock)
    with pytest.raises(RefreshError, match="expired"):
        value.get()
    assert calls == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"refresh_fraction": 0}, {"refresh_fraction": 1.5}, {"failure_threshold": 0}, {"jitter": -1}],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RefreshingValue(lambda: Minted("x", T0 + HOUR, T0), **kwargs)


# --- jitter ------------------------------------------------------------------------------------


@given(fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True), jitter=st.floats(0.0, 7200.0))
def test_jitter_only_moves_refresh_earlier(fraction: float, jitter: float) -> None:
    clock = Clock()
    mint = Mint(clock)
    plain = RefreshingValue(mint, clock=clock, eager=True)
    jittered = RefreshingValue(mint, clock=clock, eager=True, jitter=jitter, rng=lambda: fraction)
    assert plain.refresh_due_at is not None
    assert jittered.refresh_due_at is not None
    assert jittered.refresh_due_at <= plain.refresh_due_at
    assert plain.refresh_due_at - jittered.refresh_due_at <= timedelta(seconds=min(jitter, 2880))
    assert jittered.refresh_due_at >= T0


def test_jitter_is_chosen_once_per_minted_value() -> None:
    draws = iter([0.5, 0.25])
    value, _, clock, _ = make(eager=True, jitter=600, rng=lambda: next(draws))
    assert value.refresh_due_at == T0 + timedelta(minutes=48) - timedelta(seconds=300)
    for _ in range(10):
        value.get()  # no new draw while the value is fresh (next() would raise StopIteration)
    clock.advance(minutes=43)
    value.get()
    assert value.refresh_due_at == clock() + timedelta(minutes=48) - timedelta(seconds=150)


# --- serving through failures, breaker ---------------------------------------------------------


def test_valid_value_is_served_while_refreshes_fail() -> None:
    value, mint, clock, events = make(eager=True)
    clock.advance(minutes=50)
    mint.fail_with = RuntimeError("sts down")
    for _ in range(3):
        assert value.get() == "v1"
    assert events.names().count("refresh_failed") == 3
    assert value.breaker_state == "closed"


def test_breaker_opens_after_five_failures_and_stops_minting() -> None:
    value, mint, clock, events = make(eager=True)
    clock.advance(minutes=50)
    fail_until_open(value, mint, clock)
    assert value.breaker_state == "open"
    assert events.names().count("breaker_opened") == 1
    calls = mint.calls
    for _ in range(20):
        assert value.get() == "v1"  # still valid: served, no mint while open
    assert mint.calls == calls
    clock.advance(minutes=10)  # the value has expired and open_seconds have passed:
    # this call is the half-open probe, which fails, so the breaker opens again
    with pytest.raises(RefreshError):
        value.get()
    assert mint.calls == calls + 1
    assert value.breaker_state == "open"


def test_breaker_open_refuses_immediately_when_nothing_is_valid() -> None:
    value, mint, _, _ = make()
    mint.fail_with = RuntimeError("down")
    for _ in range(5):
        with pytest.raises(RefreshError):
            value.get()
    assert value.breaker_state == "open"
    mint.gate = threading.Event()  # a mint attempt would now hang the test
    with pytest.raises(RefreshError, match="breaker open"):
        value.get()
    assert mint.calls == 5


def test_half_open_probe_success_closes_the_breaker() -> None:
    value, mint, clock, events = make()
    mint.fail_with = RuntimeError("down")
    for _ in range(5):
        with pytest.raises(RefreshError):
            value.get()
    clock.advance(seconds=59)
    with pytest.raises(RefreshError, match="breaker open"):
        value.get()
    clock.advance(seconds=1)
    mint.fail_with = None
    assert value.get() == "v6"
    assert value.breaker_state == "closed"
    assert events.names()[-3:] == ["breaker_half_open", "minted", "breaker_closed"]


def test_half_open_probe_failure_reopens_for_another_period() -> None:
    value, mint, clock, events = make(open_seconds=60)
    mint.fail_with = RuntimeError("down")
    for _ in range(5):
        with pytest.raises(RefreshError):
            value.get()
    clock.advance(seconds=60)
    with pytest.raises(RefreshError):
        value.get()  # the probe
    assert value.breaker_state == "open"
    assert events.names().count("breaker_opened") == 2
    clock.advance(seconds=30)
    with pytest.raises(RefreshError, match="breaker open"):
        value.get()
    assert mint.calls == 6


def test_success_resets_the_failure_count() -> None:
    value, mint, clock, _ = make(eager=True)
    clock.advance(minutes=50)
    mint.fail_with = RuntimeError("flaky")
    for _ in range(4):
        value.get()
    mint.fail_with = None
    assert value.get() == "v6"
    clock.advance(minutes=50)
    mint.fail_with = RuntimeError("flaky")
    for _ in range(4):
        value.get()
    assert value.breaker_state == "closed"


# --- 64 threads ----------------------------------------------------------------------------------


def test_64_threads_without_a_value_share_one_mint() -> None:
    value, mint, _, _ = make()
    mint.gate = threading.Event()
    results, errors, threads = run_threads(THREADS, value.get)
    assert mint.entered.wait(JOIN_TIMEOUT)
    wait_until(lambda: waiting_callers(value) == THREADS - 1)
    mint.gate.set()
    join(threads)
    assert errors == []
    assert results == ["v1"] * THREADS
    assert mint.calls == 1


def test_64_threads_exactly_one_mint_per_refresh() -> None:
    value, mint, clock, events = make(eager=True)
    for expected in range(2, 6):
        clock.advance(minutes=50)
        mint.gate = threading.Event()
        mint.entered.clear()
        results, errors, threads = run_threads(THREADS, value.get)
        assert mint.entered.wait(JOIN_TIMEOUT)
        mint.gate.set()
        join(threads)
        assert errors == []
        assert set(results) <= {f"v{expected - 1}", f"v{expected}"}
        assert mint.calls == expected
        assert value.get() == f"v{expected}"
    assert events.names().count("minted") == 5


def test_callers_with_a_valid_value_never_wait_for_the_refresh() -> None:
    value, mint, clock, _ = make(eager=True)
    clock.advance(minutes=50)
    mint.gate = threading.Event()
    results, errors, threads = run_threads(THREADS, value.get)
    assert mint.entered.wait(JOIN_TIMEOUT)
    # The refresh is still blocked, yet every other caller is served the old value.
    wait_until(lambda: len(results) == THREADS - 1)
    assert results == ["v1"] * (THREADS - 1)
    assert mint.calls == 2
    mint.gate.set()
    join(threads)
    assert errors == []
    assert sorted(results) == ["v1"] * (THREADS - 1) + ["v2"]


def test_no_caller_waits_on_a_mint_that_already_failed() -> None:
    value, mint, _, _ = make()
    mint.gate = threading.Event()
    mint.fail_with = ConnectionError("unreachable")
    results, errors, threads = run_threads(THREADS, value.get)
    assert mint.entered.wait(JOIN_TIMEOUT)
    wait_until(lambda: waiting_callers(value) == THREADS - 1)
    mint.gate.set()
    join(threads)
    # Everyone who waited got the one failure; nobody started a second mint in turn.
    assert results == []
    assert len(errors) == THREADS
    assert all(isinstance(e, RefreshError) for e in errors)
    assert mint.calls == 1
    assert value.breaker_state == "closed"  # one failure, below the threshold


def test_64_threads_against_an_open_breaker_fail_fast_without_minting() -> None:
    value, mint, _, _ = make()
    mint.fail_with = RuntimeError("down")
    for _ in range(5):
        with pytest.raises(RefreshError):
            value.get()
    mint.gate = threading.Event()  # any mint would block forever: none may happen
    results, errors, threads = run_threads(THREADS, value.get)
    join(threads)
    assert results == []
    assert len(errors) == THREADS
    assert mint.calls == 5


def test_64_threads_half_open_lets_exactly_one_probe_through() -> None:
    value, mint, clock, events = make()
    mint.fail_with = RuntimeError("down")
    for _ in range(5):
        with pytest.raises(RefreshError):
            value.get()
    clock.advance(seconds=61)
    mint.fail_with = None
    mint.gate = threading.Event()
    mint.entered.clear()
    results, errors, threads = run_threads(THREADS, value.get)
    assert mint.entered.wait(JOIN_TIMEOUT)
    # While the probe is in flight, everyone else is refused at once (nothing valid to serve).
    wait_until(lambda: len(errors) == THREADS - 1)
    assert all("half-open" in str(e) for e in errors)
    mint.gate.set()
    join(threads)
    assert results == ["v6"]
    assert mint.calls == 6
    assert value.breaker_state == "closed"
    assert events.names().count("breaker_half_open") == 1


# --- errors and events ---------------------------------------------------------------------------


def test_errors_never_carry_the_mint_exception_text() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    value, mint, _, events = make()
    mint.fail_with = ValueError(f"SecretAccessKey={secret}")
    with pytest.raises(RefreshError) as info:
        value.get()
    assert secret not in str(info.value)
    assert "ValueError" in str(info.value)
    assert info.value.cause is mint.fail_with
    assert info.value.__cause__ is None
    assert secret not in repr(events.seen)


def test_aws_errors_report_their_code_only() -> None:
    value, mint, _, events = make()
    mint.fail_with = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "token abc123 is not authorized"}}, "AssumeRole"
    )
    with pytest.raises(RefreshError, match="ClientError: AccessDenied") as info:
        value.get()
    assert "abc123" not in str(info.value)
    assert "abc123" not in repr(events.seen)


def test_event_callback_failures_do_not_break_delivery() -> None:
    def broken(name: str, data: Any) -> None:
        raise RuntimeError("metrics down")

    clock = Clock()
    value = RefreshingValue(Mint(clock), clock=clock, on_event=broken, eager=True)
    assert value.get() == "v1"


def test_event_payloads() -> None:
    value, mint, clock, events = make(eager=True, name="codeartifact:kernel", failure_threshold=2)
    clock.advance(minutes=50)
    fail_until_open(value, mint, clock, threshold=2)
    minted = events.seen[0]
    assert minted == ("minted", {"name": "codeartifact:kernel", "expires_at": (T0 + HOUR).isoformat()})
    failed = events.seen[1]
    assert failed == (
        "refresh_failed",
        {"name": "codeartifact:kernel", "error": "RuntimeError", "consecutive_failures": 1},
    )
    assert events.seen[-1] == (
        "breaker_opened",
        {"name": "codeartifact:kernel", "consecutive_failures": 2, "open_seconds": 60.0},
    )


def test_interrupted_mint_releases_the_flight() -> None:
    value, mint, _, _ = make()
    mint.fail_with = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        value.get()
    mint.fail_with = None
    assert value.get() == "v2"  # not stuck behind a mint that never finished


def test_naive_expiry_counts_as_failure() -> None:
    clock = Clock()
    value = RefreshingValue(
        lambda: Minted("x", datetime(2030, 1, 1), datetime(2026, 1, 1)),
        clock=clock,
    )
    with pytest.raises(RefreshError, match="naive"):
        value.get()


def test_mint_returning_garbage_is_a_failure() -> None:
    value = RefreshingValue(lambda: None, clock=Clock())  # type: ignore[arg-type, return-value]
    with pytest.raises(RefreshError, match="AttributeError"):
        value.get()
