"""Partner client: what the credential cache and the transport cost, against in-run baselines.

- 1,000 calls through ``KernelClient`` against a client that assumes the role on every call
  (then signs and sends), same local SigV4-verifying server, same moto STS, same run: AssumeRole
  counts (goal 1 vs 1,000) and the wall-time ratio. moto answers AssumeRole in-process in well
  under a millisecond; real STS takes tens of milliseconds, so the real-world ratio is far larger.
- Per-call client overhead: ``KernelClient.call`` (SigV4 sign + send over a kept-alive pooled
  connection) against a bare pooled *unsigned* urllib3 request to the same route, in the same run
  (the route skips verification for both, so only client-side work differs). Goal <= 1.3.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import boto3
import urllib3
from kernel_access.client import KernelClient
from kernel_access.client.signing import StaticCredentials, sign_request
from kernel_access.client.transport import SignedTransport
from moto import mock_aws

from benchmarks.harness import Result
from tests.runtime.client.fake_kernel import FakeKernel

KERNEL_ACCOUNT = "111111111111"
CALLS = 1000


class _Counter:
    def __init__(self, kernel: FakeKernel, client: Any) -> None:
        self.count = 0
        self.kernel = kernel
        client.meta.events.register("after-call.sts.AssumeRole", self._after)

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        self.count += 1
        creds = parsed["Credentials"]
        self.kernel.trust(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def _cache_vs_per_call(kernel: FakeKernel) -> list[Result]:
    sts = boto3.client("sts", region_name="us-east-1")
    counter = _Counter(kernel, sts)
    client = KernelClient(KERNEL_ACCOUNT, partner="bench", sts_client=sts)
    started = time.perf_counter()
    for _ in range(CALLS):
        client.call(kernel.url, "/echo", method="GET")
    cached_seconds = time.perf_counter() - started
    cached_assumes = counter.count

    percall_sts = boto3.client("sts", region_name="us-east-1")
    percall_counter = _Counter(kernel, percall_sts)
    started = time.perf_counter()
    for _ in range(CALLS):
        # Without a credential cache: a fresh AssumeRole for every call, then sign and send.
        creds = percall_sts.assume_role(
            RoleArn=f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access", RoleSessionName="bench.percall"
        )["Credentials"]
        frozen = StaticCredentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        SignedTransport(lambda f=frozen: f, region="us-east-1", max_attempts=1).request(
            kernel.url, "/echo", "GET"
        )
    percall_seconds = time.perf_counter() - started
    assert not kernel.rejections, kernel.rejections[:1]
    return [
        Result(
            "client: AssumeRole calls per 1,000 kernel calls",
            float(cached_assumes),
            float(percall_counter.count),
            "calls",
            "1 vs 1,000",
            "figure: KernelClient (cached credentials); baseline: assume role per call (no cache)",
        ),
        Result(
            "client: wall time of 1,000 calls, cached vs per-call AssumeRole",
            cached_seconds,
            percall_seconds,
            "s",
            "ratio < 1 (moto STS is in-process; real STS widens the gap)",
        ),
    ]


def _overhead(kernel: FakeKernel) -> list[Result]:
    sts = boto3.client("sts", region_name="us-east-1")
    _Counter(kernel, sts)
    client = KernelClient(KERNEL_ACCOUNT, partner="bench", sts_client=sts, eager=True)
    bare = urllib3.PoolManager(maxsize=4)
    url = f"{kernel.url}/open/echo"
    # The exact header set KernelClient sends (Host, plus X-Amz-Date, X-Amz-Security-Token and
    # Authorization, the three the bare request lacks), signed once: sending it with no per-call
    # signing isolates what the extra header bytes cost (client send + the in-process server
    # parsing them) from the signing work itself.
    creds = client.current_credentials()
    fixed_headers = sign_request(creds, method="GET", url=url, body=None, headers=None, region="us-east-1")

    def signed_call() -> None:
        client.call(kernel.url, "/open/echo", method="GET")

    def bare_call() -> None:
        bare.request("GET", url, timeout=urllib3.Timeout(connect=30, read=30), retries=False)

    def same_headers_call() -> None:
        bare.request(
            "GET", url, headers=fixed_headers, timeout=urllib3.Timeout(connect=30, read=30), retries=False
        )

    def sign_only() -> None:
        sign_request(
            client.current_credentials(), method="GET", url=url, body=None, headers=None, region="us-east-1"
        )

    calls = (
        ("signed", signed_call),
        ("bare", bare_call),
        ("headers", same_headers_call),
        ("sign", sign_only),
    )
    for _ in range(100):  # warm both pools and the server's handler threads
        for _, func in calls:
            func()
    samples: dict[str, list[float]] = {key: [] for key, _ in calls}
    per_round = 200
    for _ in range(9):  # interleaved rounds: drift on a shared machine hits all alike
        for key, func in calls:
            started = time.perf_counter()
            for _ in range(per_round):
                func()
            samples[key].append((time.perf_counter() - started) / per_round)
    signed, bare_us, headers_us, sign_us = (
        statistics.median(samples[k]) * 1e6 for k in ("signed", "bare", "headers", "sign")
    )
    return [
        Result(
            "client: per-call time, signed KernelClient vs bare pooled unsigned",
            signed,
            bare_us,
            "us",
            "ratio <= 1.3",
            f"kept-alive connections, same local route; absolute overhead {signed - bare_us:.0f} us/call: "
            f"SigV4 signing alone {sign_us:.0f} us (botocore's canonicaliser, signer and derived key "
            f"cached); the 3 extra headers' bytes (sent, and parsed by the in-process stdlib server) "
            f"{headers_us - bare_us:.0f} us (bare request carrying the same pre-signed headers: "
            f"{headers_us:.0f} us); remainder {signed - headers_us - sign_us:.0f} us = client "
            "bookkeeping (~8 us measured alone), signing running slower between socket waits than in "
            "a tight loop (~80 vs ~55 us when timed inside the call), and noise between these medians",
        ),
    ]


def run() -> list[Result]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(), FakeKernel() as kernel:
        rows = _cache_vs_per_call(kernel)
        rows.extend(_overhead(kernel))
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}: {row.figure:.4g} vs {row.baseline:.4g} {row.unit}", end=" ")
        print(f"(ratio {row.ratio:.3f}; goal {row.goal})")
