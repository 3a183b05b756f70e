"""One vending request as the service sees it: the API Gateway event, parsed once.

:meth:`VendingRequestContext.from_event` is the only code that reads a vending event. It never
raises, whatever the event holds (the handler also answers events API Gateway never sends, e.g. a
direct ``lambda:InvokeFunction``): a fact that is missing or malformed is ``None``, and the service
refuses what it needs and cannot have — no caller is ACCESS_DENIED, a malformed query string is
INVALID_REQUEST — after the refusal has been counted and audited like every other.

What it reads, and from where:

- the request id: ``requestContext.requestId`` (the correlation id of logs, audit records and STS
  session names), else a fresh ``local-<uuid>``;
- the caller: ONLY the IAM authorizer context (:mod:`kernel_access.vending.identity`);
- the connection: ``requestContext.http.sourceIp`` and ``userAgent`` (bounded, printable);
- the query string: ``rawQueryString`` as sent, else ``queryStringParameters``; it is validated per
  route by :mod:`kernel_access.vending.request`, after the rate limit (so malformed requests spend
  the caller's budget too).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.vending.identity import CallerIdentity, caller_from_iam

MAX_USER_AGENT_LENGTH: Final = 512
_REQUEST_ID_RE: Final = re.compile(r"^[\x21-\x7e]{1,128}$")
_PRINTABLE_RE: Final = re.compile(r"[^\x20-\x7e]")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class VendingRequestContext:
    """What the service may know about one request; built by :meth:`from_event` only."""

    #: API Gateway's request id when it is one (printable, at most 128 characters), else ``local-<uuid>``.
    request_id: str
    #: The route served: a contract route key (``GET /credentials``) or ``contract.UNKNOWN_ROUTE``.
    #: The handler names it from the route it matched, never from the event.
    route: str
    #: The caller the IAM authorizer verified; ``None`` when the event carries none.
    caller: CallerIdentity | None
    source_ip: str | None
    user_agent: str | None
    #: ``rawQueryString`` when it is a string (``None`` otherwise).
    raw_query: str | None
    #: ``queryStringParameters`` as pairs (a value that is not a string reads as ``""``), read only
    #: when ``raw_query`` is ``None``; ``None`` when it is not an object.
    query_pairs: tuple[tuple[str, str], ...] | None

    @classmethod
    def from_event(cls, event: object, *, route: str) -> VendingRequestContext:
        """The context of ``event`` served as ``route``; never raises (see the module docstring)."""
        mapping = _mapping(event)
        request_context = _mapping(mapping.get("requestContext"))
        http = _mapping(request_context.get("http"))
        source_ip = http.get("sourceIp")
        user_agent = http.get("userAgent")
        ip = source_ip[:64] if isinstance(source_ip, str) and source_ip else None
        agent = (
            _PRINTABLE_RE.sub("?", user_agent[:MAX_USER_AGENT_LENGTH])
            if isinstance(user_agent, str) and user_agent
            else None
        )
        iam = _mapping(_mapping(request_context.get("authorizer")).get("iam"))
        raw = mapping.get("rawQueryString")
        given = mapping.get("queryStringParameters") or {}
        pairs = (
            tuple((str(k), v if isinstance(v, str) else "") for k, v in given.items())
            if isinstance(given, Mapping)
            else None
        )
        request_id = request_context.get("requestId")
        return cls(
            request_id=request_id
            if isinstance(request_id, str) and _REQUEST_ID_RE.fullmatch(request_id)
            else f"local-{uuid.uuid4().hex}",
            route=route,
            caller=caller_from_iam(iam, source_ip=ip, user_agent=agent),
            source_ip=ip,
            user_agent=agent,
            raw_query=raw if isinstance(raw, str) else None,
            query_pairs=pairs,
        )

    def authenticated_caller(self) -> CallerIdentity:
        """The verified caller, or ACCESS_DENIED when the authorizer context is missing or malformed."""
        if self.caller is None:
            raise KernelAccessError(ErrorCode.ACCESS_DENIED, "request is not IAM-authenticated")
        return self.caller
