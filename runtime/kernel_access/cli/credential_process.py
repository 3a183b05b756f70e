"""``kernel-access credential-process``: vended credentials for any AWS SDK, via ``~/.aws/config``.

SDKs run the configured command and read ``{"Version": 1, ...}`` from its stdout; errors go to stderr
(SDKs show them) with the API's ``error_code`` and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kernel_access.client.cli_support import (
    EXIT_OK,
    HANDLED_ERRORS,
    add_vending_arguments,
    build_vending_api,
    report_failure,
)

EPILOG = """\
examples:
  # ~/.aws/config -- the 'kernel' profile is a kernel-access session, 'kernel-reader' is vended:
  [profile kernel]
  role_arn = arn:aws:iam::111111111111:role/kernel-access
  source_profile = default
  role_session_name = 222222222222.laptop   # must start with your own account id and '.'

  [profile kernel-reader]
  credential_process = kernel-access credential-process --profile kernel \\
      --api https://abc123.execute-api.eu-west-1.amazonaws.com --role kernel-reader

  # or let the tool assume the kernel role itself:
  credential_process = kernel-access credential-process --kernel-account-id 111111111111 \\
      --partner acme --api https://abc123.execute-api.eu-west-1.amazonaws.com --role kernel-reader

  # one-off, to see what an SDK would get:
  kernel-access credential-process --api $KERNEL_ACCESS_VENDING_API_URL --role kernel-reader

Never point credential_process at a profile whose own credentials come from this command:
the SDK would recurse.
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "credential-process",
        help="print vended credentials in the credential_process format",
        description="Call GET /credentials on the vending API (SigV4-signed) and print the "
        "credential_process JSON (Version 1) on stdout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--role", required=True, help="target role name, as the kernel's policy names it")
    parser.add_argument("--duration", type=int, help="session seconds, 900-3600 (default: the API's, 3600)")
    parser.add_argument(
        "--output",
        choices=("json",),
        default="json",
        help="always json: the format credential_process requires (errors too, on stderr)",
    )
    add_vending_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        api = build_vending_api(args)
        credentials = api.credentials(args.role, args.duration)
    except HANDLED_ERRORS as exc:
        return report_failure(exc, output="json")
    sys.stdout.write(json.dumps(credentials.credential_process_json()) + "\n")
    sys.stdout.flush()
    return EXIT_OK
