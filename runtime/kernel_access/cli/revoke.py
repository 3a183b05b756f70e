"""``kernel-access revoke`` / ``unrevoke`` / ``revoke-sessions``: the operator's kill switches.

- ``revoke`` marks a whole partner, a partner's account, or one caller session ARN revoked in the
  revocation table; from the next request on, vending refuses them with SESSION_REVOKED. A caller
  revocation stops that one session ARN only (a leaked session credential cannot rename itself),
  not the partner, which can assume the role again under another session name: the command says
  so, and ``--partner`` / ``--account`` are what stop a partner. Each entry records who (the operator's STS
  caller identity ARN — taken from AWS, not typed in) and why (``--reason``, required).
- ``unrevoke`` removes an entry; ``revoke --list`` shows them.
- ``revoke-sessions --role NAME`` kills sessions *already vended* for a target role, AWS's
  documented way: an inline policy ``AWSRevokeOlderSessions`` on the role that denies everything to
  sessions whose ``aws:TokenIssueTime`` is before now. Revocation stops new credentials; this stops
  the ones already handed out. Use both in an incident.

Every change is also recorded in the audit table (``--audit-table``, default
``$KERNEL_ACCESS_AUDIT_TABLE``) as an operator record: route ``CLI <command>``, ``caller_arn`` = the
operator (so the ``by-caller`` index lists what an operator did), ``reason``,
``revocation_subject``. The ordering follows what fails safe:

- ``revoke`` and ``revoke-sessions`` cut access, so they are never blocked by the audit table: the
  change is made first, then recorded; if the record cannot be written the command says so and
  exits 1 (the change stays in force; for ``revoke`` the table item itself also holds who and why).
- ``unrevoke`` restores access, so it must not happen unrecorded: the delete and the audit record
  are one DynamoDB transaction, and the audit table is required.

Exit codes: 0 done, 1 AWS or input error, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from kernel_access import settings
from kernel_access.validation import PRINCIPAL_ARN_RE

if TYPE_CHECKING:
    from kernel_access.audit import AuditLog, AuditRecord
    from kernel_access.revocation import RevocationStore

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
#: The inline policy name the IAM console uses for "Revoke active sessions".
REVOKE_POLICY_NAME: Final = "AWSRevokeOlderSessions"

_REVOKE_EPILOG = """\
examples:
  kernel-access revoke --caller arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-42 \\
      --reason "INC-1234: leaked CI credentials" --table kernel-access-revocation
  kernel-access revoke --partner acme-analytics --reason "contract ended"
  kernel-access revoke --account 333333333333 --reason "INC-1235: account compromised"
  kernel-access revoke --list --output json

The tables default to $KERNEL_ACCESS_REVOCATION_TABLE and $KERNEL_ACCESS_AUDIT_TABLE. Revocation
stops NEW credentials; to kill sessions already vended for a role, also run:
  kernel-access revoke-sessions --role NAME --reason "..."
"""

_UNREVOKE_EPILOG = """\
examples:
  kernel-access unrevoke --caller arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci-42 \\
      --reason "INC-1234 closed: keys rotated"
  kernel-access unrevoke --account 333333333333 --reason "INC-1235 closed"
  kernel-access unrevoke --partner acme-analytics --reason "contract renewed" \\
      --table kernel-access-revocation --audit-table kernel-access-audit

Lifting a revocation is recorded in the audit table in the same transaction (required).
"""

_SESSIONS_EPILOG = """\
examples:
  kernel-access revoke-sessions --role kernel-deployer --reason "INC-1234: deployer key leaked"
  kernel-access revoke-sessions --role kernel-reader --reason "drill" --dry-run --output json

