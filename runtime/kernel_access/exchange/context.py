"""One exchange request as the service sees it: the API Gateway event, parsed once.

:meth:`ExchangeRequestContext.from_event` is the only code that reads an exchange event, and it
reads only what API Gateway verified or set — the JWT authorizer's claims
(``requestContext.authorizer.jwt.claims``) and the matched route key, which names the issuer —
plus the raw bearer token (only to fingerprint it; the authorizer already validated it), the body
and the connection facts. Nothing in the body, query or other headers can change who the caller is.

The issuer name comes from ``requestContext.routeKey`` (``POST /exchange/<name>``), which API
Gateway sets from the route it matched, i.e. from the route whose authorizer verified the token.

It never raises, whatever the event holds: what is missing or malformed is empty, and
:meth:`ExchangeRequestContext.require_authorized_route` refuses a request that did not come through
an issuer's JWT-authorized route before the service sees it (unaudited: nobody was authenticated,
and an unauthenticated flood must not become audit items).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kernel_access.contract import ErrorCode, exchange_route
from kernel_access.errors import KernelAccessError
from kernel_access.exchange.config import ISSUER_NAME_RE

#: ``POST /exchange/``: the route key of every issuer's exchange route, before the issuer's name.
ROUTE_PREFIX: Final = exchange_route("").route_key
MAX_TOKEN_LENGTH: Final = 16384


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _bearer_token(headers: Mapping[str, Any]) -> str | None:
    """The raw token from ``Authorization`` (HTTP API lower-cases header names in payload 2.0)."""
    value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == "authorization"), None)
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_LENGTH:
        return None
    scheme, _, rest = value.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else value.strip()
    return token or None


@dataclass(frozen=True)
class ExchangeRequestContext:
    """What the service may know about one exchange; claims come only from the authorizer context."""

    request_id: str
    #: The issuer named by the matched route (``""`` when the route is not an exchange route).
    issuer_name: str
    #: The JWT authorizer's claims (empty when the request was not JWT-authenticated).
    claims: Mapping[str, object]
    presented_token: str | None
    body: object
    body_is_base64: bool = False
    source_ip: str | None = None
    user_agent: str | None = None
    #: The route key API Gateway matched, as sent (a log key only; the issuer is ``issuer_name``).
    route: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any], *, fallback_request_id: str) -> ExchangeRequestContext:
        """The context of ``event``; ``fallback_request_id`` (Lambda's) when it carries no request id."""
        request_context = _mapping(event.get("requestContext"))
        route_key = request_context.get("routeKey")
        route = route_key if isinstance(route_key, str) else None
        issuer_name = route[len(ROUTE_PREFIX) :] if route and route.startswith(ROUTE_PREFIX) else ""
        claims = _mapping(_mapping(_mapping(request_context.get("authorizer")).get("jwt")).get("claims"))
        http = _mapping(request_context.get("http"))
        source_ip, user_agent = http.get("sourceIp"), http.get("userAgent")
        return cls(
            request_id=str(request_context.get("requestId") or fallback_request_id),
            issuer_name=issuer_name if ISSUER_NAME_RE.fullmatch(issuer_name) else "",
            claims=dict(claims),
            presented_token=_bearer_token(_mapping(event.get("headers"))),
            body=event.get("body"),
            body_is_base64=bool(event.get("isBase64Encoded")),
            source_ip=source_ip[:64] if isinstance(source_ip, str) and source_ip else None,
            user_agent=user_agent[:512] if isinstance(user_agent, str) and user_agent else None,
            route=route,
        )

    def require_authorized_route(self) -> None:
        """INVALID_REQUEST unless an issuer's exchange route matched; INVALID_TOKEN unless its JWT
        authorizer verified the token (a route deployed without it must never exchange anything)."""
        if not self.issuer_name:
            raise KernelAccessError(ErrorCode.INVALID_REQUEST, "unknown route")
        if not self.claims:
            raise KernelAccessError(ErrorCode.INVALID_TOKEN, "request is not JWT-authenticated")
