"""Vending Lambda: what the handler costs on top of the AWS calls it must make, how long it takes to
import, and how often a warm container mints CodeArtifact tokens. Baselines are measured in the same
run, on the same in-process moto backend.

- Warm ``GET /credentials`` through the real handler (Powertools resolver, Logger, Metrics, policy
  evaluation, naming, audit) against the bare boto3 calls it makes, on the same clients: the
  rate-limit ``UpdateItem``, the revocation ``BatchGetItem``, ``AssumeRole`` and the audit
  ``PutItem`` (the policy's S3 ``GetObject`` is cached for 30 s, so a warm request makes none).
  Goal <= 1.15. A second row divides by ``AssumeRole + PutItem`` alone (the two calls any vending
  handler needs), for comparison.
- Warm ``GET /credentials`` with 1,000 and with 5,000 partners in the policy against the same
  request with the 2 partners of the test policy, the three alternating (goal <= 1.05 each):
  resolving the caller's partner is one ARN match and two dictionary lookups, whatever the number
  of partners.
- Cold start: ``import kernel_access.handlers.vending`` in a fresh interpreter against
  ``import boto3`` in a fresh interpreter, interleaved, median of several (goal <= 1.5); plus, for
  context, everything the first invocation loads (handler + boto3 + the X-Ray SDK the Tracer needs).
- ``GET /codeartifact/token`` from a warm cache: time per request through the handler against its
  bare calls (``UpdateItem + BatchGetItem + PutItem``; the token itself comes from memory), and
  mints per 10,000 requests (goal 1).

EMF metric lines the handler prints go to /dev/null while timing (the Lambda runtime ships stdout
to CloudWatch asynchronously); the bare baseline prints nothing.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import uuid
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

import boto3
from moto import mock_aws

from benchmarks.harness import Result, alternating, cold_start_ms, lambda_environment, timed

CREDENTIAL_SAMPLES = 500
#: Partners in the large policies of the identity-scale rows (the test policy has 2).
SCALE_PARTNERS = (1_000, 5_000)
TOKEN_REQUESTS = 10_000
#: One bare-calls sample after every this many token requests.
TOKEN_BASELINE_EVERY = 5
COLD_SAMPLES = 9


class _Backend:
    """moto state shaped exactly like the deployment (tables, roles, policy) and a warm service."""

    def __init__(self) -> None:
        from kernel_access.handlers import vending
        from kernel_access.vending.service import VendingService

        from tests.runtime import conftest as rt

        self.rt = rt
        self.vending = vending
        self.dynamodb = boto3.client("dynamodb", region_name=rt.REGION)
        rt.create_tables(self.dynamodb)
        rt.create_roles(boto3.client("iam", region_name=rt.REGION))
        self.s3 = rt.create_config_bucket()
        self.s3.put_object(Bucket=rt.CONFIG_BUCKET, Key=rt.POLICY_KEY, Body=json.dumps(rt.POLICY).encode())
        # Rate limit out of the way: every request must be served, not refused.
        os.environ.update(
            rt.vending_environment(
                KERNEL_ACCESS_RATE_LIMIT_REQUESTS="1000000000",
                KERNEL_ACCESS_RATE_LIMIT_SESSION_REQUESTS="1000000000",
            )
        )
        self.stub = rt.CodeArtifactStub()
        self.service = VendingService.from_env()
        self.service.tokens._codeartifact_client = self.stub
        vending.reset_for_tests(self.service)
        self.context = rt.FakeLambdaContext()
        self.devnull = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
        # Log lines, like EMF lines, go to /dev/null (the Logger's handler holds the stdout it saw
        # at import, so redirect_stdout alone does not reach it).
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []
        for log_handler in logging.getLogger(vending.logger.service).handlers:
            if isinstance(log_handler, logging.StreamHandler):
                self._streams.append((log_handler, log_handler.setStream(self.devnull)))

    def close(self) -> None:
        self.vending.reset_for_tests(None)
        for log_handler, stream in self._streams:
            log_handler.setStream(stream)
        self.devnull.close()

    def handler(self, path: str, query: dict[str, str]) -> Callable[[], object]:
        """One handler invocation per call, each with a fresh request id (audit keys are unique).

        Events are built in batches of 1,000 (one timed sample in 1,000 includes the batch; the
        medians do not see it)."""
        pending: list[dict[str, Any]] = []

        def invoke() -> object:
            if not pending:
                pending.extend(self.rt.http_event(path, query) for _ in range(1000))
            event = pending.pop()
            with redirect_stdout(self.devnull):
                response = self.vending.handler(event, self.context)
            if response["statusCode"] != 200:
                raise RuntimeError(f"benchmark request refused: {response['body']}")
            return response

        return invoke

    # --- the bare calls, on the service's own (warm) clients ---

    def _audit_item(self) -> dict[str, Any]:
        from kernel_access.audit import AuditRecord

        record = AuditRecord(
            request_id=f"bare-{uuid.uuid4().hex}",
            route="GET /credentials",
            decision="allow",
            rule_id="partners-read",
            reason="matched rule partners-read",
            caller_arn=self.rt.PAYMENTS_ARN,
            caller_account=self.rt.KERNEL_ACCOUNT,
            caller_org=self.rt.ORG_ID,
            source_ip="203.0.113.7",
            user_agent="kernel-access-tests/1.0",
            partner="payments",
            target_role="kernel-reader",
            session_name=f"{self.rt.KERNEL_ACCOUNT}.req-0123456789abcdef",
            source_identity="payments.ci-job@req-0123456789abcdef",
            access_key_id="ASIAEXAMPLEEXAMPLE01",
            expiration="2026-11-23T10:00:00Z",
            duration=3600,
            latency_ms=1.0,
            policy_version="test-1",
        )
        return record.to_item(retention_days=400)

    def rate_limit_call(self) -> None:
        """The two counters the handler updates: the partner's, then the session's."""
        for key in ("partner#payments#bare", f"session#{self.rt.PAYMENTS_ARN}#bare"):
            self.service.clients.dynamodb().update_item(
                TableName=self.rt.RATE_LIMIT_TABLE,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": "4102444800"}},
                ReturnValues="UPDATED_NEW",
            )

    def revocation_call(self) -> None:
        self.service.clients.dynamodb().batch_get_item(
            RequestItems={
                self.rt.REVOCATION_TABLE: {
                    "Keys": [
                        {"subject": {"S": f"caller#{self.rt.PAYMENTS_ARN}"}},
                        {"subject": {"S": "partner#payments"}},
                    ],
                    "ConsistentRead": True,
                }
            }
        )

    def assume_role_call(self) -> None:
        self.service.clients.sts().assume_role(
            RoleArn=self.rt.TARGET_ROLES["kernel-reader"],
            RoleSessionName=f"{self.rt.KERNEL_ACCOUNT}.req-0123456789abcdef",
            SourceIdentity="payments.ci-job@req-0123456789abcdef",
            Tags=[
                {"Key": "partner", "Value": "payments"},
                {"Key": "caller-account", "Value": self.rt.KERNEL_ACCOUNT},
                {"Key": "request-id", "Value": "req-0123456789abcdef"},
            ],
            DurationSeconds=3600,
            PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
        )

    def audit_call(self) -> None:
        self.service.clients.dynamodb().put_item(
            TableName=self.rt.AUDIT_TABLE,
            Item=self._audit_item(),
            ConditionExpression="attribute_not_exists(request_id)",
        )


def _credentials(backend: _Backend) -> list[Result]:
    handler = backend.handler("/credentials", {"role": "kernel-reader"})

    def all_calls() -> None:
        backend.rate_limit_call()
        backend.revocation_call()
        backend.assume_role_call()
        backend.audit_call()

    def two_calls() -> None:
        backend.assume_role_call()
        backend.audit_call()

    for _ in range(50):  # warm: policy loaded, clients built, code paths hot
        handler()
        all_calls()
    medians = alternating(
        {"handler": handler, "all": all_calls, "two": two_calls}, samples=CREDENTIAL_SAMPLES
    )
    ms = {name: value * 1e3 for name, value in medians.items()}
    return [
        Result(
            "vending: warm GET /credentials vs its bare boto3 calls",
            ms["handler"],
            ms["all"],
            "ms",
            "ratio <= 1.15",
            "baseline = UpdateItem (rate limit) + BatchGetItem (revocation) + AssumeRole + PutItem (audit), "
            "the four calls the handler makes, same moto backend and clients; medians of "
            f"{CREDENTIAL_SAMPLES} alternating calls; difference "
            f"{(ms['handler'] - ms['all']) * 1e3:.0f} us/request",
        ),
        Result(
            "vending: warm GET /credentials vs AssumeRole + PutItem only",
            ms["handler"],
            ms["two"],
            "ms",
            "for comparison (no goal)",
            "the minimal baseline (mint + audit); the handler also makes the rate-limit UpdateItem and the "
            "revocation BatchGetItem (fail-closed checks), which this baseline leaves out",
        ),
    ]


def _partner_scale(backend: _Backend) -> list[Result]:
    """Warm /credentials with 1,000- and 5,000-partner policies against the 2-partner test policy."""
    from kernel_access.vending.config import VendingConfig
    from kernel_access.vending.service import VendingService

    rt = backend.rt
    services: dict[str, VendingService] = {"two": backend.service}
    for size in SCALE_PARTNERS:
        large = json.loads(json.dumps(rt.POLICY))
        for index in range(size - len(large["partners"])):
            large["partners"][f"scale-{index:04d}"] = {
                "account_id": f"7{index:011d}",
                "in_organization": True,
            }
        key = f"scale-{size}/" + rt.POLICY_KEY
        backend.s3.put_object(Bucket=rt.CONFIG_BUCKET, Key=key, Body=json.dumps(large).encode())
        environment = rt.vending_environment(
            KERNEL_ACCESS_RATE_LIMIT_REQUESTS="1000000000",
            KERNEL_ACCESS_RATE_LIMIT_SESSION_REQUESTS="1000000000",
            KERNEL_ACCESS_POLICY_OBJECT_KEY=key,
        )
        scaled = VendingService(VendingConfig.from_env(environment))
        scaled.tokens._codeartifact_client = backend.stub
        services[str(size)] = scaled
    handler = backend.handler("/credentials", {"role": "kernel-reader"})

    def with_service(name: str) -> Callable[[], object]:
        def call() -> object:
            backend.vending.reset_for_tests(services[name])
            return handler()

        return call

    calls = {name: with_service(name) for name in services}
    try:
        for _ in range(50):
            for call in calls.values():
                call()
        medians = alternating(calls, samples=CREDENTIAL_SAMPLES)
    finally:
        backend.vending.reset_for_tests(backend.service)
    ms = {name: value * 1e3 for name, value in medians.items()}
    return [
        Result(
            f"vending: warm GET /credentials, {size:,} partners vs 2",
            ms[str(size)],
            ms["two"],
            "ms",
            "ratio <= 1.05",
            f"same handler, tables and caller (payments, in-org); the policy's partners map has "
            f"{size:,} entries vs 2 (account -> partner index built once per policy load); "
            f"medians of {CREDENTIAL_SAMPLES} calls, the {len(services)} policies alternating",
        )
        for size in SCALE_PARTNERS
    ]


def _cold_start() -> list[Result]:
    ms = cold_start_ms("kernel_access.handlers.vending", samples=COLD_SAMPLES)
    return [
        Result(
            "vending: cold start, import handler vs import boto3",
            ms["handler"],
            ms["boto3"],
            "ms",
            "ratio <= 1.5",
            f"fresh interpreter each, median of {COLD_SAMPLES}; the handler module loads Powertools "
            "Logger/Metrics/event handler only (boto3 clients and the X-Ray Tracer are built on the "
            "first invocation)",
        ),
        Result(
            "vending: cold start, all the first request loads vs boto3",
            ms["first"],
            ms["boto3"],
            "ms",
            "for context (no goal)",
            "handler + boto3 + aws_xray_sdk.core: what the first invocation pays in total, import-wise",
        ),
    ]


def _codeartifact(backend: _Backend) -> list[Result]:
    handler = backend.handler("/codeartifact/token", {"domain": "kernel"})
    handler()  # request 1 of TOKEN_REQUESTS: the cache is cold, this one mints
    mints_before = backend.service.tokens.mint_count

    def bare_calls() -> None:
        backend.rate_limit_call()
        backend.revocation_call()
        backend.audit_call()

    for _ in range(50):
        bare_calls()
    handler_samples: list[float] = []
    bare_samples: list[float] = []
    for index in range(TOKEN_REQUESTS - 1):  # requests 2..TOKEN_REQUESTS
        handler_samples.append(timed(handler))
        if index % TOKEN_BASELINE_EVERY == 0:
            bare_samples.append(timed(bare_calls))
    mints = backend.service.tokens.mint_count
    figure_ms = statistics.median(handler_samples) * 1e3
    bare_ms = statistics.median(bare_samples) * 1e3
    return [
        Result(
            "vending: CodeArtifact token, warm cache, per request",
            figure_ms,
            bare_ms,
            "ms",
            "close to its bare calls (token served from memory)",
            "baseline = UpdateItem (rate limit) + BatchGetItem (revocation) + PutItem (audit) on the "
            f"same moto backend; medians of {TOKEN_REQUESTS - 1:,} requests and "
            f"{len(bare_samples):,} interleaved baseline samples",
        ),
        Result(
            f"vending: CodeArtifact mints per {TOKEN_REQUESTS:,} token requests",
            float(mints),
            1.0,
            "mints",
            "1 (ratio 1.0)",
            f"{mints_before} mint for the first request, {mints - mints_before} during the other "
            f"{TOKEN_REQUESTS - 1:,} (same domain, access level and lifetime)",
        ),
    ]


def _environment() -> None:
    lambda_environment()
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "kernel-access-vending")


def run() -> list[Result]:
    _environment()
    rows = _cold_start()
    with mock_aws():
        backend = _Backend()
        try:
            rows = _credentials(backend) + _partner_scale(backend) + rows + _codeartifact(backend)
        finally:
            backend.close()
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}: {row.figure:.4g} vs {row.baseline:.4g} {row.unit}", end=" ")
        print(f"(ratio {row.ratio:.3f}; goal {row.goal})")
