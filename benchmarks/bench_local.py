"""Local emulator: what the emulated API Gateway costs on top of the handler, and what 32 clients get.

Both figures run the example kernel stack (``cdk.out``; synthesised into a temporary directory if the
shared one is stale) in one in-process ``LocalKernel``, against the same moto server, in the same run:

- Per request, signed ``GET /credentials`` through the emulator (client SigV4 signing, loopback HTTP
  keep-alive, SigV4 verification against moto's IAM, payload-2.0 event, hand-off to a warm execution
  environment process, response mapping) against a direct call of the same vending handler in this
  process with the same event and authorizer context (what Lambda would run). Both do the same moto
  calls (rate limit, revocation, STS, audit), so the ratio is the emulation's overhead. Interleaved
  rounds; median per request.
- Throughput with 32 concurrent clients against one sequential client (load generated from another
  process): invocations run in up to 4 execution environments per function (worker processes, see
  ``kernel_access.local.functions``), but the gateway and the moto server that answers every AWS call
  share the emulator's one process (one GIL). Measured: that process is the bound, so the goal is that
  32 clients get the same throughput as one (no collapse, no errors), with latency = queueing.

- Per request with local IAM enforced against not enforced (``--no-iam``), on the same running kernel,
  interleaved rounds: enforcement adds the gateway's ``execute-api:Invoke`` evaluation and the STS
  guard's evaluation of the handler's ``AssumeRole`` (trust and identity policies of the target role).

The per-caller rate limit is raised for the run (``--set`` of the function environment), so the
limiter's refusals are not what is measured; the limiter's DynamoDB update still runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kernel_access import aws_clients, settings
from kernel_access.local.gateway import new_request_id
from kernel_access.local.server import LocalKernel, LocalOptions
from kernel_access.local.template import is_stale, synthesize

from benchmarks.harness import Result
from tests.e2e.load import LoadResult, run_load

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
    """One call of the vending handler, in this process, with the event the gateway would build."""
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
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") != function.name:
        os.environ.clear()
        os.environ.update(function.environment)
        # Sessions built by earlier benchmarks in this process hold their credentials and
        # endpoints; the local STS (IAM enforced) refuses keys it did not issue.
        aws_clients.reset_for_tests()
    result = function.load()(event, function.context())
    if result["statusCode"] != 200:
        raise RuntimeError(f"direct invocation failed: {result['body']}")


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
        f"emulation overhead {emulator - direct:.1f} ms/request (sign, HTTP, SigV4 verify, event, "
        "hand-off to the environment process, mapping); both include the handler's moto calls",
    )


def _set_iam(kernel: LocalKernel, enforced: bool) -> None:
    """Switch local IAM on or off in the running kernel (gateway check and STS guard together)."""
    assert kernel.gateway is not None
    assert kernel.aws is not None
    assert kernel.aws.guard is not None, "the kernel must start with local IAM on"
    kernel.gateway.iam = kernel.iam if enforced else None
    kernel.aws.guard.enabled = enforced


def _iam_overhead(kernel: LocalKernel) -> Result:
    identity = kernel.partners[0].identity
    assert kernel.aws is not None
    caller = kernel.aws.partner_session(identity, "bench-iam").environment()
    samples: dict[bool, list[float]] = {True: [], False: []}
    run_load(kernel.vending_url, [caller], total=3, query=QUERY)
    try:
        for _ in range(ROUNDS):
            for enforced in (True, False):
                _set_iam(kernel, enforced)
                started = time.perf_counter()
                result = run_load(kernel.vending_url, [caller], total=PER_ROUND, query=QUERY)
                samples[enforced].append((time.perf_counter() - started) / PER_ROUND)
                if result.statuses != {200: PER_ROUND}:
                    raise RuntimeError(f"IAM run (enforced={enforced}) not clean: {result.summary()}")
    finally:
        _set_iam(kernel, True)
    on, off = (statistics.median(samples[k]) * 1000 for k in (True, False))
    guard = kernel.aws.guard
    assert guard is not None
    return Result(
        "local: signed GET /credentials, IAM enforced vs --no-iam",
        on,
        off,
        "ms",
        "ratio <= 1.2",
        f"enforcement adds {on - off:.2f} ms/request (execute-api:Invoke at the gateway, trust and "
        f"identity policies on the handler's AssumeRole); refusals during the run: {len(guard.refusals)}",
    )


def _load_elsewhere(url: str, sessions: list[dict[str, str]], total: int) -> LoadResult:
    """``run_load`` in a separate process: client threads here would compete with the emulator's GIL."""
    code = (
        "import json, sys\n"
        "from tests.e2e.load import run_load\n"
        "args = json.load(sys.stdin)\n"
        "r = run_load(args['url'], args['sessions'], total=args['total'], query=args['query'])\n"
        "print(json.dumps({'seconds': r.seconds, 'latencies': r.latencies_ms,\n"
        "  'statuses': r.statuses, 'errors': r.transport_errors}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps({"url": url, "sessions": sessions, "total": total, "query": QUERY}),
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=True,
    )
    out = json.loads(done.stdout)
    statuses = {int(k): v for k, v in out["statuses"].items()}
    return LoadResult(total, len(sessions), out["seconds"], out["latencies"], statuses, out["errors"])


def _concurrency(kernel: LocalKernel) -> list[Result]:
    assert kernel.aws is not None
    identity = kernel.partners[0].identity
    sessions = [
        kernel.aws.partner_session(identity, f"bench-{i:02d}").environment() for i in range(LOAD_CLIENTS)
    ]
    _load_elsewhere(kernel.vending_url, sessions, LOAD_CLIENTS)  # warm every environment first
    single = _load_elsewhere(kernel.vending_url, sessions[:1], LOAD_REQUESTS // 4)
    loaded = _load_elsewhere(kernel.vending_url, sessions, LOAD_REQUESTS)
    for result in (single, loaded):
        if result.statuses != {200: result.requests} or result.transport_errors:
            raise RuntimeError(f"load run not clean: {result.summary()}")
    return [
        Result(
            f"local: requests/s, {LOAD_CLIENTS} concurrent clients vs 1 client",
            loaded.rps,
            single.rps,
            "req/s",
            "ratio >= 0.9 (bound by the one gateway+moto process, not by environments)",
            f"{LOAD_CLIENTS} clients: p50 {loaded.p50_ms:.0f} ms, p99 {loaded.p99_ms:.0f} ms "
            f"(queueing for 4 environments); 1 client: p50 {single.p50_ms:.0f} ms",
        )
    ]


def run() -> list[Result]:
    host_environment = dict(os.environ)
    kernel = LocalKernel(
        LocalOptions(
            project_dir=PROJECT,
            cdk_out=_assembly(),
            synth=False,
            function_environment={
                settings.RATE_LIMIT_REQUESTS: "1000000",
                settings.RATE_LIMIT_SESSION_REQUESTS: "1000000",
            },
        )
    )
    try:
        kernel.start()
        rows = [_per_request(kernel), _iam_overhead(kernel)]
        rows.extend(_concurrency(kernel))
    finally:
        kernel.stop()
        # The direct calls ran under the function's environment; the next benchmark needs the host's,
        # and must not inherit the handler's cached service (clients of this run's moto endpoint).
        os.environ.clear()
        os.environ.update(host_environment)
        handler_module = sys.modules.get("kernel_access.handlers.vending")
        if handler_module is not None:
            handler_module.reset_for_tests(None)
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}: {row.figure:.4g} vs {row.baseline:.4g} {row.unit}", end=" ")
        print(f"(ratio {row.ratio:.3f}; goal {row.goal}) {row.note}")
