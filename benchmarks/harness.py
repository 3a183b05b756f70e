"""Shared shape of benchmark results: every figure is printed beside a baseline measured in the
same run, so the ratio means something on any machine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One row of the ``make bench`` table."""

    name: str
    figure: float
    baseline: float
    unit: str
    goal: str
    #: Lower ratio is better unless the goal says otherwise; the goal text is what a reader checks.
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline if self.baseline else float("inf")


def median_seconds(func: Callable[[], object], *, repeat: int = 7, number: int = 1) -> float:
    """Median wall time of ``number`` calls of ``func``, over ``repeat`` rounds, per call."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def alternating(funcs: dict[str, Callable[[], object]], *, samples: int) -> dict[str, float]:
    """Median seconds per call of each function, calls alternating one by one, so that load from
    other processes on a shared machine hits every contender alike and spikes fall out of the
    median."""
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(samples):
        for name, func in funcs.items():
            times[name].append(timed(func))
    return {name: statistics.median(values) for name, values in times.items()}


def import_seconds(modules: str) -> float:
    """Seconds ``import <modules>`` takes in a fresh interpreter."""
    import subprocess
    import sys

    code = f"import time\nt = time.perf_counter()\nimport {modules}\nprint(time.perf_counter() - t)\n"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(output.strip())


def cold_start_ms(handler_module: str, *, samples: int) -> dict[str, float]:
    """Median milliseconds of importing the handler, ``boto3``, and everything the first request
    loads (handler + boto3 + the X-Ray SDK), each in a fresh interpreter, interleaved."""
    contenders = {
        "handler": handler_module,
        "boto3": "boto3",
        "first": f"{handler_module}, boto3, aws_xray_sdk.core",
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    import_seconds("boto3")  # warm the OS file cache once for everyone
    import_seconds(contenders["first"])
    for _ in range(samples):
        for name, modules in contenders.items():
            times[name].append(import_seconds(modules))
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def lambda_environment() -> None:
    """What a Lambda has and moto needs (fake credentials, region, tracing off, the benchmarks'
    metrics namespace), for ``make bench`` and for a benchmark module run on its own."""
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "KernelAccessBench")
