"""The loopback server's own rules: token, Host, CR/LF, refresh before the SDK window."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from kernel_access.client.credential_server import CredentialServer
from kernel_access.client.response import KernelCallError
from kernel_access.client.vending import VendedCredentials


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def vendor(clock: Clock, lifetime: timedelta) -> tuple[list[VendedCredentials], object]:
    issued: list[VendedCredentials] = []

    def fetch() -> VendedCredentials:
        creds = VendedCredentials(
            f"ASIA{len(issued):016d}", "secret", "token", clock.now + lifetime, "222222222222"
        )
        issued.append(creds)
        return creds

    return issued, fetch


def test_refreshes_before_the_sdk_window() -> None:
    clock = Clock()
    issued, fetch = vendor(clock, timedelta(hours=1))
    server = CredentialServer(fetch, clock=clock)  # type: ignore[arg-type]
    try:
        auth = [server.token]
        status, body = server.respond("GET", "/credentials", "127.0.0.1:1", auth)
        assert (status, body["AccessKeyId"]) == (200, issued[0].access_key_id)
        assert body["Token"] == "token"
        assert body["Expiration"] == "2026-11-23T10:00:00Z"
        clock.now += timedelta(minutes=30)
        assert (
            server.respond("GET", "/credentials", "127.0.0.1:1", auth)[1]["AccessKeyId"]
            == issued[0].access_key_id
        )
        # 44 minutes in, 16 left: the refresh is due (15-minute window + the engine's margin).
        clock.now += timedelta(minutes=14)
        status, body = server.respond("GET", "/credentials", "127.0.0.1:1", auth)
        assert status == 200
        assert len(issued) == 2
        assert body["AccessKeyId"] == issued[1].access_key_id
        remaining = datetime.fromisoformat(body["Expiration"].replace("Z", "+00:00")) - clock.now
        assert remaining > timedelta(minutes=15)
    finally:
        server.shutdown()


def test_never_serves_credentials_inside_the_sdk_window() -> None:
    clock = Clock()
    _, fetch = vendor(clock, timedelta(minutes=14))
    server = CredentialServer(fetch, clock=clock)  # type: ignore[arg-type]
    try:
        status, body = server.respond("GET", "/credentials", "localhost", [server.token])
        assert status == 503
        assert "secret" not in str(body)
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "authorization",
    [[], ["wrong"], ["{token}\r\nX-Injected: 1"], ["{token}\n"], ["{token}", "{token}"], ["{token}x"]],
)
def test_refuses_bad_tokens(authorization: list[str]) -> None:
    clock = Clock()
    issued, fetch = vendor(clock, timedelta(hours=1))
    server = CredentialServer(fetch, clock=clock)  # type: ignore[arg-type]
    try:
        presented = [value.format(token=server.token) for value in authorization]
        status, _ = server.respond("GET", "/credentials", "127.0.0.1", presented)
        assert status == 403
        assert issued == []  # refused before any credential was fetched
        assert server.requests_refused == 1
    finally:
        server.shutdown()


def test_refuses_non_loopback_host_and_other_paths() -> None:
    clock = Clock()
    _, fetch = vendor(clock, timedelta(hours=1))
    server = CredentialServer(fetch, clock=clock)  # type: ignore[arg-type]
    try:
        assert server.respond("GET", "/credentials", "evil.example.com", [server.token])[0] == 403
        assert server.respond("GET", "/other", "127.0.0.1", [server.token])[0] == 404
        assert server.respond("POST", "/credentials", "127.0.0.1", [server.token])[0] == 405
    finally:
        server.shutdown()


def _raw_exchange(port: int, authorization_line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        request = (
            f"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization_line}\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        return sock.recv(4096).decode()


@pytest.mark.parametrize("suffix", ["\rx", "\r", "\rInjected: 1"])
def test_cr_in_header_over_the_wire_is_refused(suffix: str) -> None:
    clock = Clock()
    _, fetch = vendor(clock, timedelta(hours=1))
    with CredentialServer(fetch, clock=clock) as server:  # type: ignore[arg-type]
        assert _raw_exchange(server.port, f"Authorization: {server.token}").startswith("HTTP/1.1 200")
        reply = _raw_exchange(server.port, f"Authorization: {server.token}{suffix}")
        assert reply.startswith("HTTP/1.1 403")
        assert "AccessKeyId" not in reply
        assert server.full_uri.startswith("http://127.0.0.1:")
        assert server.environment()["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == server.token
        assert server._httpd.server_address[0] == "127.0.0.1"


def test_prime_surfaces_the_kernel_error() -> None:
    def fetch() -> VendedCredentials:
        raise KernelCallError(403, "POLICY_DENY", "req-1", b"{}")

    server = CredentialServer(fetch)
    try:
        with pytest.raises(KernelCallError) as caught:
            server.prime()
        assert caught.value.error_code == "POLICY_DENY"
    finally:
        server.shutdown()


@pytest.mark.parametrize("sent", [b"", b"GET /credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_a_silent_or_slow_client_is_disconnected(sent: bytes) -> None:
    """A local client that connects and sends nothing (or stops mid-headers) must not hold a
    server thread forever: the server closes the connection after its socket timeout."""
    clock = Clock()
    _, fetch = vendor(clock, timedelta(hours=1))
    with CredentialServer(fetch, clock=clock, request_timeout=0.5) as server:  # type: ignore[arg-type]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(sent)
            started = time.monotonic()
            try:
                data = sock.recv(4096)
            except TimeoutError:
                pytest.fail("the server still holds the connection after 5 s")
            assert time.monotonic() - started < 4
            assert b"AccessKeyId" not in data  # closed (EOF), or a 408 at most; never credentials
        # and the server still serves well-behaved clients
        assert _raw_exchange(server.port, f"Authorization: {server.token}").startswith("HTTP/1.1 200")


def test_default_request_timeout_is_bounded() -> None:
    from kernel_access.client.credential_server import REQUEST_TIMEOUT_SECONDS

    clock = Clock()
    _, fetch = vendor(clock, timedelta(hours=1))
    server = CredentialServer(fetch, clock=clock)  # type: ignore[arg-type]
    try:
        assert 0 < server._httpd.RequestHandlerClass.timeout == REQUEST_TIMEOUT_SECONDS <= 60
    finally:
        server.shutdown()
