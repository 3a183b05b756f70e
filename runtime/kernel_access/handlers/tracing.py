"""One way for both handlers to trace without paying for X-Ray at import.

Powertools' ``Tracer()`` imports the X-Ray SDK (which imports botocore's session, client and docs
modules) even when tracing is disabled: on its own that costs more than ``import boto3``, and a
handler that builds it at import time pays it in every cold start's init phase. :func:`deferred`
wraps a handler entry in ``Tracer.capture_lambda_handler(capture_response=False)`` on its *first
invocation* instead, once per container. ``capture_response=False`` because responses hold
credentials, which must never become trace metadata. X-Ray's botocore patching wraps
``BaseClient._make_api_call`` at class level, so it covers clients created afterwards as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

Entry = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]


def deferred(entry: Entry) -> Entry:
    """``entry`` traced by a Tracer built on the first call (thread-safe, once per container)."""
    traced: list[Entry] = []
    lock = threading.Lock()

    def call(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if not traced:
            with lock:
                if not traced:
                    from aws_lambda_powertools import Tracer

                    traced.append(Tracer().capture_lambda_handler(capture_response=False)(entry))
        return traced[0](event, context)

    return call
