"""``kernel-access codeartifact login``: configure pip, npm or twine for a kernel CodeArtifact
repository with a token from the vending API (``GET /codeartifact/token``). The token is written to
the tool's configuration file (mode 0600) and never printed."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from kernel_access.client.cli_support import (
    EXIT_OK,
    HANDLED_ERRORS,
    add_output_argument,
    add_vending_arguments,
    build_vending_api,
    report_failure,
)
from kernel_access.client.codeartifact_config import (
    TOOLS,
    Tool,
    default_config_path,
    render,
    repository_endpoint,
    write,
)
from kernel_access.client.config import ENV_ACCOUNT_ID
from kernel_access.client.vending import iso_z

EPILOG = """\
examples:
  kernel-access codeartifact login --tool pip --domain kernel --repository python \\
      --domain-owner 111111111111 --api https://abc123.execute-api.eu-west-1.amazonaws.com
  kernel-access codeartifact login --tool npm --domain kernel --repository npm-store \\
      --domain-owner 111111111111 --region eu-west-1
  kernel-access codeartifact login --tool twine --domain kernel --repository python --dry-run
  kernel-access codeartifact login --tool pip --domain kernel --repository python \\
      --repository-endpoint https://kernel-111111111111.d.codeartifact.eu-west-1.amazonaws.com/pypi/python/ \\
      --output json

Files: pip -> $PIP_CONFIG_FILE or ~/.config/pip/pip.conf; npm -> $NPM_CONFIG_USERCONFIG or ~/.npmrc;
twine -> ~/.pypirc (section [codeartifact]; upload with `twine upload -r codeartifact dist/*`).
"""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "codeartifact",
        help="CodeArtifact helpers (login)",
        description="CodeArtifact helpers backed by the vending API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    login = actions.add_parser(
        "login",
        help="write pip/npm/twine configuration with a vended token",
        description="Fetch a CodeArtifact token from the vending API and write the tool's "
        "configuration the way `aws codeartifact login` does, without printing the token.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login.add_argument("--tool", required=True, choices=TOOLS, help="which tool to configure")
    login.add_argument("--domain", required=True, help="CodeArtifact domain")
    login.add_argument("--repository", required=True, help="CodeArtifact repository")
    login.add_argument(
        "--domain-owner",
        default=os.environ.get(ENV_ACCOUNT_ID),
        help=f"account that owns the domain (default: ${ENV_ACCOUNT_ID}); used to derive the endpoint",
    )
    login.add_argument("--repository-endpoint", help="repository endpoint URL (default: derived)")
    login.add_argument("--duration", type=int, help="token seconds, 900-3600 (default: the API's)")
    login.add_argument("--config-file", type=Path, help="file to write (default: the tool's user config)")
    login.add_argument("--dry-run", action="store_true", help="show what would be written, token masked")
    add_output_argument(login)
    add_vending_arguments(login)
    login.set_defaults(func=run_login)


def _endpoint(args: argparse.Namespace, tool: Tool) -> str:
    if args.repository_endpoint:
        endpoint: str = args.repository_endpoint
        return endpoint if endpoint.endswith("/") else endpoint + "/"
    if not args.domain_owner:
        raise ValueError(f"--domain-owner: required to derive the endpoint (or set {ENV_ACCOUNT_ID})")
    region = args.region or _region_of(args.api) or os.environ.get("AWS_REGION") or "us-east-1"
    return repository_endpoint(args.domain, args.domain_owner, region, tool, args.repository)


def _region_of(api: str | None) -> str | None:
    from kernel_access.client.signing import region_from_url

    region = region_from_url(api or "", "")
    return region or None


def run_login(args: argparse.Namespace) -> int:
    tool: Tool = args.tool
    try:
        endpoint = _endpoint(args, tool)
        api = build_vending_api(args)
        token = api.codeartifact_token(args.domain, args.repository, args.duration)
        path = args.config_file or default_config_path(tool)
        rendered = render(tool, path, endpoint, token.token)
        if not args.dry_run:
            write(rendered)
    except HANDLED_ERRORS as exc:
        return report_failure(exc, output=args.output)
    except OSError as exc:
        return report_failure(ValueError(f"{exc.filename}: {exc.strerror}"), output=args.output)
    summary = {
        "tool": tool,
        "config_file": str(rendered.path),
        "repository_endpoint": endpoint,
        "expiration": iso_z(token.expiration),
        "written": not args.dry_run,
    }
    if args.output == "json":
        if args.dry_run:
            summary["content"] = rendered.masked
        print(json.dumps(summary))
    elif args.dry_run:
        print(f"# would write {rendered.path} (mode 0600; token masked):")
        print(rendered.masked, end="")
    else:
        print(
            f"Wrote {tool} configuration for {endpoint} to {rendered.path} "
            f"(token expires {summary['expiration']})"
        )
    return EXIT_OK