Puts the inline policy AWSRevokeOlderSessions on the role: Deny * on * when aws:TokenIssueTime is
before now. Every session issued before that instant stops working (new ones are unaffected).
NAME is the role name callers request; it is mapped to the IAM role through
$KERNEL_ACCESS_TARGET_ROLES when that is set (deployments with a name suffix), else used as is.
"""


CALLER_REVOCATION_NOTE: Final = (
    "kernel-access: note: this stops that one session ARN only; the partner behind it can assume "
    "the role again under another session name. To stop the partner use --partner NAME or "
    "--account ID."
)


def _add_common(parser: argparse.ArgumentParser, *, table: bool = True) -> None:
    if table:
        parser.add_argument(
            "--table",
            default=os.environ.get(settings.REVOCATION_TABLE_NAME),
            help=f"revocation table name (default: ${settings.REVOCATION_TABLE_NAME})",
        )
    parser.add_argument(
        "--audit-table",
        default=os.environ.get(settings.AUDIT_TABLE_NAME),
        help=f"audit table that records the change (default: ${settings.AUDIT_TABLE_NAME})",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: from the AWS config)")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")


def _add_subject(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--caller",
        metavar="ARN",
        help="one session ARN as the vending API sees it (not the partner behind it)",
    )
    group.add_argument("--partner", metavar="NAME", help="partner name from the policy's partners map")
    group.add_argument(
        "--account", metavar="ID", help="the partner's AWS account id: every partner bound to it is refused"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    revoke = subparsers.add_parser(
        "revoke",
        help="refuse a caller or partner from now on (SESSION_REVOKED)",
        description=(
            "Mark a partner, a partner's account or one caller session ARN revoked; vending refuses "
            "them from the next request. --caller stops that session ARN only: the partner can assume "
            "the role again under another session name (use --partner or --account to stop it)."
        ),
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
        description="Remove a caller, partner or account from the revocation table.",
        epilog=_UNREVOKE_EPILOG,
        formatter_class=formatter,
    )
    _add_subject(unrevoke, required=True)
    unrevoke.add_argument("--reason", required=True, help="why access is restored (recorded)")
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
    sessions.add_argument("--reason", required=True, help="why (recorded with your identity)")
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


@dataclass(frozen=True)
class Operator:
    """Who runs the command, as AWS says (never typed in)."""

    arn: str
    account: str | None


def _operator(args: argparse.Namespace) -> Operator:
    identity = _session(args.region).client("sts").get_caller_identity()
    return Operator(arn=identity["Arn"], account=identity.get("Account"))


def _audit_log(args: argparse.Namespace) -> AuditLog | None:
    from kernel_access.audit import DEFAULT_RETENTION_DAYS, AuditLog

    if not args.audit_table:
        return None
    raw_days = os.environ.get(settings.AUDIT_RETENTION_DAYS, "")
    days = int(raw_days) if raw_days.isdigit() and int(raw_days) > 0 else DEFAULT_RETENTION_DAYS
    client = _session(args.region).client("dynamodb")
    return AuditLog(args.audit_table, lambda: client, retention_days=days)


def operator_record(
    command: str,
    operator: Operator,
    *,
    subject: str,
    reason: str,
    at: datetime | None = None,
    target_role: str | None = None,
) -> AuditRecord:
    """The audit record of one operator change (route ``CLI <command>``, caller = the operator)."""
    from kernel_access.audit import AuditRecord

    return AuditRecord(
        request_id=f"cli-{uuid.uuid4().hex}",
        route=f"CLI {command}",
        decision="allow",
        recorded_at=at or datetime.now(UTC),
        reason=reason,
        caller_arn=operator.arn,
        caller_account=operator.account,
        revocation_subject=subject,
        target_role=target_role,
    )


def _record_after_change(audit: AuditLog | None, record: AuditRecord, done: str) -> int:
    """Record a change already made; a failure is reported (exit 1) but never undoes the change."""
    if audit is None:
        print(
            f"kernel-access: warning: no audit table (--audit-table or ${settings.AUDIT_TABLE_NAME}); "
            f"{done} is not recorded there",
            file=sys.stderr,
        )
        return EXIT_OK
    from kernel_access.audit import AuditWriteError

    try:
        audit.write(record)
    except AuditWriteError as exc:
        return _fail(f"{done} IS IN FORCE, but its audit record could not be written ({exc})")
    return EXIT_OK


def _subject(args: argparse.Namespace) -> str:
    from kernel_access.revocation import account_subject, caller_subject, partner_subject
    from kernel_access.validation import require_account_id, require_partner_name

    if args.caller is not None:
        if not PRINCIPAL_ARN_RE.fullmatch(args.caller):
            raise ValueError("--caller must be an IAM or STS ARN")
        return caller_subject(args.caller)
    if args.account is not None:
        return account_subject(require_account_id(args.account, "--account"))
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
        if args.caller is None and args.partner is None and args.account is None:
            return _fail("one of --caller, --partner or --account is required (or --list)")
        reason = _reason(args)
        subject = _subject(args)
        audit = _audit_log(args)
        operator = _operator(args)
        revocation = store.revoke(subject, reason=reason, revoked_by=operator.arn)
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    _emit(
        args,
        vars(revocation) | {"kind": revocation.kind},
        f"revoked {revocation.subject} at {revocation.revoked_at} by {revocation.revoked_by}",
    )
    if args.caller is not None:
        print(CALLER_REVOCATION_NOTE, file=sys.stderr)
    record = operator_record("revoke", operator, subject=subject, reason=reason)
    return _record_after_change(audit, record, f"the revocation of {subject}")


def _reason(args: argparse.Namespace) -> str:
    if not args.reason or not args.reason.strip():
        raise ValueError("--reason is required: say why, it is recorded")
    return str(args.reason).strip()[:1024]


def _unrevoke(args: argparse.Namespace) -> int:
    try:
        reason = _reason(args)
        store = _store(args)
        subject = _subject(args)
        audit = _audit_log(args)
        if audit is None:
            raise ValueError(
                f"no audit table: pass --audit-table or set ${settings.AUDIT_TABLE_NAME} "
                "(lifting a revocation is always recorded)"
            )
        record = operator_record("unrevoke", _operator(args), subject=subject, reason=reason)
        existed = store.unrevoke(subject, audit_put=audit.transact_put(record))
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    data: dict[str, Any] = {"subject": subject, "removed": existed}
    if existed:
        data["audit_request_id"] = record.request_id
    _emit(args, data, f"unrevoked {subject}" if existed else f"{subject} was not revoked; nothing changed")
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


def iam_role_name(role: str, environ: dict[str, str] | None = None) -> str:
    """The IAM role behind a target role name: via ``$KERNEL_ACCESS_TARGET_ROLES`` (the mapping
    the vending Lambda uses, which includes any deployment name suffix) when it names the role,
    else the name itself."""
    raw = (os.environ if environ is None else environ).get(settings.TARGET_ROLES)
    if not raw:
        return role
    try:
        mapping = json.loads(raw)
    except ValueError:
        raise ValueError(f"${settings.TARGET_ROLES} is not a JSON object") from None
    if not isinstance(mapping, dict):
        raise ValueError(f"${settings.TARGET_ROLES} is not a JSON object")
    arn = mapping.get(role)
    if arn is None:
        return role
    if not isinstance(arn, str) or ":role/" not in arn:
        raise ValueError(f"${settings.TARGET_ROLES}: {role!r} does not map to a role ARN")
    return arn.rsplit("/", 1)[-1]


def _revoke_sessions(args: argparse.Namespace) -> int:
    from kernel_access.validation import ValidationError, require_role_name

    try:
        reason = _reason(args)
        role = require_role_name(iam_role_name(require_role_name(args.role, "--role")), "--role")
    except (ValidationError, ValueError) as exc:
        return _fail(str(exc))
    at = datetime.now(UTC).replace(microsecond=0)
    policy = revoke_older_sessions_policy(at)
    data = {
        "role": role,
        "requested_role": args.role,
        "policy_name": REVOKE_POLICY_NAME,
        "policy": policy,
        "applied": not args.dry_run,
        "reason": reason,
    }
    issued = policy["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    if args.dry_run:
        _emit(
            args,
            data,
            f"would deny every session of role {role} issued before {issued} ({REVOKE_POLICY_NAME})",
        )
        return EXIT_OK
    try:
        audit = _audit_log(args)
        operator = _operator(args)
        _session(args.region).client("iam").put_role_policy(
            RoleName=role, PolicyName=REVOKE_POLICY_NAME, PolicyDocument=json.dumps(policy)
        )
    except Exception as exc:
        return _fail(_aws_error(exc))
    data["revoked_by"] = operator.arn
    _emit(args, data, f"denied every session of role {role} issued before {issued} ({REVOKE_POLICY_NAME})")
    record = operator_record(
        "revoke-sessions", operator, subject=f"role#{role}", reason=reason, at=at, target_role=args.role
    )
    return _record_after_change(audit, record, f"the session cut-off of role {role}")
