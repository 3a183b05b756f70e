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
    # What the code under test prints (EMF metric lines, JSON logs, the emulator's execution
    # environments, which log to stderr like Lambda) would bury the table: file descriptors 1 and 2
    # point at /dev/null while benchmarks run (writes still happen, so their cost stays in the
    # figures); progress goes to a private copy of stderr, the table to the original stdout, and a
    # failing benchmark's traceback is printed after both are restored.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    progress = os.fdopen(os.dup(2), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in saved:
        os.dup2(devnull, fd)
    try:
        for name in _modules():
            started = time.perf_counter()
            print(f"running {name} ...", file=progress)
            module = importlib.import_module(f"benchmarks.{name}")
            rows.extend(module.run())
            print(f"  done in {time.perf_counter() - started:.1f}s", file=progress)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
        progress.close()
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
