"""``kernel-access exchange list|revoke``: what the OIDC token exchange has issued, and revoking it.

- ``list [--active]`` shows every tracked issued token (fingerprint, kind, subject, target, policy,
  expiry, revocation) from the issued-tokens table.
- ``revoke`` takes effect at once, in three forms:

  - ``revoke FINGERPRINT`` — one issued token (as ``list`` shows it);
  - ``revoke --issuer NAME --subject SUB`` — an OIDC subject: the exchange refuses it from the next
    request (SESSION_REVOKED; an entry in the revocation table) and every unexpired token issued
    to it is revoked as well;
  - ``revoke --oidc-token FINGERPRINT`` — a presented OIDC token (``sha256`` of the JWT, as the
    audit record's ``presented_token_fingerprint``): the exchange refuses it, and what it was
    already exchanged for is revoked.

  Revoked AWS sessions are cut off by a deny on their target role keyed on the session tag
  ``exchanged-token`` (:mod:`kernel_access.exchange.cutoff`); CodeArtifact tokens cannot be
  revoked before they expire (the command says so). Who (the operator's STS caller identity,
  taken from AWS) and why (``--reason``) are recorded on every item, and in the audit table when
  one is given. The change is made first and recorded after: a revocation is never blocked by
  the audit table. Re-running a revoke is safe and re-applies the deny statements.

Exit codes: 0 done, 1 AWS or input error (unknown fingerprint included), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from kernel_access import settings

if TYPE_CHECKING:
    from kernel_access.exchange.cutoff import CutoffResult
    from kernel_access.exchange.issued import IssuedToken, IssuedTokenStore

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
FINGERPRINT_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")

_EPILOG = """\
examples:
  kernel-access exchange list --active --table kernel-access-issued-tokens
  kernel-access exchange revoke sha256:3f1c... --reason "INC-1234: token printed in a CI log"
  kernel-access exchange revoke --issuer github --subject repo:acme/app:ref:refs/heads/main \\
      --reason "INC-1235: repository compromised"
  kernel-access exchange revoke --oidc-token sha256:9ab2... --reason "INC-1236: JWT in a log"

The tables default to $KERNEL_ACCESS_ISSUED_TOKENS_TABLE, $KERNEL_ACCESS_REVOCATION_TABLE and
$KERNEL_ACCESS_AUDIT_TABLE. A fingerprint is "sha256:" + the hex
SHA-256 of the issued secret (the STS SessionToken or the CodeArtifact token): compute it from a
leaked token with  printf %s "$TOKEN" | sha256sum
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    exchange = subparsers.add_parser(
        "exchange",
        help="list or revoke tokens issued by the OIDC token exchange",
        description="Inspect and revoke what the OIDC token exchange has issued.",
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    sub = exchange.add_subparsers(title="actions", metavar="ACTION", required=True)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of exchange configuration documents",
        description="Print the JSON Schema (draft 2020-12) of exchange configuration documents, "
        "generated from the parser's own field definitions (shipped as "
        "kernel_access/schemas/exchange.schema.json).",
        formatter_class=formatter,
    )
    schema.set_defaults(func=_schema)

    listing = sub.add_parser("list", help="list issued tokens", formatter_class=formatter)
    listing.add_argument("--active", action="store_true", help="only unexpired, unrevoked tokens")
    _add_common(listing)
    listing.set_defaults(func=_list)

    revoke = sub.add_parser(
        "revoke",
        help="revoke an issued token, an OIDC subject or an OIDC token, and cut off its sessions",
        formatter_class=formatter,
        epilog=_EPILOG,
    )
    revoke.add_argument(
        "fingerprint",
        metavar="FINGERPRINT",
        nargs="?",
        help="an issued token: sha256:<64 hex> as `list` shows it",
    )
    revoke.add_argument(
        "--issuer", metavar="NAME", help="with --subject: the issuer name (route /exchange/NAME)"
    )
    revoke.add_argument("--subject", metavar="SUB", help="an OIDC subject (the token's sub claim)")
    revoke.add_argument(
        "--oidc-token", metavar="FINGERPRINT", help="a presented OIDC token: sha256:<64 hex> of the JWT"
    )
    revoke.add_argument("--reason", required=True, help="why (recorded with your identity)")
    revoke.add_argument(
        "--revocation-table",
        default=os.environ.get(settings.REVOCATION_TABLE_NAME),
        help=f"revocation table the exchange reads (default: ${settings.REVOCATION_TABLE_NAME})",
    )
    revoke.add_argument(
        "--audit-table",
        default=os.environ.get(settings.AUDIT_TABLE_NAME),
        help=f"audit table that records the change (default: ${settings.AUDIT_TABLE_NAME})",
    )
    _add_common(revoke)
    revoke.set_defaults(func=_revoke)


