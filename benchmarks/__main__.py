"""Run every ``benchmarks/bench_*.py`` and print one table of figures, baselines, ratios and goals.

A full run (no module names given) also writes the table into ``benchmarks/README.md``, between the
``FIGURES_BEGIN`` and ``FIGURES_END`` markers, so the figures there are always those of the last
``make bench``. A partial run (``python -m benchmarks bench_vending``) only prints.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

from benchmarks.harness import Result, lambda_environment

README = Path(__file__).with_name("README.md")
FIGURES_BEGIN = "<!-- figures: written by `make bench`, do not edit by hand -->"
FIGURES_END = "<!-- end of figures -->"


def _modules() -> list[str]:
    package_dir = os.path.dirname(__file__)
    only = set(sys.argv[1:])
    names = sorted(m.name for m in pkgutil.iter_modules([package_dir]) if m.name.startswith("bench_"))
    return [n for n in names if not only or n in only]


def main() -> int:
    lambda_environment()
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
    table = _table(rows)
    print(table)
    if not sys.argv[1:]:
        _write_readme(table)
    return 0


def _table(rows: list[Result]) -> str:
    header = f"{'benchmark':<58} {'figure':>14} {'baseline':>14} {'ratio':>8}  goal"
    lines = [header, "-" * len(header)]
    for row in rows:
        figure = f"{row.figure:.6g} {row.unit}"
        baseline = f"{row.baseline:.6g} {row.unit}"
        lines.append(f"{row.name:<58} {figure:>14} {baseline:>14} {row.ratio:>8.3f}  {row.goal}")
        if row.note:
            lines.append(f"{'':<58} {row.note}")
    return "\n".join(lines)


def _write_readme(table: str) -> None:
    """Replace the figures block of benchmarks/README.md with this run's table."""
    text = README.read_text()
    if FIGURES_BEGIN not in text or FIGURES_END not in text:
        print(f"(not written: {README} has no figures markers)", file=sys.stderr)
        return
    head, rest = text.split(FIGURES_BEGIN, 1)
    _, tail = rest.split(FIGURES_END, 1)
    where = f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    block = f"{FIGURES_BEGIN}\n\nLast full run: {where}.\n\n```text\n{table}\n```\n\n{FIGURES_END}"
    README.write_text(head + block + tail)
    print(f"figures written to {README}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
