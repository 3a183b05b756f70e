"""A loopback stand-in for CodeArtifact's ``GetAuthorizationToken``, for the domains the template declares.

Why: moto has no CodeArtifact backend, so without this the vending API's ``GET /codeartifact/token``
(and the exchange's CodeArtifact targets) could only fail locally. The functions reach it through
``AWS_ENDPOINT_URL_CODEARTIFACT`` (botocore's per-service endpoint variable), so the handler code is
the code that runs in Lambda.

What it checks, as CodeArtifact does: the SigV4 signature (service ``codeartifact``, the stack's
region) against the secret IAM holds for the calling key; the domain exists (an
``AWS::CodeArtifact::Domain`` of the template) and ``domain-owner`` is the kernel account;
``duration`` is 0 (the token lives as long as the calling session) or 900-43200 seconds.
What it does not: identity policies (``codeartifact:GetAuthorizationToken``,
``sts:GetServiceBearerToken``) are not evaluated, as moto evaluates none; there is no package
repository behind the token.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from kernel_access.local.backend import CallerKey
from kernel_access.local.sigv4 import KnownCredential, SigV4Verifier

_PATH: Final = "/v1/authorization-token"
_MIN_DURATION: Final = 900
_MAX_DURATION: Final = 43200


class LocalCodeArtifact:
    """``GetAuthorizationToken`` on 127.0.0.1 for ``domains`` (name -> owner account id)."""

    def __init__(
        self,
        domains: Mapping[str, str],
        *,
        region: str,
        lookup_key: Callable[[str], CallerKey | None],
    ) -> None:
        self.domains = dict(domains)
        self._lookup_key = lookup_key
        self._verifier = SigV4Verifier(self._known, service="codeartifact", region=region)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: How many tokens were issued (tests and the banner read it).
        self.issued = 0
        self.url = ""

    def _known(self, access_key_id: str) -> KnownCredential | None:
        key = self._lookup_key(access_key_id)
        if key is None or (key.expiration is not None and key.expiration <= datetime.now(UTC)):
            return None
        return KnownCredential(key.secret_access_key, key.session_token, key.user_arn, key.account_id)

    def start(self) -> str:
        handler = type("_BoundHandler", (_Handler,), {"service": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="local-codeartifact",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str | None, dict[str, Any]]:
        """(status, x-amzn-ErrorType or None, JSON body) for one request."""
        split = urlsplit(target)
        if method != "POST" or split.path != _PATH:
            return 404, "ResourceNotFoundException", {"message": f"{method} {split.path} is not emulated"}
        result = self._verifier.verify(method=method, path=target, headers=headers, body=body)
        if not result.ok or result.access_key_id is None:
            return 403, "UnrecognizedClientException", {"message": "The security token is invalid."}
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        domain, owner = query.get("domain", ""), query.get("domain-owner")
        if domain not in self.domains or (owner is not None and owner != self.domains[domain]):
            return 404, "ResourceNotFoundException", {"message": f"Domain {domain!r} not found"}
        try:
            duration = int(query.get("duration", "43200"))
        except ValueError:
            return 400, "ValidationException", {"message": "duration must be an integer"}
        if duration != 0 and not _MIN_DURATION <= duration <= _MAX_DURATION:
            return 400, "ValidationException", {"message": "duration must be 0 or 900-43200 seconds"}
        caller = self._lookup_key(result.access_key_id)
        now = datetime.now(UTC)
        if duration == 0:
            expiration = caller.expiration if caller and caller.expiration else now + timedelta(hours=1)
        else:
            expiration = now + timedelta(seconds=duration)
        self.issued += 1
        token = "local-codeartifact-" + secrets.token_urlsafe(48)
        return 200, None, {"authorizationToken": token, "expiration": expiration.timestamp()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    disable_nagle_algorithm = True
    service: LocalCodeArtifact

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, error_type, payload = self.service.answer(
            self.command, self.path, list(self.headers.items()), body
        )
        data = json.dumps(payload).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the gateway's access log is the one log of a local run."""
