"""Local emulator: what the emulated API Gateway costs on top of the handler, and what 32 clients get.

Both figures run the example kernel stack (``cdk.out``; synthesised into a temporary directory if the
shared one is stale) in one in-process ``LocalKernel``, against the same moto server, in the same run:

- Per request, signed ``GET /credentials`` through the emulator (client SigV4 signing, loopback HTTP
  keep-alive, SigV4 verification against moto's IAM, payload-2.0 event, response mapping) against a
  direct invocation of the same vending handler with the same event and authorizer context (what
  Lambda would run). Both do the same moto calls (rate limit, revocation, STS, audit), so the ratio is
  the emulated gateway's overhead. Interleaved rounds; median per request.
- Throughput with 32 concurrent clients against one sequential client: the emulator runs invocations
  one at a time (one execution environment, see ``kernel_access.local.functions``), so the goal is only
  that concurrency costs nothing (ratio ~1), not that it scales.

The per-caller rate limit is raised for the run (``--set`` of the function environment), so the
limiter's refusals are not what is measured; the limiter's DynamoDB update still runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from kernel_access import settings
from kernel_access.local.gateway import new_request_id
from kernel_access.local.server import LocalKernel, LocalOptions
from kernel_access.local.template import is_stale, synthesize

from benchmarks.harness import Result
from tests.e2e.load import run_load

PROJECT = Path(__file__).resolve().parents[1]
ROUNDS = 5
PER_ROUND = 20
LOAD_REQUESTS = 256
LOAD_CLIENTS = 32
QUERY = "role=kernel-reader&duration=900"


def _assembly() -> Path:
    shared = PROJECT / "cdk.out"
    if not is_stale(shared, PROJECT):
        return shared
    out = Path(tempfile.mkdtemp(prefix="bench-local-cdk-out-"))
    synthesize(PROJECT, out)
    return out


def _direct(kernel: LocalKernel, creds: dict[str, str]) -> None:
    """One invocation of the vending handler with the event the gateway would have built."""
    gateway, aws, function = kernel.gateway, kernel.aws, kernel.vending_function()
    if gateway is None or aws is None or function is None:
        raise RuntimeError("the local kernel is not running or has no vending function")
    api = gateway.apis[0]
    route = next(r for r in api.routes if r.route_key == "GET /credentials")
    key = aws.lookup_access_key(creds["AWS_ACCESS_KEY_ID"])
    assert key is not None
    event = gateway.build_event(
        api=api,
        route=route,
        method="GET",
        raw_path="/credentials",
        raw_query=QUERY,
        headers=[("host", f"127.0.0.1:{api.port}"), ("user-agent", "bench")],
        body=b"",
        source_ip="127.0.0.1",
        request_id=new_request_id(),
    )
    event["requestContext"]["authorizer"] = gateway.iam_context(creds["AWS_ACCESS_KEY_ID"], key)
    invocation = gateway.runner.invoke(function, event)
    if invocation.error is not None or invocation.result["statusCode"] != 200:
        raise RuntimeError(f"direct invocation failed: {invocation.error or invocation.result['body']}")


def _per_request(kernel: LocalKernel) -> Result:
    identity = kernel.partners[0].identity
    assert kernel.aws is not None
    caller = kernel.aws.partner_session(identity, "bench-seq").environment()
    samples: dict[str, list[float]] = {"emulator": [], "direct": []}
    for _ in range(3):  # warm: handler import, policy load, connection
        _direct(kernel, caller)
        run_load(kernel.vending_url, [caller], total=1, query=QUERY)
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = run_load(kernel.vending_url, [caller], total=PER_ROUND, query=QUERY)
        samples["emulator"].append((time.perf_counter() - started) / PER_ROUND)
        if result.statuses != {200: PER_ROUND}:
            raise RuntimeError(f"emulator run not clean: {result.summary()}")
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            _direct(kernel, caller)
        samples["direct"].append((time.perf_counter() - started) / PER_ROUND)
    emulator, direct = (statistics.median(samples[k]) * 1000 for k in ("emulator", "direct"))
    return Result(
        "local: signed GET /credentials, emulator vs direct handler call",
        emulator,
        direct,
        "ms",
        "ratio <= 1.5",
        f"gateway overhead {emulator - direct:.1f} ms/request (sign, HTTP, SigV4 verify, event, mapping); "
        "both include the handler's 4 moto calls",
    )


def _concurrency(kernel: LocalKernel) -> list[Result]:
    assert kernel.aws is not None
    identity = kernel.partners[0].identity
    sessions = [
        kernel.aws.partner_session(identity, f"bench-{i:02d}").environment() for i in range(LOAD_CLIENTS)
    ]
    single = run_load(kernel.vending_url, sessions[:1], total=LOAD_REQUESTS // 4, query=QUERY)
    loaded = run_load(kernel.vending_url, sessions, total=LOAD_REQUESTS, query=QUERY)
    for result in (single, loaded):
        if result.statuses != {200: result.requests} or result.transport_errors:
            raise RuntimeError(f"load run not clean: {result.summary()}")
    return [
        Result(
            f"local: requests/s, {LOAD_CLIENTS} concurrent clients vs 1 client",
            loaded.rps,
            single.rps,
            "req/s",
            "ratio >= 0.9 (invocations are serial: no scaling, no collapse)",
            f"{LOAD_CLIENTS} clients: p50 {loaded.p50_ms:.0f} ms, p99 {loaded.p99_ms:.0f} ms "
            f"(queueing for the one execution environment); 1 client: p50 {single.p50_ms:.0f} ms",
        )
    ]


def run() -> list[Result]:
    host_environment = dict(os.environ)
    kernel = LocalKernel(
        LocalOptions(
            project_dir=PROJECT,
            cdk_out=_assembly(),
            synth=False,
            function_environment={settings.RATE_LIMIT_REQUESTS: "1000000"},
        )
    )
    try:
        kernel.start()
        rows = [_per_request(kernel)]
        rows.extend(_concurrency(kernel))
    finally:
        kernel.stop()
        # Invocations swap os.environ for the function's; the next benchmark needs the host's back.
        os.environ.clear()
        os.environ.update(host_environment)
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}: {row.figure:.4g} vs {row.baseline:.4g} {row.unit}", end=" ")
        print(f"(ratio {row.ratio:.3f}; goal {row.goal}) {row.note}")
