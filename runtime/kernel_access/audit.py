"""Fail-closed audit records: one DynamoDB item per decision, written before the response.

Like Vault ("will not respond to requests when no enabled audit devices can record them"), a
decision whose record cannot be written is not served: :meth:`AuditLog.write` raises
:class:`AuditWriteError` and the caller gets INTERNAL_ERROR and no credential.

What a record may hold is fixed by :class:`AuditRecord`: there is no field for a secret access key,
a session token or a bearer token. Tokens are recorded as a fingerprint (HMAC-SHA256 with a key
from SSM when configured, else SHA-256), which lets an operator match a leaked token to its record
without the record ever being able to authenticate anything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Decision = Literal["allow", "deny", "error"]

#: Format of ``recorded_at`` (the table's sort key): ISO-8601 UTC with microseconds.
RECORDED_AT_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
#: The audit table's whole key: one record per request id (a replayed id fails the write).
RECORD_KEY: Final = "request_id"
#: Makes every write a first write: the same request id is never recorded twice.
_FIRST_WRITE: Final = f"attribute_not_exists({RECORD_KEY})"
DEFAULT_RETENTION_DAYS: Final = 400
#: Global secondary indexes of the audit table, each sorted by ``recorded_at`` (the ``AuditTable``
#: construct creates them by these names; ``kernel-access audit`` answers its questions from them).
BY_CALLER_INDEX: Final = "by-caller"
BY_ACCESS_KEY_INDEX: Final = "by-access-key"
BY_PARTNER_INDEX: Final = "by-partner"
#: Each index's partition key, a field of :class:`AuditRecord` (in the order the table declares them).
INDEX_KEYS: Final[dict[str, str]] = {
    BY_CALLER_INDEX: "caller_arn",
    BY_ACCESS_KEY_INDEX: "access_key_id",
    BY_PARTNER_INDEX: "partner",
}
#: Sort key of every index (the table itself has none: its key is the request id alone).
INDEX_SORT_KEY: Final = "recorded_at"


class AuditWriteError(Exception):
    """The record could not be written durably; the decision must not be served."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_recorded_at(at: datetime) -> str:
    return at.astimezone(UTC).strftime(RECORDED_AT_FORMAT)


def token_fingerprint(token: str, key: bytes | None = None) -> str:
    """A one-way fingerprint of a bearer token, prefixed with the algorithm used.

    With a key it is HMAC-SHA256 (someone holding the audit table cannot confirm a guessed token);
    without one, plain SHA-256 (still never reversible to the token).
    """
    data = token.encode("utf-8")
    if key:
        return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FingerprintKeyUnavailable(Exception):
    """An HMAC key is configured but could not be read: nothing may be fingerprinted (or served)."""


class TokenFingerprinter:
    """The fingerprint every audit record uses, in the vending API and the exchange alike.

    Holds the deployment's audit HMAC key (loaded once, on first use, by ``key_loader``; ``None``
    from the loader means no key is configured: plain SHA-256). A key that is configured but cannot
    be read raises :class:`FingerprintKeyUnavailable` on every call rather than silently falling
    back to the weaker unkeyed fingerprint: callers refuse the request (fail closed).
    """

    def __init__(self, key_loader: Callable[[], bytes | None] | None = None) -> None:
        self._key_loader = key_loader or (lambda: None)
        self._key: bytes | None = None
        self._loaded = False

    def require_key(self) -> None:
        """Load the key now (once per container), raising :class:`FingerprintKeyUnavailable` if a
        configured key cannot be read: a caller that fingerprints only after it acts (the exchange
        fingerprints the credential it minted) checks first, so it refuses before it acts."""
        if not self._loaded:
            try:
                self._key = self._key_loader()
            except Exception as exc:
                raise FingerprintKeyUnavailable(type(exc).__name__) from None
            self._loaded = True

    def __call__(self, token: str) -> str:
        self.require_key()
        return token_fingerprint(token, self._key)


def ssm_key_loader(parameter_name: str | None, ssm: Callable[[], Any]) -> Callable[[], bytes | None]:
    """A key loader reading the SecureString ``parameter_name`` (``None``: no key configured)."""

    def load() -> bytes | None:
        if not parameter_name:
            return None
        response = ssm().get_parameter(Name=parameter_name, WithDecryption=True)
        value: str = response["Parameter"]["Value"]
        return value.encode("utf-8")

    return load


