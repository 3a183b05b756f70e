"""What a kernel call returns, and what it raises when the kernel says no.

``KernelCallError`` carries the contract's error fields (``error_code``, ``request_id``) parsed from
the kernel's JSON error body, so callers branch on codes, not on message text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KernelResponse:
    """One successful (status < 400) response. ``duration`` is seconds for the final attempt."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    duration: float
    attempts: int = 1

    def json(self) -> Any:
        """The body decoded as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class KernelClientError(Exception):
    """Base class of everything the kernel client raises on purpose."""


class KernelConfigError(KernelClientError, ValueError):
    """The client's configuration is incomplete or invalid (names the setting)."""


class KernelCredentialsError(KernelClientError):
    """The kernel role could not be assumed (the cause is chained, never a secret)."""


class KernelConnectionError(KernelClientError):
    """No response: connection refused/reset or a timeout, after every allowed attempt."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class KernelCallError(KernelClientError):
    """The kernel answered with status >= 400.

    ``error_code``/``request_id`` come from the contract's error body
    (``{error_code, error, details?, request_id, retry_after_seconds?}``) or, for ``request_id``,
    from API Gateway's ``apigw-requestid`` header; ``None`` when the body is not ours (e.g. API
    Gateway's own ``{"message": "Forbidden"}``).
    """

    def __init__(
        self,
        status: int,
        error_code: str | None,
        request_id: str | None,
        body: bytes,
        *,
        message: str | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.request_id = request_id
        self.body = body
        self.message = message
        self.retry_after = retry_after
        self.attempts = attempts
        summary = f"kernel call failed with HTTP {status}"
        if error_code:
            summary += f" {error_code}"
        if message:
            summary += f": {message}"
        if request_id:
            summary += f" (request_id={request_id})"
        super().__init__(summary)

    @property
    def status_code(self) -> int:
        return self.status

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @classmethod
    def from_response(
        cls, status: int, headers: Mapping[str, str], body: bytes, *, attempts: int = 1
    ) -> KernelCallError:
        parsed: Any = None
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        error_code = message = request_id = None
        retry_after: float | None = None
        if isinstance(parsed, Mapping):
            code = parsed.get("error_code")
            error_code = code if isinstance(code, str) else None
            text = parsed.get("error", parsed.get("message"))
            # Only short, single-line messages go into str(): bodies may be large or hostile.
            message = text[:200].splitlines()[0] if isinstance(text, str) and text else None
            rid = parsed.get("request_id")
            request_id = rid if isinstance(rid, str) else None
            seconds = parsed.get("retry_after_seconds")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                retry_after = float(seconds)
        lower = {k.lower(): v for k, v in headers.items()}
        request_id = request_id or lower.get("apigw-requestid") or lower.get("x-amzn-requestid")
        return cls(
            status,
            error_code,
            request_id,
            body,
            message=message,
            retry_after=retry_after,
            attempts=attempts,
        )
