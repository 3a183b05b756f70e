"""``kernel-access policy``: lint a policy document and explain decisions offline.

``lint`` and ``explain`` read a *full* policy document (``version``, ``partners``, ``rules``) — the same JSON
the construct deploys to the config bucket — so what is linted is exactly what the Lambda loads.
FILE is a path, ``-`` (standard input) or ``s3://BUCKET/KEY``: the deployed object itself (its
current version, read with the caller's AWS credentials), the very bytes the vending Lambda reads.

``schema`` prints the JSON Schema of policy documents (generated from the parser's field specs).

Exit codes: ``lint`` 0 valid / 1 invalid or unreadable; ``explain`` 0 allow / 3 deny / 1 error
(unreadable or invalid file, bad option value); argparse usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from kernel_access import settings
from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE

if TYPE_CHECKING:
    from kernel_access.schemas import DocumentKind

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DENY = 3

_LINT_EPILOG = """\
examples:
  kernel-access policy lint policy.json
  kernel-access policy lint --output json policy.json
  kernel-access policy lint s3://CONFIG_BUCKET/vending/policy.json   # the deployed document

exit codes: 0 valid, 1 invalid (every error is listed; a document over the size limit is
invalid unparsed) or unreadable.
"""

_EXPLAIN_EPILOG = """\
examples:
  kernel-access policy explain policy.json \\
      --caller arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-42 \\
      --role kernel-deployer --at 2026-11-23T10:00:00Z
  kernel-access policy explain policy.json --caller ARN --codeartifact-domain kernel \\
      --repository internal --source-ip 203.0.113.7 --output json

The request is derived from --caller exactly as the Lambda derives it: the partner from the
session name, the account and organization that rule conditions compare from the partner's entry in
the document's partners map.
exit codes: 0 allow, 3 deny, 1 error.
"""


def print_schema(kind: DocumentKind) -> int:
    """``policy schema`` / ``exchange schema``: the schema as the parser defines it now."""
    from kernel_access.schemas import render

    sys.stdout.write(render(kind))
    return EXIT_OK


_FILE_HELP = "policy document (JSON): a path, '-' (standard input) or s3://BUCKET/KEY (the deployed object)"
_S3: Final = "s3://"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="lint a vending policy document or explain a decision",
        description="Work with vending policy documents offline.",
    )
    commands = parser.add_subparsers(title="policy commands", metavar="COMMAND")
    parser.set_defaults(func=lambda _args: _usage(parser))

    lint = commands.add_parser(
        "lint",
        help="validate a policy document and list every error",
        description="Validate a full policy document (version, partners, rules) and list every error.",
        epilog=_LINT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lint.add_argument("file", metavar="FILE", help=_FILE_HELP)
    lint.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (default text)"
    )
    lint.set_defaults(func=run_lint)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of policy documents",
        description="Print the JSON Schema (draft 2020-12) of policy documents, generated from the "
        "parser's own field definitions (the file shipped as kernel_access/schemas/policy.schema.json).",
        epilog="example:\n  kernel-access policy schema > policy.schema.json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.set_defaults(func=lambda _args: print_schema("policy"))

    explain = commands.add_parser(
        "explain",
        help="show the decision and the rule that makes it for one request",
        description="Evaluate one request against a policy document and show the deciding rule.",
        epilog=_EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("file", metavar="FILE", help=_FILE_HELP)
    explain.add_argument(
        "--caller", required=True, metavar="ARN", help="caller ARN as the authorizer reports it"
    )
    # Accepted only to refuse them with a clear message: a caller-supplied account, organization
    # or partner would let explain disagree with the Lambda, which derives all three.
    for retired in ("--account", "--org", "--partner"):
        explain.add_argument(retired, dest=f"retired_{retired[2:]}", help=argparse.SUPPRESS)
    target = explain.add_mutually_exclusive_group(required=True)
    target.add_argument("--role", metavar="NAME", help="target role of a credential request")
    target.add_argument(
        "--codeartifact-domain", metavar="DOMAIN", help="domain of a CodeArtifact token request"
    )
    explain.add_argument(
        "--repository", metavar="NAME", help="CodeArtifact repository (with --codeartifact-domain)"
    )
    explain.add_argument("--at", metavar="TIME", help="ISO-8601 time with offset or Z (default: now)")
    explain.add_argument("--source-ip", metavar="IP", help="caller source IP address")
    explain.add_argument("--duration", type=int, metavar="S", help="requested duration in seconds")
    explain.add_argument(
        "--in-org-role",
        default=os.environ.get(settings.IN_ORG_ROLE_NAME, KERNEL_ACCESS_ROLE),
        metavar="NAME",
        help=f"name of the in-organization kernel-access role (default {KERNEL_ACCESS_ROLE})",
    )
    explain.add_argument(
        "--external-role",
        default=os.environ.get(settings.EXTERNAL_ROLE_NAME, KERNEL_ACCESS_EXTERNAL_ROLE),
        metavar="NAME",
        help="base name of the external partners' roles, <base>-<partner> "
        f"(default {KERNEL_ACCESS_EXTERNAL_ROLE})",
    )
    explain.add_argument(
        "--kernel-account",
        default=os.environ.get(settings.KERNEL_ACCOUNT_ID),
        metavar="ID",
        help=f"the kernel account the vending Lambda runs in (default ${settings.KERNEL_ACCOUNT_ID}); "
        "a caller ARN of another account is no partner",
    )
    explain.add_argument(
        "--partition",
        default=os.environ.get(settings.PARTITION, "aws"),
        metavar="NAME",
        help=f"the kernel's partition (default ${settings.PARTITION} or aws)",
    )
    explain.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (default text)"
    )
    explain.set_defaults(func=run_explain)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    if path.startswith(_S3):
        return _read_s3(path)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _read_s3(url: str) -> str:
    """The current version of ``s3://BUCKET/KEY``: the object the Lambda reads. AWS errors are
    reported as unreadable input (``OSError``), like a missing file."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = url.removeprefix(_S3).partition("/")
    if not bucket or not key:
        raise OSError(f"expected {_S3}BUCKET/KEY, got {url!r}")
    try:
        body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise OSError(str(exc)) from None
    return body.decode("utf-8")


