"""Lambda handler of the credential-vending API (``contract.VENDING_HANDLER``).

Thin on purpose: Powertools routes the three routes of ``contract.VENDING_ROUTES``; each route hands
the raw event to the container's :class:`~kernel_access.vending.service.VendingService`, which
parses, authorizes, acts, audits and returns an outcome that is turned into the HTTP response here.

Observability: Powertools Logger with the API Gateway request id as correlation id, Metrics
(EMF; flushed per invocation), Tracer with ``capture_response=False`` — the response holds
credentials and must never become trace metadata.

The service (boto3 clients, policy cache, CodeArtifact token cache) is built lazily on the first
request and reused by warm invocations; importing this module imports no boto3 (cold start).
Tests swap it with :func:`reset_for_tests`.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from kernel_access.errors import JSON_CONTENT_TYPE, KernelAccessError, error_body, error_headers

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kernel_access.vending.service import Outcome, VendingService

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()

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
    try:
        service = get_service()
    except Exception:
        # Misconfigured deployment (bad environment): nothing can be audited or vended. Fail closed.
        logger.exception("vending service could not be built")
        return _error_response(KernelAccessError.internal())
    event = app.current_event.raw_event
    if route == "credentials":
        return _response(service.credentials(event))
    if route == "token":
        return _response(service.codeartifact_token(event))
    return _response(service.health(event))


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
    from kernel_access.contract import ErrorCode

    return _error_response(KernelAccessError(ErrorCode.INVALID_REQUEST, "unknown route"))


def unexpected(_exc: Exception) -> Response[str]:
    """Last resort (the service never raises): INTERNAL_ERROR without internals."""
    logger.exception("unhandled error in the vending handler")
    return _error_response(KernelAccessError.internal())


app.exception_handler(Exception)(unexpected)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
