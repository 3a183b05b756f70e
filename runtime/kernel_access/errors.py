"""The one error type the runtime raises on purpose, and the one JSON shape every error takes.

Every failure a caller can see is a :class:`KernelAccessError` carrying an :class:`ErrorCode`; its
HTTP status comes from the contract, so handlers never invent statuses. Messages are written for the
caller and must never contain internals (exception text from botocore, stack traces) or secrets:
``INTERNAL_ERROR`` always says the same thing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from kernel_access.contract import ErrorCode

JSON_CONTENT_TYPE: Final = "application/json"

#: The fixed message of INTERNAL_ERROR: whatever went wrong inside stays inside (logs only).
INTERNAL_ERROR_MESSAGE: Final = "internal error; the request was not served"


class KernelAccessError(Exception):
    """A refusal or failure with a contract error code, a caller-facing message and optional details.

    ``retry_after`` (seconds) is set for RATE_LIMITED (and may be for upstream throttling); it becomes
    both the ``Retry-After`` header and ``retry_after_seconds`` in the body.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] | None = dict(details) if details else None
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return self.code.status

    @classmethod
    def internal(cls) -> KernelAccessError:
        """INTERNAL_ERROR with the fixed message (use for anything unexpected)."""
        return cls(ErrorCode.INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)


def retry_after_seconds(value: float) -> int:
    """Whole seconds for ``Retry-After`` (RFC 9110 wants an integer); never below 1."""
    return max(1, math.ceil(value))


def error_body(error: KernelAccessError, request_id: str) -> dict[str, Any]:
    """``{error_code, error, details?, request_id, retry_after_seconds?}``: every API's error shape."""
    body: dict[str, Any] = {
        "error_code": error.code.value,
        "error": error.message,
        "request_id": request_id,
    }
    if error.details:
        body["details"] = error.details
    if error.retry_after is not None:
        body["retry_after_seconds"] = retry_after_seconds(error.retry_after)
    return body


def error_headers(error: KernelAccessError) -> dict[str, str]:
    """Response headers of an error: JSON, never cached, and ``Retry-After`` when set."""
    headers = {"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(retry_after_seconds(error.retry_after))
    return headers


def error_json(error: KernelAccessError, request_id: str) -> str:
    return json.dumps(error_body(error, request_id), separators=(",", ":"), sort_keys=True)