def _check_size(text: str) -> None:
    """The Lambda refuses a document over the size limit unread (``document_store.s3_fetcher``):
    lint says so rather than calling it valid."""
    from kernel_access import contract
    from kernel_access.policy import PolicyIssue, PolicyValidationError

    size, limit = len(text.encode("utf-8")), contract.MAX_DOCUMENT_BYTES
    if size > limit:
        message = f"{size} bytes, over the document size limit of {limit} bytes: the Lambda refuses it"
        raise PolicyValidationError([PolicyIssue(None, "(size)", message)])


def run_lint(args: argparse.Namespace) -> int:
    from kernel_access.policy import PolicyValidationError, parse_policy

    try:
        text = _read(args.file)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"kernel-access policy lint: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        _check_size(text)
        policy = parse_policy(text)
    except PolicyValidationError as exc:
        if args.output == "json":
            errors = [{"rule_id": e.rule_id, "field": e.field, "message": e.message} for e in exc.errors]
            print(json.dumps({"valid": False, "errors": errors}, indent=2))
        else:
            for issue in exc.errors:
                print(f"{args.file}: {issue}")
            print(f"{len(exc.errors)} error(s)")
        return EXIT_ERROR
    allow = sum(1 for rule in policy.rules if rule.effect == "allow")
    if args.output == "json":
        summary: dict[str, Any] = {
            "valid": True,
            "errors": [],
            "version": policy.version,
            "partners": len(policy.partners),
            "rules": len(policy.rules),
            "allow_rules": allow,
            "deny_rules": len(policy.rules) - allow,
        }
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.file}: valid policy version {policy.version!r}: {len(policy.rules)} rule(s) "
            f"({allow} allow, {len(policy.rules) - allow} deny), {len(policy.partners)} partner(s)"
        )
    return EXIT_OK


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"--at must include a UTC offset or Z, got {value!r}")
    return parsed


