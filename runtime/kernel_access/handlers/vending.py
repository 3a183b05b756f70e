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
``capture_lambda_handler`` wrapper are built on the first invocation (``handlers.tracing``),
together with the service (boto3 clients, policy cache, CodeArtifact token cache), and reused by
warm invocations. Tests swap the service with :func:`reset_for_tests`.

Events API Gateway never sends (a direct ``lambda:InvokeFunction``, a console test payload, a
misrouted integration) must not crash the function: Powertools' resolver indexes the payload-2.0
fields it needs and raises ``KeyError``/``TypeError`` on anything else, before any route runs.
So an event that is not shaped like an HTTP API payload-2.0 request (:func:`_http_api_shaped`),
and any event the resolver still fails on, is answered by the service as a malformed request:
INVALID_REQUEST (400) as a JSON error body, audited like every other refusal.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from kernel_access.errors import JSON_CONTENT_TYPE, KernelAccessError, error_body, error_headers
from kernel_access.handlers.tracing import deferred

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kernel_access.vending.service import Outcome, VendingService

logger = Logger()
metrics = Metrics()
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


def _http_api_shaped(event: object) -> bool:
    """Does ``event`` have the payload-2.0 fields, with the types, that the resolver reads?"""
    if not isinstance(event, dict):
        return False
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    headers = event.get("headers", {})
    query = event.get("queryStringParameters")
    cookies = event.get("cookies", [])
    return (
        isinstance(http, dict)
        and isinstance(http.get("method"), str)
        and isinstance(http.get("path"), str)
        and isinstance(event.get("rawPath"), str)
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        and (query is None or (isinstance(query, dict) and all(isinstance(v, str) for v in query.values())))
        and isinstance(cookies, list)
        and all(isinstance(c, str) for c in cookies)
    )


def _malformed(event: object) -> dict[str, Any]:
    """The answer to an event API Gateway never sends: an audited INVALID_REQUEST, as the HTTP
    API response dict (built here: the resolver is what could not read the event)."""
    try:
        outcome = get_service().malformed_event(event)
    except Exception:
        logger.exception("vending service could not be built")
        error = KernelAccessError.internal()
        status, body, headers = error.status, error_body(error, "unknown"), error_headers(error)
    else:
        status, body, headers = outcome.status, outcome.body, outcome.headers
    return {
        "statusCode": status,
        "headers": {**headers, "Content-Type": JSON_CONTENT_TYPE},
        "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
        "isBase64Encoded": False,
    }


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


def _entry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not _http_api_shaped(event):
        return _malformed(event)
    try:
        return app.resolve(event, context)
    except Exception:
        # Routes never raise (the service answers every outcome); this is the resolver failing to
        # read an event the shape check let through.
        logger.exception("the event could not be resolved")
        return _malformed(event)


_traced_entry = deferred(_entry)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_entry(event, context)
