"""Lambda handler of the OIDC token exchange (``contract.EXCHANGE_HANDLER``).

Thin on purpose: it reads what API Gateway verified — the JWT authorizer's claims
(``requestContext.authorizer.jwt.claims``) and the matched route key, which names the issuer —
plus the raw bearer token (only to fingerprint it; the authorizer already validated it), and hands
them to :class:`~kernel_access.exchange.service.ExchangeService`. Nothing in the body, query or
other headers can change who the caller is.

The issuer name comes from ``requestContext.routeKey`` (``POST /exchange/<name>``), which API
Gateway sets from the route it matched, i.e. from the route whose authorizer verified the token.

Observability mirrors the vending handler: Powertools Logger with the request id as correlation
id, Metrics (EMF), and a Tracer with ``capture_response=False`` (responses hold credentials) built
on the first invocation, not at import (``handlers.tracing``: the X-Ray SDK would dominate the
cold start).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from kernel_access.contract import ErrorCode
from kernel_access.errors import JSON_CONTENT_TYPE, KernelAccessError, error_body, error_headers
from kernel_access.exchange.config import ISSUER_NAME_RE
from kernel_access.handlers.tracing import deferred
from kernel_access.telemetry import DECISION_MESSAGE, EXCHANGE_GRANTED, exchange_refusal

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kernel_access.exchange.service import ExchangeService

logger = Logger()
metrics = Metrics()

_ROUTE_PREFIX = "POST /exchange/"
_MAX_TOKEN_LENGTH = 16384

_service: ExchangeService | None = None
_service_lock = threading.Lock()


def get_service() -> ExchangeService:
    """The container's service, built from the environment on first use."""
    global _service  # noqa: PLW0603 - one service per container is the point
    if _service is None:
        with _service_lock:
            if _service is None:
                from kernel_access.exchange.wiring import service_from_env

                _service = service_from_env(os.environ)
    return _service


def reset_for_tests(service: ExchangeService | None = None) -> None:
    """Drop (or replace) the cached service so the next request rebuilds it."""
    global _service  # noqa: PLW0603
    with _service_lock:
        _service = service


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _bearer_token(headers: Mapping[str, Any]) -> str | None:
    """The raw token from ``Authorization`` (HTTP API lower-cases header names in payload 2.0)."""
    value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == "authorization"), None)
    if not isinstance(value, str) or not value or len(value) > _MAX_TOKEN_LENGTH:
        return None
    scheme, _, rest = value.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else value.strip()
    return token or None


def _response(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": dict(headers),
        "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
        "isBase64Encoded": False,
    }


def _error(error: KernelAccessError, request_id: str) -> dict[str, Any]:
    metrics.add_metric(name=exchange_refusal(error.code).name, unit=MetricUnit.Count, value=1)
    logger.append_keys(decision="error" if error.status >= 500 else "deny", error_code=error.code.value)
    logger.info(DECISION_MESSAGE)
    return _response(error.status, error_body(error, request_id), error_headers(error))


def handle(event: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The exchange for one event (separate from :func:`handler` so tests need no Lambda context)."""
    from kernel_access.exchange.service import ExchangeContext

    request_context = _mapping(event.get("requestContext"))
    request_id = str(request_context.get("requestId") or request_id)
    route_key = request_context.get("routeKey")
    issuer_name = route_key[len(_ROUTE_PREFIX) :] if isinstance(route_key, str) else ""
    logger.append_keys(request_id=request_id, route=route_key if isinstance(route_key, str) else None)
    if (
        not isinstance(route_key, str)
        or not route_key.startswith(_ROUTE_PREFIX)
        or not ISSUER_NAME_RE.match(issuer_name)
    ):
        return _error(KernelAccessError(ErrorCode.INVALID_REQUEST, "unknown route"), request_id)
    jwt = _mapping(_mapping(request_context.get("authorizer")).get("jwt"))
    claims = jwt.get("claims")
    if not isinstance(claims, Mapping) or not claims:
        # A route deployed without its JWT authorizer must never exchange anything.
        return _error(
            KernelAccessError(ErrorCode.INVALID_TOKEN, "request is not JWT-authenticated"), request_id
        )
    logger.append_keys(caller=f"oidc:{issuer_name}:{str(claims.get('sub', ''))[:256]}")
    http = _mapping(request_context.get("http"))
    source_ip, user_agent = http.get("sourceIp"), http.get("userAgent")
    try:
        service = get_service()
    except Exception:
        logger.exception("exchange service could not be built")
        return _error(KernelAccessError.internal(), request_id)
    context = ExchangeContext(
        request_id=request_id,
        issuer_name=issuer_name,
        claims=dict(claims),
        presented_token=_bearer_token(_mapping(event.get("headers"))),
        body=event.get("body"),
        body_is_base64=bool(event.get("isBase64Encoded")),
        source_ip=source_ip[:64] if isinstance(source_ip, str) and source_ip else None,
        user_agent=user_agent[:512] if isinstance(user_agent, str) and user_agent else None,
    )
    try:
        body = service.exchange(context)
    except KernelAccessError as error:
        logger.info("exchange refused", extra={"error_code": error.code.value, "issuer": issuer_name})
        return _error(error, request_id)
    except Exception:
        logger.exception("unhandled error in the exchange handler")
        return _error(KernelAccessError.internal(), request_id)
    metrics.add_metric(name=EXCHANGE_GRANTED.name, unit=MetricUnit.Count, value=1)
    logger.append_keys(decision="allow", error_code=None)
    logger.info(DECISION_MESSAGE)
    logger.info(
        "exchange granted", extra={"issuer": issuer_name, "matched_policy": body.get("matched_policy")}
    )
    return _response(200, body, {"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _traced_entry(event, context)


def _entry(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, getattr(context, "aws_request_id", "unknown"))


_traced_entry = deferred(_entry)
