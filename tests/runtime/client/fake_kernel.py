"""A local stand-in for an IAM-authorized API Gateway endpoint: verifies SigV4 with
``kernel_access.local.sigv4`` against secrets the test registered, then dispatches to routes.

Shared by the client tests and ``benchmarks/bench_client.py``. Paths under ``/open/`` skip
verification (the unsigned baseline of the overhead benchmark).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kernel_access.local.sigv4 import KnownCredential, SigV4Result, SigV4Verifier


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    auth: SigV4Result | None
    raw_query: str = ""


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request], Reply]


def echo(request: Request) -> Reply:
    return Reply(
        200,
        {
            "access_key_id": request.auth.access_key_id if request.auth else None,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode() if request.body else None,
        },
    )


class FakeKernel:
    def __init__(self, *, region: str = "us-east-1") -> None:
        self.known: dict[str, KnownCredential] = {}
        #: Consulted for keys not in ``known`` (e.g. keys moto minted for a process we cannot hook).
        self.fallback: Callable[[str], KnownCredential | None] | None = None
        self.verifier = SigV4Verifier(self._lookup, region=region)
        self.routes: dict[str, Route] = {"/echo": echo, "/open/echo": echo}
        self.hits: Counter[str] = Counter()
        self.rejections: list[SigV4Result] = []
        self.seen_keys: Counter[str] = Counter()
        self._lock = threading.Lock()
        owner = self

        class Handler(_Handler):
            kernel = owner

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _lookup(self, access_key: str) -> KnownCredential | None:
        known = self.known.get(access_key)
        if known is None and self.fallback is not None:
            known = self.fallback(access_key)
        return known

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def trust(
        self, access_key: str, secret: str, token: str | None = None, principal_arn: str | None = None
    ) -> None:
        self.known[access_key] = KnownCredential(secret, token, principal_arn)

    def start(self) -> FakeKernel:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeKernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        parts = urlsplit(target)
        with self._lock:
            self.hits[parts.path] += 1
        auth: SigV4Result | None = None
        if not parts.path.startswith("/open/"):
            auth = self.verifier.verify(method=method, path=target, headers=headers, body=body, scheme="http")
            if not auth.ok:
                with self._lock:
                    self.rejections.append(auth)
                return Reply(
                    403, {"error_code": "ACCESS_DENIED", "error": auth.reason, "request_id": "req-denied"}
                )
            with self._lock:
                self.seen_keys[auth.access_key_id or ""] += 1
        route = self.routes.get(parts.path)
        if route is None:
            return Reply(
                404, {"error_code": "INVALID_REQUEST", "error": "no such route", "request_id": "req-404"}
            )
        request = Request(
            method, parts.path, dict(parse_qsl(parts.query)), dict(headers), body, auth, parts.query
        )
        return route(request)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # 16 client threads must not overflow the listen backlog
    daemon_threads = True
    block_on_close = False


class _Handler(BaseHTTPRequestHandler):
    kernel: FakeKernel
    protocol_version = "HTTP/1.1"
    # One buffered write per response and no Nagle: otherwise headers and body leave in two
    # segments and delayed ACKs add ~40 ms to every keep-alive request.
    wbufsize = 65536
    disable_nagle_algorithm = True

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.kernel.handle(self.command, self.path, list(self.headers.items()), body)
        except Exception as exc:  # a test route bug becomes a visible 500
            reply = Reply(500, {"error_code": "INTERNAL_ERROR", "error": repr(exc)})
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass
