"""``kernel-access audit query`` / ``audit trace``: ask the audit trail a question.

For security teams and on-call operators. Every question is answered from the table's key or one of
its indexes, never by reading the whole table (a 400-day trail of 5,000 partners is large and a
scan is billed for every item it reads). The lookup key is chosen in this order:

1. ``--request-id`` -> the table's partition key (``request_id``);
2. ``--access-key-id`` -> the sparse ``by-access-key`` index (what CloudTrail events name);
3. ``--caller`` -> the ``by-caller`` index;
4. ``--partner`` -> the ``by-partner`` index.

Every index is sorted by ``recorded_at``, so ``--since``/``--until`` narrow the key condition (DynamoDB
reads only that range). The table itself is keyed by the request id alone (one record per request, no
sort key), so with ``--request-id`` the time range filters the one item the key reads.
``--target-role``, ``--error-code`` and ``--decision`` (and any lookup key not used as the key)
filter the items read. Asked without any of the four keys, the command refuses
unless ``--scan`` is given. There is no index on the error code or the target role on purpose: a
handful of values would concentrate every audit write on a few index partitions, and a throttled
index write throttles the table write, which (audit being fail-closed) refuses the request.

``audit trace ACCESS_KEY_ID`` answers "which partner and which request received this key" in one
command.

Output: a table for people, ``--output json`` for scripts (one JSON array of records). Results are
read page by page (``--page-size`` items per DynamoDB request); when a query needs more than one
page, a progress line goes to stderr. Exit codes: 0 found, 1 nothing found / AWS or input error,
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TextIO

from kernel_access import settings
from kernel_access.audit import (
    BY_ACCESS_KEY_INDEX,
    BY_CALLER_INDEX,
    BY_PARTNER_INDEX,
    INDEX_KEYS,
    format_recorded_at,
)
from kernel_access.contract import ErrorCode
from kernel_access.validation import ACCESS_KEY_ID_RE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
DEFAULT_LIMIT: Final = 100
DEFAULT_PAGE_SIZE: Final = 500
#: Access key ids are 16-128 upper-case letters and digits (``AKIA``/``ASIA`` prefixes in AWS).
_RELATIVE_RE: Final = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
#: Columns of the table output, in order (the JSON output has every attribute).
COLUMNS: Final = (
    "recorded_at",
    "request_id",
    "decision",
    "error_code",
    "partner",
    "route",
    "target_role",
    "access_key_id",
    "caller_arn",
)

_QUERY_EPILOG = """\
examples:
  kernel-access audit query --request-id=Kzk1pjHXoAMEb5w=         # one request
  kernel-access audit query --access-key-id ASIA...              # from a CloudTrail event
  kernel-access audit query --partner payments --since 24h --decision deny
  kernel-access audit query --caller arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci \\
      --since 2026-11-30T00:00:00Z --until 2026-12-01T00:00:00Z --output json
  kernel-access audit query --error-code INTERNAL_ERROR --since 1h --scan   # no key: reads the table

Write --request-id=ID with "=": API Gateway request ids may start with "-". The table defaults to
$KERNEL_ACCESS_AUDIT_TABLE. --since/--until take an ISO 8601 UTC time
(2026-12-01T09:30:00Z, 2026-12-01) or an age (90s, 15m, 24h, 7d).
"""

_TRACE_EPILOG = """\
examples:
  kernel-access audit trace ASIAEXAMPLEKEY123456
  kernel-access audit trace ASIAEXAMPLEKEY123456 --output json

