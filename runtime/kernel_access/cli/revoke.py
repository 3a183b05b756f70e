"""``kernel-access revoke`` / ``unrevoke`` / ``revoke-sessions``: the operator's kill switches.

- ``revoke`` marks a caller ARN or a whole partner revoked in the revocation table; from the next
  request on, vending refuses them with SESSION_REVOKED. Each entry records who (the operator's STS
  caller identity ARN — taken from AWS, not typed in) and why (``--reason``, required).
- ``unrevoke`` removes an entry; ``revoke --list`` shows them.
- ``revoke-sessions --role NAME`` kills sessions *already vended* for a target role, AWS's
  documented way: an inline policy ``AWSRevokeOlderSessions`` on the role that denies everything to
  sessions whose ``aws:TokenIssueTime`` is before now. Revocation stops new credentials; this stops
  the ones already handed out. Use both in an incident.

Exit codes: 0 done, 1 AWS or input error, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from kernel_access import settings

if TYPE_CHECKING:
    from kernel_access.revocation import RevocationStore

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
#: The inline policy name the IAM console uses for "Revoke active sessions".
REVOKE_POLICY_NAME: Final = "AWSRevokeOlderSessions"
_ARN_RE: Final = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[\x21-\x7e]+$")

_REVOKE_EPILOG = """\
examples:
  kernel-access revoke --caller arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-42 \\
      --reason "INC-1234: leaked CI credentials" --table kernel-access-revocation
  kernel-access revoke --partner acme-analytics --reason "contract ended"
  kernel-access revoke --list --output json

The table defaults to $KERNEL_ACCESS_REVOCATION_TABLE. Revocation stops NEW credentials; to kill
sessions already vended for a role, also run: kernel-access revoke-sessions --role NAME
"""

_UNREVOKE_EPILOG = """\
examples:
  kernel-access unrevoke --caller arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-42
  kernel-access unrevoke --partner acme-analytics --table kernel-access-revocation
"""

_SESSIONS_EPILOG = """\
examples:
  kernel-access revoke-sessions --role kernel-deployer
  kernel-access revoke-sessions --role kernel-reader --dry-run --output json

