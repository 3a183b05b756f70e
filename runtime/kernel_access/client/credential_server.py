"""A loopback container-credentials server: how ordinary AWS SDKs use vended credentials.

SDKs read ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and send ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` as
the ``Authorization`` header, but cannot SigV4-sign that request, so they cannot call the
IAM-authorized vending API themselves. This server sits between: it answers SDKs on 127.0.0.1 with
cached credentials and signs its own upstream calls.

Security:

* bound to 127.0.0.1 only, and requests must name a loopback ``Host`` (DNS-rebinding defence);
* a random 256-bit token (``secrets.token_urlsafe(32)``) compared in constant time; a missing,
  repeated, wrong or CR/LF-carrying ``Authorization`` header gets 403 before anything else;
* credentials are refreshed through the refresh engine with ``min_remaining=900``: SDKs treat
  credentials with < 15 minutes left as due for refresh, so we never serve such credentials;
* every connection has a socket timeout (:data:`REQUEST_TIMEOUT_SECONDS`): each connection holds
  one server thread, and without a timeout a local client that connects and sends nothing (or
  stops mid-request, or keeps an idle keep-alive connection) would hold it forever — enough such
  connections exhaust the process. SDKs send their request at once and reconnect when an idle
  keep-alive connection is closed, so they never notice.

Why ``http.server``: it is the stdlib's threaded server, enough for one machine's SDK clients;
nothing here may depend on a web framework.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from kernel_access.client.response import KernelClientError
from kernel_access.client.vending import VendedCredentials
from kernel_access.refresh import Minted, RefreshError, RefreshingValue, utc_now

#: SDKs refresh credentials with less than 15 minutes left; never hand out such credentials.
SDK_REFRESH_WINDOW_SECONDS: Final = 900
CREDENTIALS_PATH: Final = "/credentials"
ENV_FULL_URI: Final = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
ENV_AUTHORIZATION_TOKEN: Final = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105 - a variable name
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})
#: Seconds a connection may stay silent (before or between requests) before it is closed.
REQUEST_TIMEOUT_SECONDS: Final = 10.0


class CredentialServer:
    """Serves ``fetch()``'s credentials to SDKs on ``http://127.0.0.1:<port>/credentials``."""

    def __init__(
        self,
        fetch: Callable[[], VendedCredentials],
        *,
        port: int = 0,
        token: str | None = None,
        min_remaining: float = SDK_REFRESH_WINDOW_SECONDS,
        on_event: Callable[[str, Mapping[str, object]], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        """``request_timeout`` (default :data:`REQUEST_TIMEOUT_SECONDS`) bounds how long one
        connection may stay silent; see the module docstring."""
        if not request_timeout > 0:
            raise ValueError("request_timeout: must be a positive number of seconds")
        self.token = token if token is not None else secrets.token_urlsafe(32)
        if len(self.token) < 32 or any(c in self.token for c in "\r\n"):
            raise ValueError("token: must be at least 32 characters without CR/LF")
        self._fetch = fetch
        self._credentials: RefreshingValue[VendedCredentials] = RefreshingValue(
            self._mint,
            min_remaining=min_remaining,
            name="container-credentials",
            on_event=on_event,
            clock=clock,
        )
        self._clock = clock
        self.requests_served = 0
        self.requests_refused = 0
        self._counter_lock = threading.Lock()
        server = self

        class Handler(_Handler):
            owner = server
            # StreamRequestHandler applies it to the connection; the stdlib handler closes the
            # connection when a read times out.
            timeout = request_timeout

        self._httpd = _LoopbackServer(("127.0.0.1", port), Handler)
        self._thread: threading.Thread | None = None

    def _mint(self) -> Minted[VendedCredentials]:
        issued_at = self._clock()
        credentials = self._fetch()
        return Minted(credentials, expires_at=credentials.expiration, issued_at=issued_at)

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def full_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CREDENTIALS_PATH}"

    def environment(self) -> dict[str, str]:
        """The two variables an SDK needs (the token is a secret: put it only in an environment)."""
        return {ENV_FULL_URI: self.full_uri, ENV_AUTHORIZATION_TOKEN: self.token}

    def prime(self) -> VendedCredentials:
        """Fetch credentials now, so a misconfiguration fails before any SDK asks.

        Raises the kernel client's own error (e.g. ``KernelCallError`` with the API's
        ``error_code``) rather than the refresh engine's wrapper, so the CLI can report it.
        """
        try:
            return self._credentials.get()
        except RefreshError as exc:
            if isinstance(exc.cause, KernelClientError):
                raise exc.cause from None
            raise

    def start(self) -> None:
        """Serve in a background (daemon) thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving and close the listening socket (the port is gone afterwards)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> CredentialServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # --- request handling -----------------------------------------------------------------------

    def authorized(self, values: list[str]) -> bool:
        if len(values) != 1:
            return False
        presented = values[0]
        if "\r" in presented or "\n" in presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.token.encode("utf-8"))

    def respond(self, method: str, path: str, host: str | None, authorization: list[str]) -> tuple[int, Any]:
        """Decide one request: (status, JSON body). Authorization is checked before anything else."""
        if not self.authorized(authorization):
            self._count(refused=True)
            return 403, {"code": "AccessDenied", "message": "missing or invalid authorization token"}
        hostname = (host or "").rsplit(":", 1)[0].strip("[]").lower()
        if hostname not in _LOOPBACK_HOSTS:
            self._count(refused=True)
            return 403, {"code": "AccessDenied", "message": "Host must be a loopback address"}
        if path.split("?", 1)[0] != CREDENTIALS_PATH:
            return 404, {"code": "NotFound", "message": f"only {CREDENTIALS_PATH} is served"}
        if method != "GET":
            return 405, {"code": "MethodNotAllowed", "message": "only GET"}
        try:
            credentials = self._credentials.get()
        except RefreshError as exc:
            # RefreshError's text is secret-free by contract (type name + AWS error code).
            return 503, {"code": "CredentialsUnavailable", "message": str(exc)}
        self._count(refused=False)
        return 200, credentials.container_json()

    def _count(self, *, refused: bool) -> None:
        with self._counter_lock:
            if refused:
                self.requests_refused += 1
            else:
                self.requests_served += 1


class _LineRecorder:
    """A read-only file wrapper that keeps the lines ``readline`` returned (headers only)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.raw.readline(limit)
        if len(self.lines) < 200:
            self.lines.append(line)
        return line

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        return data


class _LoopbackServer(ThreadingHTTPServer):
    #: SDKs in many processes may refresh at once; the stdlib default backlog of 5 resets them.
    request_queue_size = 64
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    owner: CredentialServer
    raw_header_lines: list[bytes]
    protocol_version = "HTTP/1.1"
    # One buffered write per response (flushed by the base class) and no Nagle: otherwise headers
    # and body leave in two segments and delayed ACKs add ~40 ms to each keep-alive request.
    wbufsize = 65536
    disable_nagle_algorithm = True
    server_version = "kernel-access"
    sys_version = ""

    def parse_request(self) -> bool:
        """Record the raw header lines while the stdlib parses them.

        Why: the stdlib's header parser treats a lone CR as a line break and drops it, so
        ``Authorization: <token>\\r`` would look clean afterwards. We take the Authorization
        values from the raw bytes instead, so a CR or LF inside one is seen (and refused).
        """
        recorder = _LineRecorder(self.rfile)
        self.rfile = recorder  # type: ignore[assignment]
        try:
            return super().parse_request()
        finally:
            self.rfile = recorder.raw
            self.raw_header_lines = recorder.lines

    def _authorization_values(self) -> list[str]:
        values = []
        for line in getattr(self, "raw_header_lines", []):
            name, colon, rest = line.partition(b":")
            if not colon or name.strip().lower() != b"authorization":
                continue
            for terminator in (b"\r\n", b"\n"):
                if rest.endswith(terminator):
                    rest = rest[: -len(terminator)]
                    break
            values.append(rest.lstrip(b" \t").decode("latin-1"))
        if getattr(self.headers, "defects", None):
            values.append("\n")  # a malformed header block: refuse, whatever the token
        return values

    def _handle(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= 65536:
            self.rfile.read(int(length))  # drain; nothing we serve takes a body
        status, body = self.owner.respond(
            self.command, self.path, self.headers.get("Host"), self._authorization_values()
        )
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default access log would print to stderr for every SDK refresh."""