@dataclass
class AuditRecord:
    """Everything one decision leaves behind. Every field is optional except the first four.

    ``access_key_id`` is set only when credentials were vended (it is the key of the sparse
    ``by-access-key`` index, which CloudTrail events correlate on).
    """

    request_id: str
    route: str
    decision: Decision
    recorded_at: datetime = field(default_factory=utc_now)
    error_code: str | None = None
    rule_id: str | None = None
    reason: str | None = None
    caller_arn: str | None = None
    caller_account: str | None = None
    caller_org: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    partner: str | None = None
    target_role: str | None = None
    session_name: str | None = None
    source_identity: str | None = None
    access_key_id: str | None = None
    expiration: str | None = None
    duration: int | None = None
    latency_ms: float | None = None
    token_fingerprint: str | None = None
    codeartifact_domain: str | None = None
    codeartifact_repository: str | None = None
    codeartifact_access: str | None = None
    policy_version: str | None = None
    #: Operator records (``kernel-access revoke`` & co.): what was acted on — ``caller#<arn>``,
    #: ``partner#<name>``, ``account#<id>`` or ``role#<iam-role-name>``.
    revocation_subject: str | None = None
    #: RATE_LIMITED records: how many requests of that budget were refused so far in the window
    #: (only sampled refusals are written, see ``kernel_access.ratelimit``).
    refusals: int | None = None

    def to_item(self, *, retention_days: int) -> dict[str, Any]:
        """The DynamoDB item (low-level attribute values). Empty values are left out: GSI keys must
        not be empty strings, and an absent attribute keeps the ``by-access-key`` index sparse."""
        recorded_at = self.recorded_at
        item: dict[str, Any] = {
            "recorded_at": {"S": format_recorded_at(recorded_at)},
            "expires_at": {"N": str(int((recorded_at + timedelta(days=retention_days)).timestamp()))},
        }
        # Flat scalar fields: read them directly (dataclasses.asdict deep-copies, which was the
        # largest item of the handler's own per-request time).
        for name in _item_fields(type(self)):
            value = getattr(self, name)
            if value is None or value == "":
                continue
            if isinstance(value, bool):
                item[name] = {"BOOL": value}
            elif isinstance(value, int | float):
                item[name] = {"N": _number(value)}
            else:
                # Bound every string: the user agent and reason are caller-influenced.
                item[name] = {"S": str(value)[:1024]}
        return item


_FIELDS_BY_TYPE: dict[type[AuditRecord], tuple[str, ...]] = {}


def _item_fields(record_type: type[AuditRecord]) -> tuple[str, ...]:
    """Field names of a record class, computed once per class (subclasses add their own, e.g. the
    exchange's record)."""
    names = _FIELDS_BY_TYPE.get(record_type)
    if names is None:
        names = tuple(f.name for f in fields(record_type) if f.name != "recorded_at")
        _FIELDS_BY_TYPE[record_type] = names
    return names


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


class AuditLog:
    """Writes :class:`AuditRecord` items with ``attribute_not_exists(request_id)``.

    The request id is the table's whole key, so the condition makes a request id's record unique
    and immutable: a retried or replayed request id — whatever its timestamp — can neither add a
    second record nor overwrite the first (the write fails, and so does the request: fail closed).
    """

    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], DynamoDBClient],
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> None:
        if not table_name:
            raise ValueError("audit table name is required")
        self.table_name = table_name
        self.retention_days = retention_days
        self._client_factory = client_factory

    def transact_put(self, record: AuditRecord) -> dict[str, Any]:
        """The record as one ``Put`` of a ``TransactWriteItems`` call (same immutability condition),
        for changes that must never happen unrecorded (lifting a revocation)."""
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": record.to_item(retention_days=self.retention_days),
                "ConditionExpression": _FIRST_WRITE,
            }
        }

    def write(self, record: AuditRecord) -> dict[str, Any]:
        """Write the record or raise :class:`AuditWriteError`. Returns the item written."""
        item = record.to_item(retention_days=self.retention_days)
        try:
            self._client_factory().put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=_FIRST_WRITE,
            )
        except Exception as exc:  # any failure at all means "not durably recorded"
            raise AuditWriteError(f"audit write failed: {type(exc).__name__}") from exc
        return item