Prints the partner, caller, request id, target role and expiry of the request that received the key.
"""


class UsageError(ValueError):
    """Arguments that cannot form a query (exit 1 with the message)."""


@dataclass(frozen=True)
class AuditQuery:
    """What to look for. ``None`` means "any"."""

    request_id: str | None = None
    access_key_id: str | None = None
    caller: str | None = None
    partner: str | None = None
    target_role: str | None = None
    error_code: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class Plan:
    """The DynamoDB request (``Query`` or ``Scan``) that answers an :class:`AuditQuery`."""

    operation: str
    #: Request parameters without TableName, Limit and ExclusiveStartKey.
    params: dict[str, Any] = field(default_factory=dict)
    #: Human description of the key used (for the progress line and ``--explain``).
    key: str = ""


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (a ``Z`` or offset, or none = UTC; a bare date is midnight UTC) or an age like ``15m``."""
    text = value.strip()
    relative = _RELATIVE_RE.fullmatch(text)
    if relative:
        amount, unit = relative.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not a time: {value!r} (use 2026-12-01T09:30:00Z or an age like 24h)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def plan(query: AuditQuery, *, scan: bool = False) -> Plan:
    """The cheapest request for ``query``: the table key or an index, else a scan if allowed."""
    if query.access_key_id is not None and not ACCESS_KEY_ID_RE.fullmatch(query.access_key_id):
        raise UsageError(f"not an access key id: {query.access_key_id!r}")
    if query.error_code is not None and query.error_code not in ErrorCode.__members__:
        raise UsageError(f"unknown error code {query.error_code!r}; one of: {', '.join(ErrorCode)}")
    if query.since and query.until and query.since > query.until:
        raise UsageError("--since is after --until")
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def placeholder(attribute: str, value: str) -> tuple[str, str]:
        names[f"#{attribute}"] = attribute
        values[f":{attribute}"] = {"S": value}
        return f"#{attribute}", f":{attribute}"

    keys = (
        ("request_id", query.request_id, None),
        (INDEX_KEYS[BY_ACCESS_KEY_INDEX], query.access_key_id, BY_ACCESS_KEY_INDEX),
        (INDEX_KEYS[BY_CALLER_INDEX], query.caller, BY_CALLER_INDEX),
        (INDEX_KEYS[BY_PARTNER_INDEX], query.partner, BY_PARTNER_INDEX),
    )
    chosen = next(((attr, value, index) for attr, value, index in keys if value is not None), None)
    key_attribute = chosen[0] if chosen else None
    filters = [(attr, value) for attr, value, _ in keys if value is not None and attr != key_attribute]
    filters += [
        (attr, value)
        for attr, value in (
            ("target_role", query.target_role),
            ("error_code", query.error_code),
            ("decision", query.decision),
        )
        if value is not None
    ]
    time_condition = _time_condition(query, names, values)
    conditions = [f"{n} = {v}" for n, v in (placeholder(a, value) for a, value in filters)]
    if chosen is None:
        if not scan:
            raise UsageError(
                "give --request-id, --access-key-id, --caller or --partner (answered from an index), "
                "or --scan to read the whole table"
            )
        if time_condition:
            conditions.append(time_condition)
        params = _with_expressions({}, names, values, filter_parts=conditions)
        return Plan("scan", params, key="whole table (--scan)")
    attribute, value, index = chosen
    key_name, key_value = placeholder(attribute, value)
    key_condition = f"{key_name} = {key_value}"
    if time_condition and index is None:
        conditions.append(time_condition)  # the table has no sort key: a key condition on it is invalid
    elif time_condition:
        key_condition += f" AND {time_condition}"
    params = {"KeyConditionExpression": key_condition, "ScanIndexForward": False}
    if index is not None:
        params["IndexName"] = index
    params = _with_expressions(params, names, values, filter_parts=conditions)
    return Plan("query", params, key=f"{index or 'table'} {attribute} = {value}")


def _time_condition(query: AuditQuery, names: dict[str, str], values: dict[str, Any]) -> str:
    if query.since is None and query.until is None:
        return ""
    names["#recorded_at"] = "recorded_at"
    if query.since is not None:
        values[":since"] = {"S": format_recorded_at(query.since)}
    if query.until is not None:
        values[":until"] = {"S": format_recorded_at(query.until)}
    if query.since is not None and query.until is not None:
        return "#recorded_at BETWEEN :since AND :until"
    return "#recorded_at >= :since" if query.since is not None else "#recorded_at <= :until"


