"""Issued-token tracking: every credential or token the exchange hands out, by fingerprint.

The fingerprint is ``sha256:<hex>`` of the secret part (the STS session token, or the CodeArtifact
authorization token): anyone holding a leaked token can compute it and find the record, and the
record itself can never authenticate anything.

What revocation can and cannot do (stated here so nobody relies on more):

- It marks the record revoked (who, when, why); ``kernel-access exchange revoke`` then rebuilds
  the target role's deny statement from the revoked, unexpired records
  (:mod:`kernel_access.exchange.cutoff`), which stops the AWS session as soon as IAM has
  propagated the change (usually seconds): every session
  carries the session tag ``exchanged-token`` and the deny is keyed on it.
- Records issued before sessions were tagged have no ``presented_token_fingerprint``; for them
  :func:`revocation_advice` prints a deny on ``aws:SourceIdentity`` + ``aws:TokenIssueTime``.
- CodeArtifact authorization tokens cannot be revoked at all before they expire (≤ the policy's
  ``token_ttl``, at most 1 hour); revoking one records it and nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

IssuedKind = Literal["aws_credentials", "codeartifact_token"]
#: Records stay listable this long after the token expired (then DynamoDB's TTL removes them;
#: the audit table keeps the long-term history).
RETENTION_AFTER_EXPIRY_SECONDS: Final = 7 * 24 * 3600
_ISO: Final = "%Y-%m-%dT%H:%M:%SZ"


class IssuedTokenNotFound(LookupError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    fingerprint: str
    kind: IssuedKind
    issuer: str
    subject: str
    target: str
    policy: str
    permissions: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    request_id: str
    access_key_id: str | None = None
    source_identity: str | None = None
    role_arn: str | None = None
    #: Fingerprint of the OIDC token this was exchanged for; AWS sessions carry it as the session
    #: tag ``exchanged-token``, which the revocation deny statement keys on.
    presented_token_fingerprint: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "fingerprint": {"S": self.fingerprint},
            "kind": {"S": self.kind},
            "issuer": {"S": self.issuer},
            "subject": {"S": self.subject[:1024]},
            "target": {"S": self.target},
            "policy": {"S": self.policy},
            "permissions": {"S": json.dumps(list(self.permissions))},
            "issued_at": {"S": self.issued_at.strftime(_ISO)},
            "token_expires_at": {"S": self.expires_at.strftime(_ISO)},
            "expires_at": {"N": str(int(self.expires_at.timestamp()) + RETENTION_AFTER_EXPIRY_SECONDS)},
            "request_id": {"S": self.request_id},
        }
        for name in ("access_key_id", "source_identity", "role_arn", "presented_token_fingerprint"):
            value = getattr(self, name)
            if value:
                item[name] = {"S": value}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> IssuedToken:
        def text(name: str) -> str | None:
            value = item.get(name)
            return str(value["S"]) if value and "S" in value else None

        def when(name: str) -> datetime | None:
            value = text(name)
            return datetime.strptime(value, _ISO).replace(tzinfo=UTC) if value else None

        kind = text("kind")
        return cls(
            fingerprint=text("fingerprint") or "",
            kind="codeartifact_token" if kind == "codeartifact_token" else "aws_credentials",
            issuer=text("issuer") or "",
            subject=text("subject") or "",
            target=text("target") or "",
            policy=text("policy") or "",
            permissions=tuple(json.loads(text("permissions") or "[]")),
            issued_at=when("issued_at") or datetime.fromtimestamp(0, UTC),
            expires_at=when("token_expires_at") or datetime.fromtimestamp(0, UTC),
            request_id=text("request_id") or "",
            access_key_id=text("access_key_id"),
            source_identity=text("source_identity"),
            role_arn=text("role_arn"),
            presented_token_fingerprint=text("presented_token_fingerprint"),
            revoked_at=when("revoked_at"),
            revoked_by=text("revoked_by"),
            revoked_reason=text("revoked_reason"),
        )


class IssuedTokenStore:
    def __init__(self, table_name: str, client_factory: Callable[[], DynamoDBClient]) -> None:
        if not table_name:
            raise ValueError("issued-tokens table name is required")
        self.table_name = table_name
        self._client_factory = client_factory

    def record(self, token: IssuedToken) -> None:
        """Track an issued token (raises on any failure: the caller then issues nothing)."""
        self._client_factory().put_item(
            TableName=self.table_name,
            Item=token.to_item(),
            ConditionExpression="attribute_not_exists(fingerprint)",
        )

    def get(self, fingerprint: str) -> IssuedToken | None:
        response = self._client_factory().get_item(
            TableName=self.table_name, Key={"fingerprint": {"S": fingerprint}}, ConsistentRead=True
        )
        item = response.get("Item")
        return IssuedToken.from_item(dict(item)) if item else None

    def is_revoked(self, fingerprint: str) -> bool:
        """True when the token was revoked. Errors propagate: a caller must treat them as "refuse"."""
        token = self.get(fingerprint)
        return token is not None and token.revoked_at is not None

    def scan(self) -> Iterator[IssuedToken]:
        """Every tracked token (the table is small: entries expire a week after their token)."""
        paginator = self._client_factory().get_paginator("scan")
        for page in paginator.paginate(TableName=self.table_name, ConsistentRead=True):
            for item in page.get("Items", []):
                yield IssuedToken.from_item(dict(item))

    def list(self, *, active_only: bool = False, now: datetime | None = None) -> list[IssuedToken]:
        moment = now or datetime.now(UTC)
        tokens = [token for token in self.scan() if not active_only or token.is_active(moment)]
        return sorted(tokens, key=lambda token: token.issued_at)

    def revoke(
        self, fingerprint: str, *, reason: str, revoked_by: str, now: datetime | None = None
    ) -> IssuedToken:
        """Mark a tracked token revoked (first revocation wins); raises IssuedTokenNotFound if unknown."""
        from botocore.exceptions import ClientError

        moment = now or datetime.now(UTC)
        existing = self.get(fingerprint)
        if existing is None:
            raise IssuedTokenNotFound(fingerprint)
        if existing.revoked_at is not None:
            return existing
        try:
            self._client_factory().update_item(
                TableName=self.table_name,
                Key={"fingerprint": {"S": fingerprint}},
                UpdateExpression="SET revoked_at = :at, revoked_by = :by, revoked_reason = :reason",
                ConditionExpression="attribute_exists(fingerprint) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={
                    ":at": {"S": moment.strftime(_ISO)},
                    ":by": {"S": revoked_by[:256]},
                    ":reason": {"S": reason[:1024]},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            current = self.get(fingerprint)
            if current is None:
                raise IssuedTokenNotFound(fingerprint) from None
            return current
        return replace(
            existing, revoked_at=moment.replace(microsecond=0), revoked_by=revoked_by, revoked_reason=reason
        )


def revocation_advice(token: IssuedToken, *, now: datetime | None = None) -> str:
    """What an operator must do beyond recording the revocation, as text (with a policy when AWS)."""
    moment = now or datetime.now(UTC)
    if token.kind == "codeartifact_token":
        return (
            "CodeArtifact authorization tokens cannot be revoked before they expire "
            f"({token.expires_at.strftime(_ISO)}). The revocation is recorded; rotate anything the "
            "token could publish if needed."
        )
    statement = {
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": token.source_identity or "<unknown>"},
            "DateLessThan": {"aws:TokenIssueTime": moment.strftime(_ISO)},
        },
    }
    return (
        "AWS keeps accepting these temporary credentials until "
        f"{token.expires_at.strftime(_ISO)} unless the role denies them. Attach this statement to "
        f"{token.role_arn or 'the target role'} (inline policy) to cut off every session of this "
        "source identity issued before now:\n"
        + json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=2)
    )
