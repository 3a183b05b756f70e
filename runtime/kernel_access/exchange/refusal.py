"""The exception the exchange raises to refuse a request: a contract error plus an audit-only reason.

It is a :class:`kernel_access.errors.KernelAccessError` (so the shared error body and headers
apply). ``message`` and ``details`` go to the caller, so they never contain a token, a credential
or internals; ``reason`` is the fuller explanation that goes only to the audit record and logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError


class ExchangeRefused(KernelAccessError):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
        count: int | None = None,
    ) -> None:
        super().__init__(code, message, details, retry_after)
        self.reason = reason or message
        #: How many refusals of this kind the caller has had in the current window, when the
        #: check that refused already knows (the rate limiter does); used to sample the audit.
        self.count = count
