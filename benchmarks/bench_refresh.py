"""Refresh engine and policy evaluation: the per-request overhead they add on a warm container.

- ``RefreshingValue.get()`` on a fresh value, against the cheapest thread-safe alternative (a
  lock-protected attribute read) measured in the same run.
- Mints per 10,000 ``get()`` calls from 8 threads across one refresh: goal exactly 2 (the
  initial mint and the one refresh), i.e. single flight holds under contention.
- ``Policy.evaluate`` on the example policy (worst case: the request falls through every rule),
  against ``parse_policy`` of the same document (what evaluating would cost without caching the
  parsed policy).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kernel_access.policy import AccessRequest, parse_policy
from kernel_access.refresh import Minted, RefreshingValue

from benchmarks.harness import Result, median_seconds

ROOT = Path(__file__).resolve().parents[1]


def _example_document() -> dict[str, object]:
    config = json.loads((ROOT / "cdk.json").read_text())["context"]["kernel-access"]
    return {
        "version": config["policy"]["version"],
        "partners": {
            p["name"]: {"account_id": p["account_id"], "in_organization": p["in_organization"]}
            for p in config["partners"]
        },
        "rules": config["policy"]["rules"],
    }


def _bench_get() -> Result:
    now = datetime.now(UTC)
    value = RefreshingValue(lambda: Minted("token", now + timedelta(hours=1), now), eager=True)
    lock = threading.Lock()
    holder = {"value": "token"}

    def baseline() -> object:
        with lock:
            return holder["value"]

    number = 20_000
    figure = median_seconds(value.get, number=number)
    base = median_seconds(baseline, number=number)
    return Result(
        "refresh: RefreshingValue.get() warm (per call)",
        figure * 1e6,
        base * 1e6,
        "us",
        "a few us; far below any network call",
    )


class _ScriptedSource:
    """A clock the benchmark moves and a mint that counts its calls (both thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.start = datetime(2026, 1, 1, tzinfo=UTC)
        self.now = self.start
        self.mints = 0

    def clock(self) -> datetime:
        with self.lock:
            return self.now

    def mint(self) -> Minted[str]:
        with self.lock:
            self.mints += 1
            issued = self.now
        return Minted("v", issued + timedelta(hours=1), issued)


def _bench_single_flight() -> Result:
    source = _ScriptedSource()
    value = RefreshingValue(source.mint, clock=source.clock, eager=True)
    calls_per_thread = 10_000 // 8
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        barrier.wait()
        for i in range(calls_per_thread):
            if index == 0 and i == calls_per_thread // 2:
                with source.lock:
                    source.now = source.start + timedelta(minutes=50)  # the value is now due
            value.get()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(
        "refresh: mints per 10,000 get() from 8 threads, 1 refresh",
        float(source.mints),
        2.0,
        "mints",
        "ratio 1.0 (initial mint + exactly one refresh)",
    )


def _bench_evaluate() -> Result:
    document = _example_document()
    policy = parse_policy(document)
    request = AccessRequest(
        caller_arn="arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci",
        account_id="222222222222",
        org_id="o-a1b2c3d4e5",
        source_ip="203.0.113.9",
        at=datetime(2026, 11, 23, 22, 0, tzinfo=UTC),
        partner="payments",
        role="kernel-admin",  # matches nothing: every rule is tried
    )
    figure = median_seconds(lambda: policy.evaluate(request), number=5_000)
    base = median_seconds(lambda: parse_policy(document), number=500)
    return Result(
        "policy: evaluate (no match, 5 rules) vs parse_policy",
        figure * 1e6,
        base * 1e6,
        "us",
        "ratio << 1: parse once, evaluate per request",
    )


def run() -> list[Result]:
    return [_bench_get(), _bench_single_flight(), _bench_evaluate()]
