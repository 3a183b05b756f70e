"""``kernel-access exec -- COMMAND ARGS…``: run one command with vended credentials.

A loopback container-credentials server lives exactly as long as the child: it is started (and its
credentials fetched) before the child, and shut down when the child exits, whose exit code becomes
ours. The authorization token exists only in the child's environment — never on a command line
(visible in ``ps``) nor in a file. Signals sent to us are forwarded to the child.

Variables that would make an SDK prefer other credentials (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
…) are removed from the child's environment. A ``[default]`` profile with static keys in
``~/.aws/credentials`` still wins over container credentials in every SDK's chain; run with
``AWS_SHARED_CREDENTIALS_FILE=/dev/null`` if you have one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, Final

from kernel_access.cli.serve import add_role_arguments, build_server
from kernel_access.client.cli_support import (
    EXIT_USAGE,
    HANDLED_ERRORS,
    add_vending_arguments,
    report_failure,
)

EPILOG = """\
examples:
  kernel-access exec --api https://abc123.execute-api.eu-west-1.amazonaws.com \\
      --role kernel-reader --profile kernel -- aws s3 ls s3://kernel-data/
  kernel-access exec --role kernel-deployer --kernel-account-id 111111111111 --partner acme \\
      -- python deploy.py --stage prod
  KERNEL_ACCESS_VENDING_API_URL=https://… kernel-access exec --role kernel-reader -- terraform plan

The exit code is the command's (128+N when it dies of signal N; 127 when it cannot be started).
"""

#: Variables that take precedence over container credentials in SDK credential chains.
SHADOWING_VARIABLES: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
#: Signals passed on to the child (those this platform has: Windows lacks most).
FORWARDED_SIGNALS: Final = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "exec",
        help="run a command with vended credentials (loopback server for its lifetime)",
        description="Run COMMAND with AWS_CONTAINER_CREDENTIALS_FULL_URI and "
        "AWS_CONTAINER_AUTHORIZATION_TOKEN pointing at a private loopback server that serves vended "
        "credentials until the command exits.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s --role NAME [options] -- COMMAND [ARGS...]",
    )
    add_role_arguments(parser)
    add_vending_arguments(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    parser.set_defaults(func=run)


def child_environment(parent: Mapping[str, str], server_environment: Mapping[str, str]) -> dict[str, str]:
    environment = {k: v for k, v in parent.items() if k not in SHADOWING_VARIABLES}
    environment.update(server_environment)
    return environment


def run(args: argparse.Namespace) -> int:
    command: Sequence[str] = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("kernel-access: error: exec needs a command after --", file=sys.stderr)
        return EXIT_USAGE
    try:
        server = build_server(args)
    except HANDLED_ERRORS as exc:
        return report_failure(exc)
    server.start()
    try:
        return _run_child(command, child_environment(os.environ, server.environment()))
    finally:
        server.shutdown()


def _run_child(command: Sequence[str], environment: dict[str, str]) -> int:
    # Handlers go in before the child starts, so no signal can slip between start and install;
    # one that arrives before the child exists is delivered to it as soon as it does.
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)
        elif child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        try:
            child = subprocess.Popen(list(command), env=environment)  # noqa: S603 - running it is the point
        except OSError as exc:
            print(f"kernel-access: error: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
            return 127
        for signum in pending:
            child.send_signal(signum)
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return returncode if returncode >= 0 else 128 - returncode
