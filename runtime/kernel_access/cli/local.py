"""``kernel-access local``: run the kernel stack's template on this machine (``local`` extra).

Imports moto/PyJWT/cryptography only when the command runs, so ``kernel-access --help`` and the
Lambda never need the ``local`` extra; when they are missing the command says which extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

# Standard library only: cheap enough for `kernel-access --help`.
from kernel_access.local.template import LOCAL_CDK_OUT
from kernel_access.validation import ACCOUNT_ID_RE

#: What to install for this command (the ``local`` extra of pyproject.toml), and the modules of it
#: the emulator imports. moto is otherwise imported only once provisioning starts; importing all of
#: them first turns a missing one into one clear message before any work is done.
LOCAL_EXTRA_REQUIREMENT = "'kernel-access[local]'"
LOCAL_EXTRA_MODULES = ("moto.server", "jwt", "cryptography")

EPILOG = f"""\
examples:
  kernel-access local                        # synthesise ./{LOCAL_CDK_OUT} if stale, serve on free ports
  kernel-access local --port 8000            # vending API on http://127.0.0.1:8000
  kernel-access local --template cdk.out/KernelAccessKernel.template.json --no-synth
  kernel-access local --issuer oidc-github   # also print a test token of that JWT authorizer's issuer
  kernel-access local --set KERNEL_ACCESS_RATE_LIMIT_REQUESTS=1000   # override a function variable
  kernel-access local --state-dir .local     # env files and state.json in a known place
  kernel-access local --no-iam               # do not evaluate trust policies or execute-api grants
  kernel-access local --workload-policy arn:aws:iam::222222222222:role/payments-workload=policy.json

Local IAM (on by default): docs/local-iam.md says what is evaluated and what is not.

Details, and what is not emulated: docs/local.md.

Needs the local extra: pip install {LOCAL_EXTRA_REQUIREMENT} (moto[server], PyJWT[crypto], cryptography).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run the kernel stack's template locally (moto, SigV4/JWT authorizers, local Lambda)",
        description=(
            "Run the synthesised kernel stack locally: DynamoDB tables, SSM parameters, S3 buckets (with the "
            "documents of their bucket deployments) and IAM roles on a "
            "moto server bound to 127.0.0.1, every HTTP API route with its IAM (SigV4) or JWT authorizer, "
            "each function's handler run in local execution environments (worker processes) with its "
            "template environment."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port of the vending API (default: any free)")
    parser.add_argument("--template", type=Path, help="template file or cdk.out directory to run")
    parser.add_argument(
        "--cdk-out",
        type=Path,
        help=f"cloud assembly directory (default: ./{LOCAL_CDK_OUT}, synthesised with the example service)",
    )
    parser.add_argument("--stack", help="stack to run (default: the one serving the vending API)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="CDK app directory (cdk.json)")
    parser.add_argument(
        "--no-synth", action="store_true", help="never synthesise, even when the assembly is stale"
    )
    parser.add_argument(
        "--issuer",
        action="append",
        default=[],
        metavar="NAME",
        help="print a test token signed by the local key of this JWT issuer (repeatable)",
    )
    parser.add_argument("--subject", default="repo:example/partner-app:ref:refs/heads/main", help="token sub")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an environment variable of every function (repeatable)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="execution environments (worker processes) per function: concurrent invocations (default: 4)",
    )
    parser.add_argument("--state-dir", type=Path, help="where env files and state.json go (default: temp)")
    parser.add_argument("--access-log", action="store_true", help="print one JSON line per request")
    parser.add_argument(
        "--no-iam",
        action="store_true",
        help="do not evaluate IAM: trust policies on AssumeRole and execute-api:Invoke grants (default: on)",
    )
    parser.add_argument(
        "--workload-policy",
        action="append",
        default=[],
        metavar="ROLE_ARN=FILE",
        help="identity policy (JSON document or list) of a role outside the template, e.g. a partner "
        "workload role (repeatable; default for such roles: may assume any role, nothing else)",
    )
    parser.add_argument(
        "--organization-account",
        action="append",
        default=[],
        metavar="ACCOUNT_ID",
        help="an account of the kernel's organization that is no partner yet, e.g. one that has just "
        "joined an admitted OU: local IAM lets it assume the in-organization role (repeatable)",
    )
    parser.add_argument(
        "--exit-after-start", action="store_true", help="start, print, stop (measures start-up)"
    )
    parser.set_defaults(func=run)


def _overrides(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"kernel-access local: --set expects NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def _organization_accounts(values: list[str]) -> tuple[str, ...]:
    for value in values:
        if not ACCOUNT_ID_RE.fullmatch(value):
            raise SystemExit(
                f"kernel-access local: --organization-account expects a 12-digit account id, got {value!r}"
            )
    return tuple(values)


def _workload_policies(pairs: list[str]) -> tuple[tuple[str, Path], ...]:
    out: list[tuple[str, Path]] = []
    for pair in pairs:
        role_arn, sep, path = pair.rpartition("=")
        if not sep or not role_arn.startswith("arn:") or not Path(path).is_file():
            raise SystemExit(f"kernel-access local: --workload-policy expects ROLE_ARN=FILE, got {pair!r}")
        out.append((role_arn, Path(path)))
    return tuple(out)


def _progress(message: str) -> None:
    print(f"kernel-access local: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        for module in LOCAL_EXTRA_MODULES:
            importlib.import_module(module)
        from kernel_access.local.server import LocalKernel, LocalOptions, log_to_stderr
        from kernel_access.local.template import TemplateError
    except ImportError as error:
        print(
            f"kernel-access local needs the local extra ({error.name} is missing): "
            f"pip install {LOCAL_EXTRA_REQUIREMENT}",
            file=sys.stderr,
        )
        return 2
    options = LocalOptions(
        project_dir=args.project_dir,
        template=args.template,
        cdk_out=args.cdk_out,
        stack=args.stack,
        synth=not args.no_synth,
        port=args.port,
        function_environment=_overrides(args.set),
        state_dir=args.state_dir,
        access_log=log_to_stderr if args.access_log else None,
        progress=_progress,
        concurrency=args.concurrency,
        iam=not args.no_iam,
        workload_policies=_workload_policies(args.workload_policy),
        organization_accounts=_organization_accounts(args.organization_account),
    )
    kernel = LocalKernel(options)
    try:
        kernel.start()
    except KeyboardInterrupt:  # Ctrl-C during a synth or provisioning: stop what has started
        kernel.stop()
        print("\nkernel-access local: interrupted during start-up", file=sys.stderr)
        return 130
    except (TemplateError, OSError, ValueError) as error:
        print(f"kernel-access local: {error}", file=sys.stderr)
        kernel.stop()
        return 1
    # From here on Ctrl-C (SIGINT) and SIGTERM only ask the main loop to stop, so the servers are
    # shut down from this thread in order (HTTP APIs first, then the local AWS) and the exit is 0.
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(kernel.banner(), flush=True)
        print(f"State (URLs, identities, issuer keys): {kernel.state_dir / 'state.json'}", flush=True)
        for name in args.issuer:
            try:
                issuer = kernel.issuer(name)
            except KeyError as error:
                print(f"kernel-access local: {error.args[0]}", file=sys.stderr)
                continue
            token = issuer.mint(subject=args.subject)
            print("\n" + "\n".join(kernel.token_lines(issuer, token, args.subject)), flush=True)
        if not args.exit_after_start:
            while not stop.wait(0.5):
                pass
            print("\nkernel-access local: stopping", flush=True)
    finally:
        kernel.stop()
    if not args.exit_after_start:
        print("kernel-access local: stopped", flush=True)
    return 0
