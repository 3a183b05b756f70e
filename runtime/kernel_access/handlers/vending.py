"""Lambda handler of the credential-vending API (``contract.VENDING_HANDLER``).

Thin on purpose, in the shape every API handler here has (``docs/development.md``, "Handlers"):

1. **parse once**: each route turns the event into a
   :class:`~kernel_access.vending.context.VendingRequestContext` (request id, route, the IAM
   authorizer's caller, connection facts, query string) — the only reading of the event;
2. **service**: the route calls its method of the container's
   :class:`~kernel_access.vending.service.VendingService`, which authorizes, acts, counts and audits,
   and returns the response body or raises the refusal as a
   :class:`~kernel_access.errors.KernelAccessError`;
3. **one exception handler** (:func:`refused`) turns every ``KernelAccessError`` into the response,
   through :func:`kernel_access.handlers.responses.refused`, the mapping both API handlers share.

Powertools' resolver routes the three routes of ``contract.VENDING_ROUTES``; the decorators take
their paths from the contract, and each route calls its own service method (no second dispatch).

Observability: Powertools Logger with the API Gateway request id as correlation id, Metrics
(EMF; flushed per invocation), Tracer with ``capture_response=False`` — the response holds
credentials and must never become trace metadata.

Cold start: importing this module loads Powertools' Logger, Metrics and event handler and nothing
else — no boto3/botocore session machinery and no X-Ray SDK. The Tracer is built on the first
invocation (``handlers.tracing``), together with the service (boto3 clients, policy cache,
CodeArtifact token cache), and both are reused by warm invocations. Tests swap the service with
:func:`reset_for_tests`.

Events API Gateway never sends (a direct ``lambda:InvokeFunction``, a console test payload, a
misrouted integration) must not crash the function: Powertools' resolver indexes the payload-2.0
fields it needs and raises ``KeyError``/``TypeError`` on anything else, before any route runs.
So an event that is not shaped like an HTTP API payload-2.0 request (:func:`_http_api_shaped`),
and any event the resolver still fails on, is answered by the service as a malformed request:
INVALID_REQUEST (400) as a JSON error body, audited like every other refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths

from kernel_access import contract
from kernel_access.errors import KernelAccessError
from kernel_access.handlers import responses
from kernel_access.handlers.lazy import Lazy
from kernel_access.handlers.tracing import deferred

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kernel_access.vending.context import VendingRequestContext
    from kernel_access.vending.service import VendingService

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

#: Key of the current request's context in the resolver's per-request ``app.context``.
_REQUEST = "request"


def _build_service() -> VendingService:
    from kernel_access.vending.service import VendingService

    return VendingService.from_env()


_service: Lazy[VendingService] = Lazy(_build_service)


def get_service() -> VendingService:
    """The container's service, built from the environment on first use."""
    return _service.get()


def reset_for_tests(service: VendingService | None = None) -> None:
    """Drop (or replace) the cached service so the next request rebuilds it."""
    _service.reset(service)


def _request(event: object, route: str) -> VendingRequestContext:
    """Parse step: the event's context, served as ``route``, with the log keys it gives."""
    from kernel_access.vending.context import VendingRequestContext

    request = VendingRequestContext.from_event(event, route=route)
    logger.append_keys(request_id=request.request_id, route=route)
    return request


def _service_for(request: VendingRequestContext) -> VendingService:
    """The container's service; INTERNAL_ERROR (counted) when the deployment cannot build it."""
    try:
        return get_service()
    except Exception:
        # Misconfigured deployment (bad environment): nothing can be audited or vended. Fail closed,
        # and still count the refusal so the Denied{error_code=INTERNAL_ERROR} alarm sees it.
        logger.exception("vending service could not be built")
        from kernel_access.vending.service import Telemetry

        Telemetry().denied(request.route, "INTERNAL_ERROR", 0.0)
        raise KernelAccessError.internal() from None


def _serve(route: contract.Route | None) -> VendingRequestContext:
    """The resolved request's context (stored for :func:`refused`)."""
    request = _request(app.current_event.raw_event, route.route_key if route else contract.UNKNOWN_ROUTE)
    app.context[_REQUEST] = request  # the resolver clears its context after each event
    return request


def _resolver_response(response: dict[str, Any]) -> Response[str]:
    """A :mod:`~kernel_access.handlers.responses` response as Powertools' resolver returns it."""
    return Response(status_code=response["statusCode"], body=response["body"], headers=response["headers"])


@app.get(contract.CREDENTIALS_ROUTE.path)
def credentials() -> Response[str]:
    request = _serve(contract.CREDENTIALS_ROUTE)
    return _resolver_response(responses.granted(_service_for(request).credentials(request)))


@app.get(contract.TOKEN_ROUTE.path)
def codeartifact_token() -> Response[str]:
    request = _serve(contract.TOKEN_ROUTE)
    return _resolver_response(responses.granted(_service_for(request).codeartifact_token(request)))


@app.get(contract.HEALTH_ROUTE.path)
def health() -> Response[str]:
    request = _serve(contract.HEALTH_ROUTE)
    return _resolver_response(responses.granted(_service_for(request).health(request)))


@app.not_found
def not_found(_exc: Exception) -> NoReturn:
    """API Gateway forwards only the routes above, so this means a misrouted deployment: still a
    refusal like any other (INVALID_REQUEST, audited; answered by :func:`refused`)."""
    request = _serve(None)
    _service_for(request).unknown_route(request)


def refused(error: KernelAccessError) -> Response[str]:
    """The one exception handler: every refusal, wherever raised, is the response it names."""
    request: VendingRequestContext | None = app.context.get(_REQUEST)
    return _resolver_response(responses.refused(error, request.request_id if request else "unknown"))


def unexpected(_exc: Exception) -> Response[str]:
    """Last resort (the service never raises anything but refusals): INTERNAL_ERROR, no internals."""
    logger.exception("unhandled error in the vending handler")
    return refused(KernelAccessError.internal())


# The one exception handler (registered by call: Powertools' decorator is untyped). Powertools looks
# handlers up along the exception's MRO, so a KernelAccessError never reaches ``unexpected``.
app.exception_handler(KernelAccessError)(refused)
app.exception_handler(Exception)(unexpected)


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
    """The answer to an event API Gateway never sends: an audited INVALID_REQUEST, mapped by the
    same :func:`~kernel_access.handlers.responses.refused` (the resolver is what could not read it)."""
    request = _request(event, contract.UNKNOWN_ROUTE)
    try:
        _service_for(request).malformed_event(request)
    except KernelAccessError as error:
        return responses.refused(error, request.request_id)


def _entry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Every invocation starts from an empty metric set: a route dimension left behind (metrics
    # disabled, so never flushed; or recorded outside an invocation) must not meet this one's.
    metrics.clear_metrics()
    if _http_api_shaped(event):
        try:
            return app.resolve(event, context)
        except Exception:
            # Routes never raise (the exception handler answers every refusal); this is the
            # resolver failing to read an event the shape check let through.
            logger.exception("the event could not be resolved")
    return _malformed(event)


_traced_entry = deferred(_entry)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_entry(event, context)
