"""The HTTP API (payload format 2.0) responses of both API handlers: one JSON encoding, one
mapping of :class:`~kernel_access.errors.KernelAccessError` to status, body and headers.

A handler answers a grant with :func:`granted` and every refusal, wherever it was raised (the
service, the parse step, a deployment that cannot build its service), with :func:`refused`, from
its one exception handler. Imports nothing but :mod:`json` and :mod:`kernel_access.errors`: it is
loaded at handler import, i.e. in every cold start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from kernel_access.errors import JSON_CONTENT_TYPE, KernelAccessError, error_body, error_headers

#: Headers of a grant: JSON, and never cached (the body holds a credential).
GRANTED_HEADERS: Final = {"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"}


def json_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """The HTTP API response: ``body`` as compact JSON with sorted keys."""
    return {
        "statusCode": status,
        "headers": dict(headers),
        "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
        "isBase64Encoded": False,
    }


def granted(body: Mapping[str, Any]) -> dict[str, Any]:
    """200 with ``body``."""
    return json_response(200, body, GRANTED_HEADERS)


def refused(error: KernelAccessError, request_id: str) -> dict[str, Any]:
    """The error's contract status, :func:`~kernel_access.errors.error_body` and
    :func:`~kernel_access.errors.error_headers` (``Retry-After`` when set)."""
    return json_response(error.status, error_body(error, request_id), error_headers(error))
