"""Lambda handler of the credential-vending API (``contract.VENDING_HANDLER``).

Thin on purpose: Powertools routes the three routes of ``contract.VENDING_ROUTES``; each route hands
the raw event to the container's :class:`~kernel_access.vending.service.VendingService`, which
parses, authorizes, acts, audits and returns an outcome that is turned into the HTTP response here.

Observability: Powertools Logger with the API Gateway request id as correlation id, Metrics
(EMF; flushed per invocation), Tracer with ``capture_response=False`` — the response holds
credentials and must never become trace metadata.

Cold start: importing this module loads Powertools' Logger, Metrics and event handler and nothing
else — no boto3/botocore session machinery and no X-Ray SDK. Powertools' ``Tracer()`` imports the
X-Ray SDK (which imports botocore's session, client and docs modules) even when tracing is
disabled, which alone cost more than ``import boto3``; so the Tracer and its
``capture_lambda_handler`` wrapper are built on the first invocation (:func:`_traced_entry`),
together with the service (boto3 clients, policy cache, CodeArtifact token cache), and reused by
warm invocations. Tests swap the service with :func:`reset_for_tests`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from kernel_access.errors import JSON_CONTENT_TYPE, KernelAccessError, error_body, error_headers

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kernel_access.vending.service import Outcome, VendingService

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

Entry = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]
_entry: Entry | None = None
_entry_lock = threading.Lock()

_service: VendingService | None = None
_service_lock = threading.Lock()


def get_service() -> VendingService:
    """The container's service, built from the environment on first use."""
    global _service  # noqa: PLW0603 - one service per container is the point
    if _service is None:
        with _service_lock:
            if _service is None:
                from kernel_access.vending.service import VendingService

                _service = VendingService.from_env()
    return _service


def reset_for_tests(service: VendingService | None = None) -> None:
    """Drop (or replace) the cached service so the next request rebuilds it."""
    global _service  # noqa: PLW0603
    with _service_lock:
        _service = service


def _response(outcome: Outcome) -> Response[str]:
    return Response(
        status_code=outcome.status,
        content_type=JSON_CONTENT_TYPE,
        body=json.dumps(outcome.body, separators=(",", ":"), sort_keys=True),
        headers=outcome.headers,
    )


def _error_response(error: KernelAccessError) -> Response[str]:
    request_id = str(app.current_event.request_context.request_id or "unknown")
    return Response(
        status_code=error.status,
        content_type=JSON_CONTENT_TYPE,
        body=json.dumps(error_body(error, request_id), separators=(",", ":"), sort_keys=True),
        headers=error_headers(error),
    )


def _serve(route: str) -> Response[str]:
    context = app.current_event.request_context
    logger.append_keys(request_id=context.request_id, route=app.current_event.raw_event.get("routeKey"))
    try:
        service = get_service()
    except Exception:
        # Misconfigured deployment (bad environment): nothing can be audited or vended. Fail closed,
        # and still count the refusal so the Denied{error_code=INTERNAL_ERROR} alarm sees it.
        logger.exception("vending service could not be built")
        from kernel_access.vending.service import Telemetry

        Telemetry().denied(route, "INTERNAL_ERROR", 0.0)
        return _error_response(KernelAccessError.internal())
    event = app.current_event.raw_event
    if route == "credentials":
        return _response(service.credentials(event))
    if route == "token":
        return _response(service.codeartifact_token(event))
    if route == "health":
        return _response(service.health(event))
    return _response(service.unknown_route(event))


@app.get("/credentials")
def credentials() -> Response[str]:
    return _serve("credentials")


@app.get("/codeartifact/token")
def codeartifact_token() -> Response[str]:
    return _serve("token")


@app.get("/health")
def health() -> Response[str]:
    return _serve("health")


@app.not_found
def not_found(_exc: Exception) -> Response[str]:
    """API Gateway forwards only the routes above, so this means a misrouted deployment: still a
    refusal like any other (INVALID_REQUEST, audited)."""
    return _serve("unknown")


def unexpected(_exc: Exception) -> Response[str]:
    """Last resort (the service never raises): INTERNAL_ERROR without internals."""
    logger.exception("unhandled error in the vending handler")
    return _error_response(KernelAccessError.internal())


app.exception_handler(Exception)(unexpected)


def _traced_entry() -> Entry:
    """``app.resolve`` wrapped in ``Tracer.capture_lambda_handler``, built once per container.

    Built on the first invocation rather than at import (see the module docstring). X-Ray's
    botocore patching wraps ``BaseClient._make_api_call`` at class level, so it covers every client
    the service creates afterwards.
    """
    global _entry  # noqa: PLW0603 - one wrapper per container is the point
    if _entry is None:
        with _entry_lock:
            if _entry is None:
                from aws_lambda_powertools import Tracer

                tracer = Tracer()

                @tracer.capture_lambda_handler(capture_response=False)
                def entry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
                    return app.resolve(event, context)

                _entry = entry
    return _entry


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_entry()(event, context)