def _schema(_args: argparse.Namespace) -> int:
    from kernel_access.cli.policy import print_schema

    return print_schema("exchange")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        default=os.environ.get(settings.ISSUED_TOKENS_TABLE_NAME),
        help=f"issued-tokens table name (default: ${settings.ISSUED_TOKENS_TABLE_NAME})",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: from the AWS config)")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format")


def _fail(message: str) -> int:
    print(f"kernel-access: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _session(region: str | None) -> Any:
    import boto3

    return boto3.session.Session(region_name=region)


def _store(args: argparse.Namespace) -> IssuedTokenStore:
    from kernel_access.exchange.issued import IssuedTokenStore

    if not args.table:
        raise ValueError(f"no issued-tokens table: pass --table or set ${settings.ISSUED_TOKENS_TABLE_NAME}")
    client = _session(args.region).client("dynamodb")
    return IssuedTokenStore(args.table, lambda: client)


def _as_dict(token: IssuedToken) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None

    return {
        "fingerprint": token.fingerprint,
        "kind": token.kind,
        "issuer": token.issuer,
        "subject": token.subject,
        "target": token.target,
        "policy": token.policy,
        "permissions": list(token.permissions),
        "issued_at": iso(token.issued_at),
        "expires_at": iso(token.expires_at),
        "request_id": token.request_id,
        "access_key_id": token.access_key_id,
        "source_identity": token.source_identity,
        "role_arn": token.role_arn,
        "presented_token_fingerprint": token.presented_token_fingerprint,
        "revoked_at": iso(token.revoked_at),
        "revoked_by": token.revoked_by,
        "revoked_reason": token.revoked_reason,
    }


def _aws_error(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _list(args: argparse.Namespace) -> int:
    try:
        tokens = _store(args).list(active_only=args.active)
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    rows = [_as_dict(token) for token in tokens]
    if args.output == "json":
        print(json.dumps(rows, indent=2, sort_keys=True))
        return EXIT_OK
    if not rows:
        print("no issued tokens" + (" active" if args.active else ""))
        return EXIT_OK
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else f"expires {row['expires_at']}"
        print(
            f"{row['fingerprint']}\t{row['kind']}\t{row['issuer']}:{row['subject']}\t"
            f"{row['target']}/{row['policy']}\t{state}"
        )
    return EXIT_OK


@dataclass(frozen=True)
class _Target:
    """What one ``revoke`` invocation revokes."""

    kind: str  # "issued" | "subject" | "oidc-token"
    value: str
    issuer: str | None = None
    revocation_key: str | None = None


def _target(args: argparse.Namespace) -> _Target:
    from kernel_access.exchange.config import ISSUER_NAME_RE
    from kernel_access.exchange.service import subject_revocation
    from kernel_access.revocation import token_subject

    given = [name for name in ("fingerprint", "subject", "oidc_token") if getattr(args, name)]
    if len(given) != 1:
        raise ValueError("give exactly one of FINGERPRINT, --subject (with --issuer) or --oidc-token")
    if args.fingerprint:
        if not FINGERPRINT_RE.fullmatch(args.fingerprint):
            raise ValueError("FINGERPRINT must be sha256:<64 lower-case hex digits>")
        return _Target("issued", args.fingerprint)
    if args.oidc_token:
        if not FINGERPRINT_RE.fullmatch(args.oidc_token):
            raise ValueError("--oidc-token must be sha256:<64 lower-case hex digits>")
        return _Target("oidc-token", args.oidc_token, revocation_key=token_subject(args.oidc_token))
    if not args.issuer or not ISSUER_NAME_RE.fullmatch(args.issuer):
        raise ValueError("--subject needs --issuer NAME (the issuer's route name, e.g. github)")
    subject = str(args.subject)
    if not subject.strip() or len(subject) > 4096:
        raise ValueError("--subject must be a non-empty OIDC sub claim")
    return _Target("subject", subject, args.issuer, subject_revocation(args.issuer, subject))


def _affected(target: _Target, tokens: list[IssuedToken], now: datetime) -> list[IssuedToken]:
    if target.kind == "issued":
        return [t for t in tokens if t.fingerprint == target.value]
    if target.kind == "subject":
        return [
            t
            for t in tokens
            if t.issuer == target.issuer and t.subject == target.value and t.expires_at > now
        ]
    return [t for t in tokens if t.presented_token_fingerprint == target.value and t.expires_at > now]


def _revoke(args: argparse.Namespace) -> int:
    from kernel_access.cli.revoke import Operator, _record_after_change, operator_record
    from kernel_access.exchange.cutoff import apply_cutoff, revoked_sessions_by_role
    from kernel_access.exchange.issued import IssuedTokenNotFound, revocation_advice
    from kernel_access.revocation import RevocationStore

    reason = (args.reason or "").strip()[:1024]
    now = datetime.now(UTC)
    try:
        if not reason:
            raise ValueError("--reason is required: say why, it is recorded")
        target = _target(args)
        if target.revocation_key and not args.revocation_table:
            raise ValueError(
                f"no revocation table: pass --revocation-table or set ${settings.REVOCATION_TABLE_NAME}"
            )
        store = _store(args)
        session = _session(args.region)
        identity = session.client("sts").get_caller_identity()
        operator = Operator(arn=identity["Arn"], account=identity.get("Account"))
        # 1. Refuse new exchanges (subject / OIDC token).
        if target.revocation_key:
            client = session.client("dynamodb")
            RevocationStore(args.revocation_table, lambda: client).revoke(
                target.revocation_key, reason=reason, revoked_by=operator.arn
            )
        # 2. Mark what was already issued.
        affected = _affected(target, list(store.scan()), now)
        if target.kind == "issued" and not affected:
            raise IssuedTokenNotFound(target.value)
        revoked = [
            store.revoke(t.fingerprint, reason=reason, revoked_by=operator.arn, now=now) for t in affected
        ]
    except IssuedTokenNotFound:
        return _fail(f"no issued token with fingerprint {args.fingerprint}")
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    # 3. Cut off the AWS sessions: rebuild each affected role's deny from the table.
    roles = sorted({t.role_arn for t in revoked if t.kind == "aws_credentials" and t.role_arn})
    cutoffs: list[CutoffResult] = []
    try:
        by_role = revoked_sessions_by_role(store.scan(), now) if roles else {}
        iam = session.client("iam") if roles else None
        for role in roles:
            cutoffs.append(apply_cutoff(iam, role, by_role.get(role, ()), now=now))
    except Exception as exc:
        done = ", ".join(c.role_name for c in cutoffs) or "none"
        return _fail(
            f"{len(revoked)} token(s) are marked revoked, but their sessions are NOT cut off: the deny "
            f"could not be applied ({_aws_error(exc)}; roles done: {done}). Fix the cause and run the "
            "same command again."
        )
    notes = [revocation_advice(t, now=now) for t in revoked if not _cut_off(t, cutoffs)]
    _print_revocation(args, target, revoked, cutoffs, notes)
    subject = target.revocation_key or f"issued#{target.value}"
    audit = _audit_log(args)
    record = operator_record("exchange revoke", operator, subject=subject, reason=reason, at=now)
    return _record_after_change(audit, record, f"the revocation of {subject}")


def _cut_off(token: IssuedToken, cutoffs: list[CutoffResult]) -> bool:
    return any(
        c.role_arn == token.role_arn and token.presented_token_fingerprint in c.denied for c in cutoffs
    )


def _audit_log(args: argparse.Namespace) -> Any:
    from kernel_access.audit import AuditLog

    if not args.audit_table:
        return None
    client = _session(args.region).client("dynamodb")
    return AuditLog(args.audit_table, lambda: client)


def _print_revocation(
    args: argparse.Namespace,
    target: _Target,
    revoked: list[IssuedToken],
    cutoffs: list[CutoffResult],
    notes: list[str],
) -> None:
    if args.output == "json":
        data = {
            "revoked": [_as_dict(t) for t in revoked],
            "refused_from_now": target.revocation_key,
            "cutoffs": [
                {
                    "role_arn": c.role_arn,
                    "action": c.action,
                    "policy_name": c.policy_name,
                    "policy": c.policy,
                }
                for c in cutoffs
            ],
            "advice": "\n\n".join(notes),
        }
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    if target.revocation_key:
        print(f"the exchange refuses {target.revocation_key} from now on")
    for token in revoked:
        print(f"revoked {token.fingerprint} at {_as_dict(token)['revoked_at']} by {token.revoked_by}")
    for cutoff in cutoffs:
        if cutoff.action == "applied":
            print(
                f"role {cutoff.role_name}: {cutoff.policy_name} denies {len(cutoff.denied)} revoked "
                "session(s) by their exchanged-token tag"
            )
        elif cutoff.action == "role-wide":
            print(
                f"role {cutoff.role_name}: too many revoked sessions for one policy; {cutoff.policy_name} "
                "now denies EVERY session of the role issued before now"
            )
    for note in notes:
        print(note)
