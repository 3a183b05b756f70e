"""Entry point of the ``kernel-access`` console script.

Each sub-command lives in its own module under ``kernel_access.cli`` and exposes
``register(subparsers) -> None``; the module adds its parser and sets ``func`` (a callable taking
the parsed ``argparse.Namespace`` and returning the exit code). Modules are imported only when the
tool starts, so adding a command never slows the Lambda handlers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kernel_access import __version__

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "policy",
    "local",
    "credential_process",
    "serve",
    "exec_cmd",
    "codeartifact",
    "revoke",
    "exchange",
    "audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernel-access",
        description=(
            "Authenticated, audited, short-lived access from partner AWS accounts to the kernel account."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kernel-access {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"kernel_access.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = func(args)
    return result


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
