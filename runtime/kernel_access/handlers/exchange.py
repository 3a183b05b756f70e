"""Lambda handler of the OIDC token exchange (``contract.EXCHANGE_HANDLER``).

Thin on purpose, in the shape every API handler here has (``docs/development.md``, "Handlers"):

1. **parse once**: the event becomes an
   :class:`~kernel_access.exchange.context.ExchangeRequestContext` (request id, the issuer the
   matched route names, the JWT authorizer's claims, the bearer token, body, connection facts) —
   the only reading of the event; a request that did not come through an issuer's JWT-authorized
   route is refused there, before the service;
2. **service**: :meth:`~kernel_access.exchange.service.ExchangeService.exchange` authorizes, mints,
   tracks and audits, and returns the response body or raises the (audited) refusal as a
   :class:`~kernel_access.errors.KernelAccessError`;
3. **one exception handler** (:func:`refused`) turns every ``KernelAccessError`` into the response,
   through :func:`kernel_access.handlers.responses.refused`, the mapping both API handlers share.

There is one route per trusted issuer (``contract.exchange_route``), all served the same way, so
there is no resolver: the route key names the issuer (``exchange.context``).

Observability mirrors the vending handler: Powertools Logger with the request id as correlation
id, Metrics (EMF), and a Tracer with ``capture_response=False`` (responses hold credentials) built
on the first invocation, not at import (``handlers.tracing``: the X-Ray SDK would dominate the
cold start).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from kernel_access.errors import KernelAccessError
from kernel_access.handlers import responses
from kernel_access.handlers.lazy import Lazy
from kernel_access.handlers.tracing import deferred
from kernel_access.telemetry import DECISION_MESSAGE, EXCHANGE_GRANTED, exchange_refusal

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kernel_access.exchange.context import ExchangeRequestContext
    from kernel_access.exchange.service import ExchangeService

logger = Logger()
metrics = Metrics()


def _build_service() -> ExchangeService:
    from kernel_access.exchange.wiring import service_from_env

    return service_from_env(os.environ)


_service: Lazy[ExchangeService] = Lazy(_build_service)


def get_service() -> ExchangeService:
    """The container's service, built from the environment on first use."""
    return _service.get()


def reset_for_tests(service: ExchangeService | None = None) -> None:
    """Drop (or replace) the cached service so the next request rebuilds it."""
    _service.reset(service)


def _service_for() -> ExchangeService:
    """The container's service; INTERNAL_ERROR when the deployment cannot build it."""
    try:
        return get_service()
    except Exception:
        logger.exception("exchange service could not be built")
        raise KernelAccessError.internal() from None


def refused(error: KernelAccessError, request: ExchangeRequestContext) -> dict[str, Any]:
    """The one exception handler: every refusal, wherever raised, counted, logged and answered."""
    metrics.add_metric(name=exchange_refusal(error.code).name, unit=MetricUnit.Count, value=1)
    logger.append_keys(decision="error" if error.status >= 500 else "deny", error_code=error.code.value)
    logger.info(DECISION_MESSAGE)
    logger.info("exchange refused", extra={"error_code": error.code.value, "issuer": request.issuer_name})
    return responses.refused(error, request.request_id)


def handle(event: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The exchange for one event (separate from :func:`handler` so tests need no Lambda context)."""
    from kernel_access.exchange.context import ExchangeRequestContext

    request = ExchangeRequestContext.from_event(event, fallback_request_id=request_id)
    logger.append_keys(request_id=request.request_id, route=request.route)
    try:
        request.require_authorized_route()
        subject = str(request.claims.get("sub", ""))[:256]
        logger.append_keys(caller=f"oidc:{request.issuer_name}:{subject}")
        body = _service_for().exchange(request)
    except KernelAccessError as error:
        return refused(error, request)
    except Exception:
        logger.exception("unhandled error in the exchange handler")
        return refused(KernelAccessError.internal(), request)
    metrics.add_metric(name=EXCHANGE_GRANTED.name, unit=MetricUnit.Count, value=1)
    logger.append_keys(decision="allow", error_code=None)
    logger.info(DECISION_MESSAGE)
    logger.info(
        "exchange granted",
        extra={"issuer": request.issuer_name, "matched_policy": body.get("matched_policy")},
    )
    return responses.granted(body)


def _entry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Every invocation starts from an empty metric set (see the vending handler's ``_entry``).
    metrics.clear_metrics()
    return handle(event, getattr(context, "aws_request_id", "unknown"))


_traced_entry = deferred(_entry)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_entry(event, context)