def _with_expressions(
    params: dict[str, Any], names: dict[str, str], values: dict[str, Any], *, filter_parts: Sequence[str]
) -> dict[str, Any]:
    if filter_parts:
        params["FilterExpression"] = " AND ".join(filter_parts)
    if names:
        params["ExpressionAttributeNames"] = names
    if values:
        params["ExpressionAttributeValues"] = values
    return params


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON values (numbers as int or float)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    record: dict[str, Any] = {}
    for name, value in sorted(item.items()):
        python = deserializer.deserialize(value)
        if isinstance(python, Decimal):
            python = int(python) if python == python.to_integral_value() else float(python)
        record[name] = python
    return record


@dataclass
class Progress:
    """Reports pages read on stderr once a query needs more than one page (a long query)."""

    stream: TextIO
    enabled: bool = True
    pages: int = 0
    read: int = 0
    matched: int = 0
    _shown: bool = False

    def page(self, read: int, matched: int, more: bool) -> None:
        self.pages += 1
        self.read += read
        self.matched += matched
        if not self.enabled or (self.pages == 1 and not more):
            return
        line = f"audit: page {self.pages}: {self.read} items read, {self.matched} matched"
        if self.stream.isatty():
            self.stream.write("\r" + line + ("" if more else "\n"))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True


def run(
    client: DynamoDBClient,
    table: str,
    query_plan: Plan,
    *,
    limit: int = DEFAULT_LIMIT,
    page_size: int = DEFAULT_PAGE_SIZE,
    progress: Progress | None = None,
) -> Iterator[dict[str, Any]]:
    """Records matching the plan, newest first for index queries, at most ``limit`` (0 = all)."""
    call: Callable[..., Any] = client.query if query_plan.operation == "query" else client.scan
    params: dict[str, Any] = {"TableName": table, "Limit": page_size, **query_plan.params}
    returned = 0
    while True:
        page = call(**params)
        items = page.get("Items", [])
        more = "LastEvaluatedKey" in page
        if progress is not None:
            progress.page(page.get("ScannedCount", len(items)), len(items), more)
        for item in items:
            yield plain(item)
            returned += 1
            if limit and returned >= limit:
                return
        if not more:
            return
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def render_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    """Fixed-width columns, empty cells as ``-``; long caller ARNs are kept whole (last column)."""
    rows = [[str(r.get(c, "-")) for c in columns] for r in records]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    audit = subparsers.add_parser(
        "audit",
        help="query the audit trail (by request, caller, partner, access key, role, error, time)",
        description="Ask the kernel-access audit table a question, from its indexes.",
        formatter_class=formatter,
    )
    commands = audit.add_subparsers(title="audit commands", metavar="COMMAND")
    query = commands.add_parser(
        "query",
        help="records matching every given condition",
        description="Records matching every given condition, newest first.",
        epilog=_QUERY_EPILOG,
        formatter_class=formatter,
    )
    query.add_argument(
        "--request-id",
        metavar="ID",
        help="API Gateway request id, the error body's request_id (write --request-id=ID)",
    )
    query.add_argument("--access-key-id", metavar="KEY", help="access key id, e.g. from a CloudTrail event")
    query.add_argument("--caller", metavar="ARN", help="caller ARN as the vending API saw it")
    query.add_argument("--partner", metavar="NAME", help="partner name")
    query.add_argument("--target-role", metavar="NAME", help="target role requested (filter)")
    query.add_argument("--error-code", metavar="CODE", help="error code (filter), e.g. POLICY_DENY")
    query.add_argument("--decision", choices=("allow", "deny", "error"), help="decision (filter)")
    query.add_argument("--since", help="from this time (ISO 8601 UTC or an age: 15m, 24h, 7d)")
    query.add_argument("--until", help="up to this time (same forms)")
    query.add_argument(
        "--scan", action="store_true", help="allow reading the whole table when no key is given"
    )
    query.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"most records to print, 0 = all (default {DEFAULT_LIMIT})",
    )
    _add_common(query)
    query.set_defaults(func=_query)

    trace = commands.add_parser(
        "trace",
        help="which partner and which request received an access key id",
        description="Which partner, caller and request received ACCESS_KEY_ID.",
        epilog=_TRACE_EPILOG,
        formatter_class=formatter,
    )
    trace.add_argument("access_key_id", metavar="ACCESS_KEY_ID")
    _add_common(trace)
    trace.set_defaults(func=_trace)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        default=os.environ.get(settings.AUDIT_TABLE_NAME),
        help=f"audit table name (default: ${settings.AUDIT_TABLE_NAME})",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: from the AWS config)")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")
    parser.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        help=f"items per DynamoDB request (default {DEFAULT_PAGE_SIZE})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")


