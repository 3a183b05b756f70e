"""Signed HTTP to kernel APIs: pooled keep-alive connections, both timeouts applied, bounded
retries with full-jitter backoff, and logs/metrics/traces that never carry bodies or credentials.

Without them a client either hangs on a dead kernel, gives up on one throttled call, or opens a new
connection per call.
Why urllib3 and not ``requests``: urllib3 ships with botocore, so it costs partners nothing, and its
``PoolManager`` gives thread-safe per-host pools with HTTP keep-alive.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
)

from kernel_access.client.response import (
    KernelCallError,
    KernelConfigError,
    KernelConnectionError,
    KernelResponse,
)
from kernel_access.client.signing import (
    EXECUTE_API_SERVICE,
    SigningCredentials,
    host_header,
    region_from_url,
    sign_request,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

#: Methods that may be repeated without changing the outcome (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: A caller that passes this header promises the kernel de-duplicates, so any method may retry.
IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
IDEMPOTENCY_KEY_HEADER_LOWER: Final = IDEMPOTENCY_KEY_HEADER.lower()
#: Throttling and transient server errors (501/505 will not get better by asking again).
RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: Backoff: attempt n sleeps uniform(0, min(cap, base * 2**(n-1))) ("full jitter").
DEFAULT_BACKOFF_BASE: Final = 0.1
DEFAULT_BACKOFF_CAP: Final = 5.0
#: Longest Retry-After we wait for; a server asking for more is not retried (we would only be early).
DEFAULT_MAX_RETRY_AFTER: Final = 20.0

CredentialsSource = Callable[[], SigningCredentials]


class SignedTransport:
    """Sends SigV4-signed requests. Thread-safe: share one instance between threads."""

    def __init__(
        self,
        credentials: CredentialsSource,
        *,
        region: str,
        connect_timeout: float = 30.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        service: str = EXECUTE_API_SERVICE,
        logger: Logger | logging.Logger | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        pool_maxsize: int = 32,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts: must be at least 1")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("connect_timeout/read_timeout: must be positive")
        self._credentials = credentials
        self.region = region
        self.service = service
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_attempts = max_attempts
        self._logger = logger
        self._metrics = metrics
        self._tracer = tracer
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        # Jitter needs no cryptographic randomness, but a private generator keeps threads apart.
        self._random = random.Random()  # noqa: S311 - backoff jitter, not a secret
        self._random_lock = threading.Lock()
        # block=False: a burst beyond pool_maxsize opens extra (unpooled) connections instead of
        # queueing callers; keep-alive still applies to the pooled ones.
        self._pool = urllib3.PoolManager(num_pools=16, maxsize=pool_maxsize, block=False, retries=False)
        self._default_timeout = urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout)
        #: Whether a call has anything to report to: without logger, metrics and tracer the
        #: per-call observation (status class, path, field dicts) is skipped outright.
        self._observed = logger is not None or metrics is not None or tracer is not None

    def close(self) -> None:
        self._pool.clear()

    # --- the call -------------------------------------------------------------------------------

    def request(  # noqa: PLR0917 - mirrors KernelClient.call
        self,
        base_url: str,
        endpoint: str,
        method: str = "POST",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> KernelResponse:
        method = method.upper()
        target = _target(base_url)
        url = f"{target.base}/{endpoint.lstrip('/')}"
        _check_endpoint(endpoint)
        payload, send_headers = encode_body(body, headers)
        region = target.region if target.region is not None else self.region
        if connect_timeout is None and read_timeout is None:
            timeout = self._default_timeout  # urllib3 clones it per request; sharing is safe
        else:
            timeout = urllib3.Timeout(
                connect=connect_timeout if connect_timeout is not None else self.connect_timeout,
                read=read_timeout if read_timeout is not None else self.read_timeout,
            )
        may_retry = method in IDEMPOTENT_METHODS or any(
            k.lower() == IDEMPOTENCY_KEY_HEADER_LOWER for k in send_headers
        )
        observed = self._observed
        with self._subsegment(method, endpoint) as subsegment:
            attempt = 0
            while True:
                attempt += 1
                signed = sign_request(
                    self._credentials(),
                    method=method,
                    url=url,
                    body=payload,
                    headers=send_headers,
                    region=region,
                    service=self.service,
                    host=target.host,
                )
                started = time.perf_counter()
                try:
                    raw = self._pool.request(
                        method,
                        url,
                        body=payload,
                        headers=signed,
                        timeout=timeout,
                        retries=False,
                        redirect=False,
                        preload_content=True,
                    )
                except HTTPError as exc:
                    duration = time.perf_counter() - started
                    never_sent = isinstance(exc, NewConnectionError | ConnectTimeoutError)
                    self._observe(
                        endpoint=endpoint,
                        method=method,
                        status=None,
                        duration=duration,
                        attempt=attempt,
                        subsegment=subsegment,
                        error=type(exc).__name__,
                    )
                    # A connection that was never established carried no request: safe for any method.
                    if attempt < self.max_attempts and (may_retry or never_sent):
                        self._sleep(self._backoff(attempt))
                        continue
                    raise KernelConnectionError(
                        f"{method} {endpoint}: no response after {attempt} attempt(s): {type(exc).__name__}",
                        attempts=attempt,
                    ) from exc
                duration = time.perf_counter() - started
                status = int(raw.status)
                response_headers: Mapping[str, str] = raw.headers
                if observed:
                    self._observe(
                        endpoint=endpoint,
                        method=method,
                        status=status,
                        duration=duration,
                        attempt=attempt,
                        subsegment=subsegment,
                    )
                if status < 400:
                    return KernelResponse(status, response_headers, bytes(raw.data), duration, attempt)
                if status in RETRYABLE_STATUSES and may_retry and attempt < self.max_attempts:
                    delay = self._retry_delay(attempt, response_headers)
                    if delay is not None:
                        self._sleep(delay)
                        continue
                raise KernelCallError.from_response(
                    status, response_headers, bytes(raw.data), attempts=attempt
                )

    # --- retries --------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * (2 ** (attempt - 1)))
        with self._random_lock:
            return self._random.uniform(0.0, ceiling)

    def _retry_delay(self, attempt: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up now."""
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is None:
            return self._backoff(attempt)
        if retry_after > self._max_retry_after:
            return None
        return retry_after

    # --- observability --------------------------------------------------------------------------

    def _metric_dimensions(self) -> dict[str, str]:
        """The caller's default dimensions plus its ``service`` (single_metric would otherwise take
        the service from the environment, splitting one service's metrics in two)."""
        assert self._metrics is not None
        dimensions = {str(k): str(v) for k, v in self._metrics.provider.default_dimensions.items()}
        service = self._metrics.service
        if service:
            dimensions["service"] = str(service)
        return dimensions

    def _subsegment(self, method: str, endpoint: str) -> contextlib.AbstractContextManager[Any]:
        if self._tracer is None:
            return _NO_SUBSEGMENT  # a shared no-op: no generator-based context manager per call
        return self._tracer.provider.in_subsegment(f"## kernel {method} {_path_only(endpoint)}")

    def _observe(
        self,
        *,
        endpoint: str,
        method: str,
        status: int | None,
        duration: float,
        attempt: int,
        subsegment: Any,
        error: str | None = None,
    ) -> None:
        status_class = f"{status // 100}xx" if status is not None else "error"
        path = _path_only(endpoint)  # query strings may carry identifiers; keep logs to the path
        if self._logger is not None and _logs_info(self._logger):
            fields: dict[str, object] = {
                "endpoint": path,
                "method": method,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "attempt": attempt,
            }
            if error:
                fields["error"] = error
            self._logger.info("kernel call", extra=fields)
        if self._metrics is not None:
            from aws_lambda_powertools.metrics import MetricUnit, single_metric

            # StatusClass is a per-call dimension, so Latency goes out as its own EMF record;
            # Retries joins the caller's metric set and is flushed with it.
            with single_metric(
                name="Latency",
                unit=MetricUnit.Milliseconds,
                value=duration * 1000,
                namespace=self._metrics.namespace,
                default_dimensions=self._metric_dimensions(),
            ) as metric:
                metric.add_dimension(name="StatusClass", value=status_class)
            if attempt > 1:
                self._metrics.add_metric(name="Retries", unit=MetricUnit.Count, value=1)
        if subsegment is not None:
            subsegment.put_annotation("kernel_status", status if status is not None else 0)
            subsegment.put_metadata("kernel_call", {"endpoint": path, "method": method, "attempt": attempt})


