"""What the partner CLI commands share: the options that say how to reach and sign for the vending
API, building the signed client from them, and turning failures into exit codes and stderr lines.

Exit codes: 0 success; 2 usage or configuration error; 3 the kernel refused (4xx, the API's
``error_code`` is printed); 4 the kernel or the network failed (5xx, timeouts, no credentials).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Final, TextIO

from kernel_access.client.config import ENV_VENDING_API_URL
from kernel_access.client.response import (
    KernelCallError,
    KernelClientError,
    KernelConfigError,
    KernelConnectionError,
    KernelCredentialsError,
)
from kernel_access.client.signing import region_from_url
from kernel_access.client.transport import SignedTransport
from kernel_access.client.vending import VendingApi, ambient_credentials
from kernel_access.refresh import RefreshError

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_UNAVAILABLE: Final = 4


def add_vending_arguments(parser: argparse.ArgumentParser) -> None:
    """``--api`` and how to sign: ambient credentials (``--profile``), or assume the kernel role
    first (``--kernel-account-id`` with ``--partner``/``--external-id``)."""
    group = parser.add_argument_group("vending API")
    group.add_argument(
        "--api",
        default=os.environ.get(ENV_VENDING_API_URL),
        help=f"base URL of the vending API (default: ${ENV_VENDING_API_URL})",
    )
    group.add_argument(
        "--region", help="signing region when the URL does not name one (default: the profile's)"
    )
    group.add_argument("--profile", help="AWS profile whose credentials sign the request (default: ambient)")
    group.add_argument(
        "--kernel-account-id",
        help="assume the kernel-access role in this account first and sign with that session "
        "(otherwise the ambient credentials must already be a kernel-access session)",
    )
    group.add_argument(
        "--partner",
        help="partner name as configured in the kernel; external partners need it (it names their "
        "role kernel-access-external-<partner>)",
    )
    group.add_argument("--external-id", help="external ID, for partners outside the organization")
    group.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (default: 10)")
    group.add_argument("--read-timeout", type=float, default=30.0, help="seconds (default: 30)")


def add_output_argument(parser: argparse.ArgumentParser, *, default: str = "text") -> None:
    parser.add_argument(
        "--output", choices=("text", "json"), default=default, help=f"output format (default: {default})"
    )


def build_vending_api(args: argparse.Namespace) -> VendingApi:
    """The signed vending client the options describe (raises ``KernelConfigError``)."""
    import boto3

    if not args.api:
        raise KernelConfigError(f"--api: required (or set {ENV_VENDING_API_URL})")
    if not str(args.api).startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise KernelConfigError("--api: must be an https:// URL (http:// only for 127.0.0.1/localhost)")
    try:
        session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
    except Exception as exc:  # botocore's ProfileNotFound and friends
        raise KernelConfigError(f"--profile: {type(exc).__name__}") from exc
    default_region = args.region or session.region_name or "us-east-1"
    if args.kernel_account_id:
        from kernel_access.client.kernel_client import KernelClient

        kernel = KernelClient(
            args.kernel_account_id,
            region=default_region,
            external_id=args.external_id,
            partner=args.partner,
            boto3_session=session,
        )
        transport = SignedTransport(
            kernel.current_credentials,
            region=region_from_url(args.api, default_region),
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
        )
        return VendingApi(args.api, transport)
    transport = SignedTransport(
        lambda: ambient_credentials(session),
        region=region_from_url(args.api, default_region),
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
    )
    return VendingApi(args.api, transport)


def report_failure(exc: Exception, *, output: str = "text", stream: TextIO | None = None) -> int:
    """Print ``exc`` to stderr (never a secret: our errors carry none) and return the exit code."""
    stream = stream or sys.stderr
    record: dict[str, Any] = {"error": str(exc)}
    code = EXIT_UNAVAILABLE
    if isinstance(exc, KernelCallError):
        # API Gateway's own refusals ({"message": "Forbidden"}) carry no error_code: name the status.
        record.update(
            status=exc.status, error_code=exc.error_code or f"HTTP_{exc.status}", request_id=exc.request_id
        )
        if exc.retry_after is not None:
            record["retry_after_seconds"] = exc.retry_after
        code = EXIT_REFUSED if 400 <= exc.status < 500 and exc.status != 429 else EXIT_UNAVAILABLE
    elif isinstance(exc, KernelConfigError | ValueError):
        record["error_code"] = "CONFIGURATION_ERROR"
        code = EXIT_USAGE
    elif isinstance(exc, KernelCredentialsError):
        record["error_code"] = "CREDENTIALS_ERROR"
    elif isinstance(exc, RefreshError):
        record["error_code"] = "CREDENTIALS_UNAVAILABLE"
    elif isinstance(exc, KernelConnectionError):
        record["error_code"] = "CONNECTION_ERROR"
    if output == "json":
        print(json.dumps(record), file=stream)
    else:
        prefix = f"{record['error_code']}: " if record.get("error_code") else ""
        print(f"kernel-access: error: {prefix}{exc}", file=stream)
    return code


#: What a command's ``func`` may raise and ``report_failure`` knows how to print.
HANDLED_ERRORS: Final = (KernelClientError, RefreshError, ValueError)
