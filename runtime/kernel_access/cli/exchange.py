"""``kernel-access exchange list|revoke``: what the OIDC token exchange has issued, and revoking it.

- ``list [--active]`` shows every tracked issued token (fingerprint, kind, subject, target, policy,
  expiry, revocation) from the issued-tokens table.
- ``revoke FINGERPRINT --reason TEXT`` marks one revoked, recording who (the operator's STS caller
  identity, taken from AWS) and why. What that does and does not do is printed every time:
  STS credentials stay valid at AWS until they expire unless the role denies them — the command
  prints the exact deny statement (``aws:SourceIdentity`` + ``aws:TokenIssueTime``) to attach, or
  use ``kernel-access revoke-sessions --role NAME --reason WHY`` to cut off every older session of the role;
  CodeArtifact tokens cannot be revoked before they expire at all.

Exit codes: 0 done, 1 AWS or input error (unknown fingerprint included), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Final

from kernel_access import settings

if TYPE_CHECKING:
    from kernel_access.exchange.issued import IssuedToken, IssuedTokenStore

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
FINGERPRINT_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")

_EPILOG = """\
examples:
  kernel-access exchange list --active --table kernel-access-issued-tokens
  kernel-access exchange revoke sha256:3f1c... --reason "INC-1234: token printed in a CI log"

The table defaults to $KERNEL_ACCESS_ISSUED_TOKENS_TABLE. A fingerprint is "sha256:" + the hex
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

    listing = sub.add_parser("list", help="list issued tokens", formatter_class=formatter)
    listing.add_argument("--active", action="store_true", help="only unexpired, unrevoked tokens")
    _add_common(listing)
    listing.set_defaults(func=_list)

    revoke = sub.add_parser(
        "revoke",
        help="mark an issued token revoked and print what else to do",
        formatter_class=formatter,
    )
    revoke.add_argument("fingerprint", metavar="FINGERPRINT", help="sha256:<64 hex> as `list` shows it")
    revoke.add_argument("--reason", required=True, help="why (recorded with your identity)")
    _add_common(revoke)
    revoke.set_defaults(func=_revoke)


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


def _revoke(args: argparse.Namespace) -> int:
    from kernel_access.exchange.issued import IssuedTokenNotFound, revocation_advice

    if not FINGERPRINT_RE.match(args.fingerprint):
        return _fail("FINGERPRINT must be sha256:<64 lower-case hex digits>")
    reason = (args.reason or "").strip()
    if not reason:
        return _fail("--reason is required: say why, it is recorded")
    try:
        store = _store(args)
        operator = _session(args.region).client("sts").get_caller_identity()["Arn"]
        token = store.revoke(args.fingerprint, reason=reason[:1024], revoked_by=operator)
    except IssuedTokenNotFound:
        return _fail(f"no issued token with fingerprint {args.fingerprint}")
    except ValueError as exc:
        return _fail(str(exc))
    except Exception as exc:
        return _fail(_aws_error(exc))
    advice = revocation_advice(token)
    if args.output == "json":
        print(json.dumps({"revoked": _as_dict(token), "advice": advice}, indent=2, sort_keys=True))
    else:
        print(f"revoked {token.fingerprint} at {_as_dict(token)['revoked_at']} by {token.revoked_by}")
        print(advice)
    return EXIT_OK
