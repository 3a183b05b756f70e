"""In-memory stand-ins for the AWS-backed parts, for fast property tests (moto covers the real calls)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from kernel_access.contract import ErrorCode
from kernel_access.exchange.minting import Issued
from kernel_access.exchange.refusal import ExchangeRefused


class MemoryReplayGuard:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    def accept_once(self, *, issuer: str, jti: str, expires_at: int, request_id: str) -> None:
        key = f"{issuer}#{jti}"
        if key in self.seen:
            raise ExchangeRefused(ErrorCode.INVALID_TOKEN, "replay")
        self.seen.add(key)


class MemoryRevocations:
    """Nothing revoked (the revocation tests use the real store on moto)."""

    def first_revoked(self, subjects: Any) -> None:
        return None


class MemoryIssuedTokens:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def record(self, token: Any) -> None:
        self.records.append(token)


class MemoryAudit:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def write(self, record: Any) -> dict[str, Any]:
        self.records.append(record)
        return {}


class RecordingMinter:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _issued(self, kind: str, **kwargs: Any) -> Issued:
        self.calls.append({"kind": kind, **kwargs})
        secret = uuid.uuid4().hex
        body = {"credentials": {"SessionToken": secret}} if kind == "aws_credentials" else {"token": secret}
        return Issued(
            kind=kind,  # type: ignore[arg-type]
            body=body,
            secret=secret,
            expires_at=datetime.now(UTC) + timedelta(seconds=kwargs["ttl"]),
        )

    def aws_role(self, target: Any, **kwargs: Any) -> Issued:
        return self._issued("aws_credentials", target=target, **kwargs)

    def codeartifact(self, target: Any, **kwargs: Any) -> Issued:
        return self._issued("codeartifact_token", target=target, **kwargs)