def _fail(message: str) -> int:
    print(f"kernel-access: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _client(region: str | None) -> DynamoDBClient:
    import boto3

    client: DynamoDBClient = boto3.session.Session(region_name=region).client("dynamodb")
    return client


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _aws_error(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _checked_common(args: argparse.Namespace) -> str | None:
    if not args.table:
        return f"no audit table: pass --table or set ${settings.AUDIT_TABLE_NAME}"
    if not 1 <= args.page_size <= 1000:
        return "--page-size must be 1..1000"
    return None


def _execute(args: argparse.Namespace, query_plan: Plan, limit: int) -> list[dict[str, Any]]:
    progress = Progress(sys.stderr, enabled=not args.quiet)
    return list(
        run(
            _client(args.region),
            args.table,
            query_plan,
            limit=limit,
            page_size=args.page_size,
            progress=progress,
        )
    )


def _query(args: argparse.Namespace) -> int:
    problem = _checked_common(args)
    if problem:
        return _fail(problem)
    if args.limit < 0:
        return _fail("--limit must be 0 (all) or more")
    try:
        query = AuditQuery(
            request_id=args.request_id,
            access_key_id=args.access_key_id,
            caller=args.caller,
            partner=args.partner,
            target_role=args.target_role,
            error_code=args.error_code,
            decision=args.decision,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
        query_plan = plan(query, scan=args.scan)
    except UsageError as error:
        return _fail(str(error))
    try:
        records = _execute(args, query_plan, args.limit)
    except _aws_errors() as exc:  # AWS errors become one line; anything else is a bug and raises
        return _fail(_aws_error(exc))
    if args.output == "json":
        print(json.dumps(records, indent=2, sort_keys=True))
    elif records:
        print(render_table(records))
    else:
        print("no matching audit records", file=sys.stderr)
    if args.limit and len(records) == args.limit and not args.quiet:
        print(f"audit: stopped at --limit {args.limit}; pass --limit 0 for all", file=sys.stderr)
    return EXIT_OK if records else EXIT_ERROR


def trace_summary(records: Sequence[Mapping[str, Any]], access_key_id: str) -> str:
    """The sentence-per-record answer of ``audit trace``."""
    lines = []
    for r in records:
        lines.append(
            f"{access_key_id} was issued to partner {r.get('partner', '-')} by request {r.get('request_id')} "
            f"at {r.get('recorded_at')}"
        )
        for label, name in (
            ("caller", "caller_arn"),
            ("route", "route"),
            ("target role", "target_role"),
            ("session name", "session_name"),
            ("source identity", "source_identity"),
            ("rule", "rule_id"),
            ("expires", "expiration"),
        ):
            if r.get(name) is not None:
                lines.append(f"  {label + ':':<17}{r[name]}")
    return "\n".join(lines)


def _trace(args: argparse.Namespace) -> int:
    problem = _checked_common(args)
    if problem:
        return _fail(problem)
    try:
        query_plan = plan(AuditQuery(access_key_id=args.access_key_id))
    except UsageError as error:
        return _fail(str(error))
    try:
        records = _execute(args, query_plan, 0)
    except _aws_errors() as exc:
        return _fail(_aws_error(exc))
    if not records:
        return _fail(
            f"no audit record holds {args.access_key_id}: kernel-access did not issue it, or its record "
            "has expired (audit retention)"
        )
    if args.output == "json":
        print(json.dumps(records, indent=2, sort_keys=True))
    else:
        print(trace_summary(records, args.access_key_id))
    return EXIT_OK