Puts the inline policy AWSRevokeOlderSessions on the role: Deny * on * when aws:TokenIssueTime is
before now. Every session issued before that instant stops working (new ones are unaffected).
"""


def _add_common(parser: argparse.ArgumentParser, *, table: bool = True) -> None:
    if table:
        parser.add_argument(
            "--table",
            default=os.environ.get(settings.REVOCATION_TABLE_NAME),
            help=f"revocation table name (default: ${settings.REVOCATION_TABLE_NAME})",
        )
    parser.add_argument("--region", default=None, help="AWS region (default: from the AWS config)")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")


def _add_subject(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--caller", metavar="ARN", help="caller ARN as the vending API sees it")
    group.add_argument("--partner", metavar="NAME", help="partner name from the policy's partners map")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    revoke = subparsers.add_parser(
        "revoke",
        help="refuse a caller or partner from now on (SESSION_REVOKED)",
        description="Mark a caller ARN or a partner revoked; vending refuses them from the next request.",
        epilog=_REVOKE_EPILOG,
        formatter_class=formatter,
    )
    _add_subject(revoke, required=False)
    revoke.add_argument("--reason", help="why (recorded with your identity); required unless --list")
    revoke.add_argument("--list", action="store_true", help="list current revocations instead")
    _add_common(revoke)
    revoke.set_defaults(func=_revoke)

    unrevoke = subparsers.add_parser(
        "unrevoke",
        help="lift a revocation",
        description="Remove a caller or partner from the revocation table.",
        epilog=_UNREVOKE_EPILOG,
        formatter_class=formatter,
    )
    _add_subject(unrevoke, required=True)
    _add_common(unrevoke)
    unrevoke.set_defaults(func=_unrevoke)

    sessions = subparsers.add_parser(
        "revoke-sessions",
        help="invalidate every session already issued for a target role",
        description="Deny all sessions of a role issued before now (IAM inline policy on the role).",
        epilog=_SESSIONS_EPILOG,
        formatter_class=formatter,
    )
    sessions.add_argument("--role", required=True, metavar="NAME", help="target role name")
    sessions.add_argument("--dry-run", action="store_true", help="print the policy, change nothing")
    _add_common(sessions, table=False)
    sessions.set_defaults(func=_revoke_sessions)


def _fail(message: str) -> int:
    print(f"kernel-access: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.output == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def _session(region: str | None) -> Any:
    import boto3

    return boto3.session.Session(region_name=region)


def _aws_error(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _subject(args: argparse.Namespace) -> str:
    from kernel_access.revocation import caller_subject, partner_subject
    from kernel_access.validation import require_partner_name

    if args.caller is not None:
        if not _ARN_RE.match(args.caller):
            raise ValueError("--caller must be an IAM or STS ARN")
        return caller_subject(args.caller)
    return partner_subject(require_partner_name(args.partner, "--partner"))


def _store(args: argparse.Namespace) -> RevocationStore:
    from kernel_access.revocation import RevocationStore

    if not args.table:
        raise ValueError(f"no revocation table: pass --table or set ${settings.REVOCATION_TABLE_NAME}")
    session = _session(args.region)
    client = session.client("dynamodb")
    return RevocationStore(args.table, lambda: client)


def _revoke(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
        if args.list:
            entries = [vars(r) | {"kind": r.kind} for r in store.list()]
            lines = [f"{e['subject']}\t{e['revoked_at']}\t{e['revoked_by']}\t{e['reason']}" for e in entries]
            _emit(args, entries, "\n".join(lines) if lines else "no revocations")
            return EXIT_OK
        if args.caller is None and args.partner is None:
            return _fail("one of --caller or --partner is required (or --list)")
        if not args.reason or not args.reason.strip():
            return _fail("--reason is required: say why, it is recorded")
        subject = _subject(args)
        operator = _session(args.region).client("sts").get_caller_identity()["Arn"]
        revocation = store.revoke(subject, reason=args.reason.strip()[:1024], revoked_by=operator)
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    _emit(
        args,
        vars(revocation) | {"kind": revocation.kind},
        f"revoked {revocation.subject} at {revocation.revoked_at} by {revocation.revoked_by}",
    )
    return EXIT_OK


def _unrevoke(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
        subject = _subject(args)
        existed = store.unrevoke(subject)
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    _emit(
        args,
        {"subject": subject, "removed": existed},
        f"unrevoked {subject}" if existed else f"{subject} was not revoked",
    )
    return EXIT_OK


def revoke_older_sessions_policy(at: datetime) -> dict[str, Any]:
    """The policy the IAM console's "Revoke active sessions" attaches (same shape, same name)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": ["*"],
                "Condition": {
                    "DateLessThan": {"aws:TokenIssueTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                },
            }
        ],
    }


def _revoke_sessions(args: argparse.Namespace) -> int:
    from kernel_access.validation import ValidationError, require_role_name

    try:
        role = require_role_name(args.role, "--role")
    except ValidationError as exc:
        return _fail(str(exc))
    at = datetime.now(UTC)
    policy = revoke_older_sessions_policy(at)
    data = {"role": role, "policy_name": REVOKE_POLICY_NAME, "policy": policy, "applied": not args.dry_run}
    if not args.dry_run:
        try:
            _session(args.region).client("iam").put_role_policy(
                RoleName=role, PolicyName=REVOKE_POLICY_NAME, PolicyDocument=json.dumps(policy)
            )
        except Exception as exc:
            return _fail(_aws_error(exc))
    issued = policy["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    verb = "would deny" if args.dry_run else "denied"
    _emit(args, data, f"{verb} every session of role {role} issued before {issued} ({REVOKE_POLICY_NAME})")
    return EXIT_OK
