"""Revoked callers, partners and accounts: an operator's kill switch, checked on every vend, fail-closed.

The table holds one item per revoked subject — ``partner#<name>``, ``account#<id>`` (the partner's
bound account) or ``caller#<session-arn>`` — with ``reason``, ``revoked_by`` (the operator's STS
caller identity ARN) and ``revoked_at``. The Lambda only reads (one strongly consistent
``BatchGetItem`` for every subject of a request, so a revocation applies to the very next request);
the ``kernel-access revoke`` command writes.

What each kind stops: a partner or account revocation stops every session of that partner, whatever
it names them (those keys are identities the partner cannot choose). A caller revocation stops ONE
session ARN: that is what a leaked kernel-access session credential can present (it cannot rename
itself), but the partner behind it can assume the role again under another session name, so
stopping a partner always takes ``partner#`` or ``account#``. If the store cannot answer,
:meth:`RevocationStore.check` raises :class:`RevocationStoreUnavailable` and vending denies (503):
a revocation store that cannot answer never lets a request through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class RevocationStoreUnavailable(Exception):
    """The revocation table could not be read completely: the request must be denied."""


@dataclass(frozen=True)
class Revocation:
    subject: str
    reason: str
    revoked_by: str
    revoked_at: str

    @property
    def kind(self) -> str:
        return self.subject.split("#", 1)[0]


def caller_subject(caller_arn: str) -> str:
    return f"caller#{caller_arn}"


def partner_subject(partner: str) -> str:
    return f"partner#{partner}"


def token_subject(fingerprint: str) -> str:
    """A revoked bearer token, by its fingerprint (the OIDC exchange refuses it)."""
    return f"token#{fingerprint}"


def account_subject(account_id: str) -> str:
    return f"account#{account_id}"


def _from_item(item: dict[str, Any]) -> Revocation:
    def text(name: str) -> str:
        value = item.get(name, {})
        return str(value.get("S", "")) if isinstance(value, dict) else ""

    return Revocation(
        subject=text("subject"),
        reason=text("reason"),
        revoked_by=text("revoked_by"),
        revoked_at=text("revoked_at"),
    )


class RevocationStore:
    def __init__(self, table_name: str, client_factory: Callable[[], DynamoDBClient]) -> None:
        if not table_name:
            raise ValueError("revocation table name is required")
        self.table_name = table_name
        self._client_factory = client_factory

    # --- read side (the Lambda) ---

    def check(self, caller_arn: str, partner: str | None, account_id: str | None = None) -> Revocation | None:
        """The revocation that applies to this caller, partner or the partner's account (in that
        order), or None."""
        subjects = [caller_subject(caller_arn)]
        if partner:
            subjects.append(partner_subject(partner))
        if account_id:
            subjects.append(account_subject(account_id))
        return self.first_revoked(subjects)

    def first_revoked(self, subjects: Sequence[str]) -> Revocation | None:
        """The revocation of the first of ``subjects`` that is revoked, or None (one consistent read)."""
        try:
            response = self._client_factory().batch_get_item(
                RequestItems={
                    self.table_name: {
                        "Keys": [{"subject": {"S": s}} for s in subjects],
                        "ConsistentRead": True,
                    }
                }
            )
        except Exception as exc:
            raise RevocationStoreUnavailable(f"revocation store unavailable: {type(exc).__name__}") from exc
        if response.get("UnprocessedKeys"):
            # A partial answer is no answer: an unread key might be the revoked one.
            raise RevocationStoreUnavailable("revocation store returned unprocessed keys")
        found = {
            revocation.subject: revocation
            for revocation in (
                _from_item(dict(i)) for i in response.get("Responses", {}).get(self.table_name, [])
            )
        }
        for subject in subjects:
            if subject in found:
                return found[subject]
        return None

    # --- write side (the operator CLI) ---

    def revoke(self, subject: str, *, reason: str, revoked_by: str, at: datetime | None = None) -> Revocation:
        revoked_at = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._client_factory().put_item(
            TableName=self.table_name,
            Item={
                "subject": {"S": subject},
                "reason": {"S": reason},
                "revoked_by": {"S": revoked_by},
                "revoked_at": {"S": revoked_at},
            },
        )
        return Revocation(subject=subject, reason=reason, revoked_by=revoked_by, revoked_at=revoked_at)

    def unrevoke(self, subject: str, *, audit_put: Mapping[str, Any] | None = None) -> bool:
        """Remove a revocation; True when one existed.

        With ``audit_put`` (a ``TransactWriteItems`` element, see ``AuditLog.transact_put``) the
        delete and the audit record are one transaction: either the revocation is lifted AND the
        operator's record is written, or neither happens. A subject that is not revoked is reported
        (False) and leaves no record.
        """
        client = self._client_factory()
        key = {"subject": {"S": subject}}
        if audit_put is None:
            response = client.delete_item(TableName=self.table_name, Key=key, ReturnValues="ALL_OLD")
            return bool(response.get("Attributes"))
        from botocore.exceptions import ClientError

        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table_name,
                            "Key": key,
                            "ConditionExpression": "attribute_exists(subject)",
                        }
                    },
                    audit_put,  # type: ignore[list-item]
                ]
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if (
                exc.response.get("Error", {}).get("Code") == "TransactionCanceledException"
                and reasons
                and reasons[0].get("Code") == "ConditionalCheckFailed"
            ):
                return False
            raise
        return True

    def list(self) -> Iterator[Revocation]:
        paginator = self._client_factory().get_paginator("scan")
        for page in paginator.paginate(TableName=self.table_name, ConsistentRead=True):
            for item in page.get("Items", []):
                yield _from_item(dict(item))
