"""Run every ``benchmarks/bench_*.py`` and print one table of figures, baselines, ratios and goals."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time

from benchmarks.harness import Result


def _modules() -> list[str]:
    package_dir = os.path.dirname(__file__)
    only = set(sys.argv[1:])
    names = sorted(m.name for m in pkgutil.iter_modules([package_dir]) if m.name.startswith("bench_"))
    return [n for n in names if not only or n in only]


def main() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "KernelAccessBench")
    rows: list[Result] = []
    # What the code under test prints (EMF metric lines, JSON logs, emulator workers) would bury the
    # table: file descriptor 1 points at /dev/null while benchmarks run (writes still happen, so their
    # cost stays in the figures), and the table goes to the original stdout.
    sys.stdout.flush()
    table_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        for name in _modules():
            started = time.perf_counter()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            module = importlib.import_module(f"benchmarks.{name}")
            rows.extend(module.run())
            print(f"  done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        os.dup2(table_fd, 1)
        os.close(table_fd)
        os.close(devnull)
    header = f"{'benchmark':<58} {'figure':>14} {'baseline':>14} {'ratio':>8}  goal"
    print(header)
    print("-" * len(header))
    for row in rows:
        figure = f"{row.figure:.6g} {row.unit}"
        baseline = f"{row.baseline:.6g} {row.unit}"
        print(f"{row.name:<58} {figure:>14} {baseline:>14} {row.ratio:>8.3f}  {row.goal}")
        if row.note:
            print(f"{'':<58} {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
