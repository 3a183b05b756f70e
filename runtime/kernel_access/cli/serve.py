"""``kernel-access serve``: a loopback container-credentials server for SDKs in other shells.

It prints the two ``export`` lines; anything started with them in its environment gets vended
credentials from ``http://127.0.0.1:<port>/credentials``, refreshed before the SDKs' 15-minute window.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from typing import Any

from kernel_access.client.cli_support import (
    EXIT_OK,
    EXIT_USAGE,
    HANDLED_ERRORS,
    add_output_argument,
    add_vending_arguments,
    build_vending_api,
    report_failure,
)
from kernel_access.client.credential_server import CredentialServer

EPILOG = """\
examples:
  eval "$(kernel-access serve --api https://abc123.execute-api.eu-west-1.amazonaws.com \\
      --role kernel-reader --profile kernel &)"   # run in the background, export the variables
  aws sts get-caller-identity                     # any SDK now uses the vended role

  kernel-access serve --role kernel-reader --port 9911 --output json
  # {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9911/credentials",
  #  "AWS_CONTAINER_AUTHORIZATION_TOKEN": "..."}

The token is printed once, for your shell only; it is a secret. Prefer `kernel-access exec`, which
never prints it. Stop the server with Ctrl-C or SIGTERM.
"""

#: A minimum that leaves room above the 15-minute SDK window (the server refreshes at 15 min left).
MIN_SERVE_DURATION = 1200


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve vended credentials to SDKs on 127.0.0.1 (container-credentials protocol)",
        description="Run a container-credentials server on 127.0.0.1 that serves vended credentials "
        "and print the AWS_CONTAINER_CREDENTIALS_FULL_URI/AWS_CONTAINER_AUTHORIZATION_TOKEN exports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_role_arguments(parser)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    add_output_argument(parser)
    add_vending_arguments(parser)
    parser.set_defaults(func=run)


def add_role_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", required=True, help="target role name, as the kernel's policy names it")
    parser.add_argument(
        "--duration",
        type=int,
        default=3600,
        help=f"session seconds, {MIN_SERVE_DURATION}-3600 (default: 3600); credentials are replaced "
        "when 15 minutes are left",
    )


def build_server(args: argparse.Namespace, *, port: int = 0) -> CredentialServer:
    """A primed server: credentials are fetched before this returns, so errors surface at once."""
    if not MIN_SERVE_DURATION <= args.duration <= 3600:
        raise ValueError(f"--duration: must be {MIN_SERVE_DURATION}-3600 seconds")
    api = build_vending_api(args)
    server = CredentialServer(lambda: api.credentials(args.role, args.duration), port=port)
    try:
        server.prime()
    except Exception:
        server.shutdown()
        raise
    return server


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        return report_failure(ValueError("--port: must be 0-65535"), output=args.output)
    try:
        server = build_server(args, port=args.port)
    except HANDLED_ERRORS as exc:
        return report_failure(exc, output=args.output)
    except OSError as exc:  # port in use
        print(
            f"kernel-access: error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return EXIT_USAGE
    environment = server.environment()
    if args.output == "json":
        print(json.dumps(environment), flush=True)
    else:
        for name, value in environment.items():
            print(f"export {name}={shlex.quote(value)}", flush=True)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    try:
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
    return EXIT_OK
