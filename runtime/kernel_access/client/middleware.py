"""Powertools event-handler middleware that gives every route one shared ``KernelClient``.

``KernelClientMiddleware`` / ``get_kernel_client``: the client is built once per
execution environment (so its cached kernel credentials and pooled connections survive across
invocations) and placed in ``app.context["kernel_client"]`` for each request::

    app = APIGatewayHttpResolver()
    app.use(middlewares=[KernelClientMiddleware(KernelClient.from_env)])

    @app.get("/orders")
    def orders():
        return get_kernel_client(app).call(KERNEL_API, "/orders", method="GET").json()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.event_handler.middlewares import BaseMiddlewareHandler, NextMiddleware

from kernel_access.client.kernel_client import KernelClient

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import Response

CONTEXT_KEY: Final = "kernel_client"


class KernelClientMiddleware(BaseMiddlewareHandler):  # type: ignore[type-arg]
    """Puts one shared client into the request context.

    ``client`` is either a ready ``KernelClient`` or a zero-argument factory (e.g.
    ``KernelClient.from_env``) called once, on the first request, under a lock — so a cold start
    that never reaches a route never reads configuration, and concurrent first requests (response
    streaming, threads) still build exactly one client.
    """

    def __init__(self, client: KernelClient | Callable[[], KernelClient]) -> None:
        super().__init__()
        self._client: KernelClient | None = client if isinstance(client, KernelClient) else None
        self._factory: Callable[[], KernelClient] | None = (
            None if isinstance(client, KernelClient) else client
        )
        self._lock = threading.Lock()

    @property
    def client(self) -> KernelClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self._factory is not None
                    self._client = self._factory()
        return self._client

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response:  # type: ignore[type-arg]
        app.append_context(**{CONTEXT_KEY: self.client})
        return next_middleware(app)


def get_kernel_client(app: Any) -> KernelClient:
    """The client the middleware placed in ``app.context``; ``LookupError`` if it is not installed."""
    client = app.context.get(CONTEXT_KEY)
    if not isinstance(client, KernelClient):
        raise LookupError(
            "no kernel client in the request context: add KernelClientMiddleware to app.use(...) "
            "or to the route's middlewares"
        )
    return client