_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_NO_SUBSEGMENT: Final = contextlib.nullcontext(None)


@dataclass(frozen=True)
class _Target:
    """What a ``base_url`` resolves to, worked out once per base URL instead of once per call."""

    base: str  # base_url without trailing slashes
    host: str  # the Host header value SigV4 signs and urllib3 sends
    region: str | None  # the execute-api region in the host name, if any


@functools.lru_cache(maxsize=64)
def _target(base_url: str) -> _Target:
    """Validate ``base_url`` (plain ``http://`` only to loopback: a signed request carries the
    session token in a header, it must never cross a network unencrypted) and derive its parts."""
    scheme = base_url.split("://", 1)[0].lower() if "://" in base_url else ""
    parts = urlsplit(base_url)
    if scheme == "http":
        if (parts.hostname or "") not in _LOOPBACK_HOSTS:
            raise KernelConfigError("base_url: must be https:// (http:// only for 127.0.0.1/localhost)")
    elif scheme != "https":
        raise KernelConfigError("base_url: must start with https://")
    base = base_url.rstrip("/")
    return _Target(base, host_header(parts.scheme, parts.netloc), region_from_url(base, "") or None)


def _check_endpoint(endpoint: str) -> None:
    if endpoint.startswith(("http://", "https://")) or "://" in endpoint.split("?", 1)[0]:
        raise KernelConfigError("endpoint: must be a path, not a URL")


def join_url(base_url: str, endpoint: str) -> str:
    """``base_url`` + ``endpoint``; plain ``http://`` only to loopback (a signed request carries the
    session token in a header: it must never cross a network unencrypted)."""
    target = _target(base_url)
    _check_endpoint(endpoint)
    return f"{target.base}/{endpoint.lstrip('/')}"


def encode_body(body: Any, headers: Mapping[str, str] | None) -> tuple[bytes | None, dict[str, str]]:
    """JSON-encode ``body`` (bytes/str pass through) and set ``Content-Type`` when absent."""
    send = dict(headers or {})
    if body is None:
        return None, send
    if isinstance(body, bytes):
        payload = body
    elif isinstance(body, str):
        payload = body.encode("utf-8")
    else:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if not any(k.lower() == "content-type" for k in send):
        send["Content-Type"] = "application/json"
    return payload, send


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date); ``None`` when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _logs_info(logger: Logger | logging.Logger) -> bool:
    """Whether an INFO record would be emitted, so a quiet logger costs no field building.
    (Powertools' ``Logger`` forwards ``isEnabledFor`` to its stdlib logger at run time.)"""
    enabled = getattr(logger, "isEnabledFor", None)
    return bool(enabled(logging.INFO)) if enabled is not None else True


def _path_only(endpoint: str) -> str:
    return endpoint.split("?", 1)[0]