def _refused_explain_options(args: argparse.Namespace) -> str | None:
    """Why the options cannot describe a request the Lambda could see, or None."""
    retired = [flag for flag in ("account", "org", "partner") if getattr(args, f"retired_{flag}") is not None]
    if retired:
        return (
            f"--{retired[0]} is not accepted: the partner, its account and its organization are "
            "derived from --caller exactly as the Lambda derives them"
        )
    if args.kernel_account is None:
        return (
            f"--kernel-account (or ${settings.KERNEL_ACCOUNT_ID}) is required: the Lambda resolves "
            "partners only for sessions of its own account"
        )
    if args.repository is not None and args.codeartifact_domain is None:
        return "--repository needs --codeartifact-domain"
    return None


def run_explain(args: argparse.Namespace) -> int:
    from kernel_access.policy import KernelIdentity, PolicyValidationError, access_request_for, parse_policy

    refused = _refused_explain_options(args)
    if refused is not None:
        print(f"kernel-access policy explain: {refused}", file=sys.stderr)
        return EXIT_ERROR
    try:
        policy = parse_policy(_read(args.file))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"kernel-access policy explain: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except PolicyValidationError as exc:
        print(f"kernel-access policy explain: {args.file} is not a valid policy:\n{exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        at = _parse_at(args.at)
    except ValueError as exc:
        print(f"kernel-access policy explain: {exc}", file=sys.stderr)
        return EXIT_ERROR
    request = access_request_for(
        policy,
        caller_arn=args.caller,
        source_ip=args.source_ip,
        at=at,
        kernel=KernelIdentity(
            account_id=args.kernel_account,
            partition=args.partition,
            in_org_role=args.in_org_role,
            external_role=args.external_role,
        ),
        role=args.role,
        codeartifact_domain=args.codeartifact_domain,
        codeartifact_repository=args.repository,
        duration=args.duration,
    )
    partner = request.partner
    decision = policy.evaluate(request)
    session_policy = (
        {
            "inline": json.loads(decision.session_policy.inline_json)
            if decision.session_policy.inline_json is not None
            else None,
            "managed_policy_arns": list(decision.session_policy.managed_policy_arns),
        }
        if decision.session_policy is not None
        else None
    )
    if args.output == "json":
        report: dict[str, Any] = {
            "decision": "allow" if decision.allowed else "deny",
            "rule_id": decision.rule_id,
            "reason": decision.reason,
            "partner": partner,
            "account_id": request.account_id,
            "organization_id": request.org_id,
            "at": at.isoformat(),
            "policy_version": policy.version,
            "max_duration": decision.max_duration,
            "duration": decision.duration,
            "codeartifact_access": decision.codeartifact_access,
            "session_policy": session_policy,
        }
        print(json.dumps(report, indent=2))
    else:
        lines = [
            f"decision:        {'ALLOW' if decision.allowed else 'DENY'}",
            f"rule:            {decision.rule_id or '(none)'}",
            f"reason:          {decision.reason}",
            f"partner:         {partner or '(none)'} (derived from the caller's session name)",
            f"account:         {request.account_id or '(unknown)'}",
            f"organization:    {request.org_id or '(none)'}",
            f"evaluated at:    {at.isoformat()}",
            f"policy version:  {policy.version}",
        ]
        if decision.allowed:
            lines.append(f"max duration:    {decision.max_duration} s")
            lines.append(f"duration:        {decision.duration} s")
            if decision.codeartifact_access is not None:
                lines.append(f"token access:    {decision.codeartifact_access}")
            lines.append(f"session policy:  {json.dumps(session_policy) if session_policy else '(none)'}")
        print("\n".join(lines))
    return EXIT_OK if decision.allowed else EXIT_DENY
