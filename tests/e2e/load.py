"""Signed-request load against a running emulator (used by test_load.py and benchmarks/bench_local.py).

Each client thread is one partner session (its own caller ARN, so the per-caller rate limit of the
example config - 100 requests / 60 s - is never the thing being measured) with its own kept-alive
HTTP connection, like an SDK's pooled connection.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@dataclass
class LoadResult:
    requests: int
    clients: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    transport_errors: list[str]
    request_ids: list[str] = field(default_factory=list)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def summary(self) -> str:
        return (
            f"{self.requests} signed GET /credentials, {self.clients} concurrent clients: "
            f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, {self.rps:.1f} requests/s, "
            f"statuses {dict(sorted(self.statuses.items()))}, transport errors {len(self.transport_errors)}"
        )


def run_load(
    url: str,
    sessions: list[Mapping[str, str]],
    *,
    total: int,
    query: str = "role=kernel-reader&duration=900",
    region: str = "us-east-1",
) -> LoadResult:
    """Send ``total`` signed requests spread over one thread per session."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = f"{parts.path.rstrip('/')}/credentials?{query}"
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    request_ids: list[str] = []
    per_client = [
        total // len(sessions) + (1 if i < total % len(sessions) else 0) for i in range(len(sessions))
    ]

    def client(index: int) -> None:
        creds = sessions[index]
        signer = SigV4Auth(
            Credentials(
                creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"], creds["AWS_SESSION_TOKEN"]
            ),
            "execute-api",
            region,
        )
        connection = http.client.HTTPConnection(host, port, timeout=60)
        for _ in range(per_client[index]):
            request = AWSRequest(method="GET", url=f"http://{host}:{port}{path}")
            started = time.perf_counter()
            signer.add_auth(request)
            try:
                connection.request("GET", path, headers=dict(request.headers.items()))
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=60)
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                request_ids.append(response.getheader("apigw-requestid") or "")
        connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        list(pool.map(client, range(len(sessions))))
    seconds = time.perf_counter() - started
    return LoadResult(total, len(sessions), seconds, latencies, statuses, errors, request_ids)
