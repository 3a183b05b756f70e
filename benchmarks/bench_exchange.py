"""Exchange Lambda: what the handler costs on top of the AWS calls a granted exchange must make, and
how long it takes to import. Baselines are measured in the same run, on the same in-process moto
backend.

- Warm ``POST /exchange/{issuer}`` for an ``aws_role`` target through the real handler (built from
  its environment as in Lambda: JWT authorizer claims in the event, Logger, Metrics, claim checks,
  trust-policy selection, permission intersection, session tags, fingerprints, audit) against the
  bare boto3 calls one grant makes, on the same clients: the rate-limit ``UpdateItem``, the
  revocation ``BatchGetItem``, the replay-guard ``PutItem`` (the token's ``jti``), ``AssumeRole``
  with session tags and an inline session policy, the issued-token ``PutItem`` and the audit
  ``PutItem`` (the configuration's S3 ``GetObject`` is cached for 30 s and the audit HMAC key
  is read once per container, so a warm request makes neither). Goal <= 1.15. Every request
  presents a token with a fresh ``jti`` (the replay guard refuses a second use), and the rate limit
  is set out of reach.
- Cold start: ``import kernel_access.handlers.exchange`` in a fresh interpreter against
  ``import boto3`` in a fresh interpreter, interleaved, median of several (goal <= 1.5); plus, for
  context, everything the first invocation loads (handler + boto3 + the X-Ray SDK the Tracer needs).

EMF metric lines the handler prints go to /dev/null while timing (the Lambda runtime ships stdout
to CloudWatch asynchronously); the bare baseline prints nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from benchmarks.harness import Result, alternating, cold_start_ms, lambda_environment

EXCHANGE_SAMPLES = 500
COLD_SAMPLES = 9
REGION = "us-east-1"
HANDLER_MODULE = "kernel_access.handlers.exchange"
#: Events are built (and their tokens signed) in batches of this many, outside the timed calls
#: except for one sample per batch (the medians do not see it).
EVENT_BATCH = 1000


@contextmanager
def _service_name(name: str) -> Iterator[None]:
    """The Powertools service name Lambda would set, only while the handler module is imported
    (other benchmarks in the same process import their own handler under their own name)."""
    previous = os.environ.get("POWERTOOLS_SERVICE_NAME")
    os.environ["POWERTOOLS_SERVICE_NAME"] = name
    try:
        yield
    finally:
        if previous is None:
            del os.environ["POWERTOOLS_SERVICE_NAME"]
        else:
            os.environ["POWERTOOLS_SERVICE_NAME"] = previous


class _Backend:
    """moto state shaped like the deployment (five tables, the configuration in S3, the HMAC key in
    SSM) and a warm handler whose service was built from the environment, as in Lambda."""

    def __init__(self) -> None:
        from kernel_access import settings
        from kernel_access.aws_clients import default_clients

        from tests.runtime.exchange import conftest as ex

        self.ex = ex
        self.dynamodb = default_clients().dynamodb()
        self.sts = default_clients().sts()
        ex.create_tables(self.dynamodb)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=ex.CONFIG_BUCKET)
        s3.put_bucket_versioning(Bucket=ex.CONFIG_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(
            Bucket=ex.CONFIG_BUCKET, Key=ex.CONFIG_KEY, Body=json.dumps(ex.example_config()).encode()
        )
        ssm = boto3.client("ssm", region_name=REGION)
        hmac_parameter = "/kernel-access/audit-hmac-key"
        ssm.put_parameter(Name=hmac_parameter, Value="k" * 32, Type="SecureString")
        self._environ = {
            settings.AUDIT_TABLE_NAME: ex.AUDIT_TABLE,
            settings.RATE_LIMIT_TABLE_NAME: ex.RATE_TABLE,
            settings.REVOCATION_TABLE_NAME: ex.REVOCATION_TABLE,
            settings.REPLAY_TABLE_NAME: ex.REPLAY_TABLE,
            settings.ISSUED_TOKENS_TABLE_NAME: ex.ISSUED_TABLE,
            settings.CONFIG_BUCKET: ex.CONFIG_BUCKET,
            settings.EXCHANGE_CONFIG_OBJECT_KEY: ex.CONFIG_KEY,
            settings.AUDIT_HMAC_KEY_PARAMETER: hmac_parameter,
            # Rate limit out of the way: every request must be served, not refused.
            settings.RATE_LIMIT_REQUESTS: "1000000000",
        }
        self._saved_environ = {name: os.environ.get(name) for name in self._environ}
        os.environ.update(self._environ)
        with _service_name("kernel-access-exchange"):
            from kernel_access.handlers import exchange
        self.exchange = exchange
        exchange.reset_for_tests(None)  # built from the environment on the first request
        self.tokens = ex.TokenFactory()
        self.context = _LambdaContext()
        self.devnull = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
        # Log lines, like EMF lines, go to /dev/null (the Logger's handler holds the stdout it saw
        # at import, so redirect_stdout alone does not reach it).
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []
        for log_handler in logging.getLogger(exchange.logger.service).handlers:
            if isinstance(log_handler, logging.StreamHandler):
                self._streams.append((log_handler, log_handler.setStream(self.devnull)))
        # What one granted request sends, for the bare calls (from a real request's claims).
        self.claims = self._claims()
        self._bare_requests()

    def close(self) -> None:
        self.exchange.reset_for_tests(None)
        for log_handler, stream in self._streams:
            log_handler.setStream(stream)
        self.devnull.close()
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _claims(self) -> dict[str, Any]:
        """Claims of a token the ``deploy`` target's ``main-branch`` policy grants, issued now, with
        a fresh ``jti`` (each token is exchanged once)."""
        now = int(time.time())
        return self.tokens.claims(jti=str(uuid.uuid4()), iat=now - 30, nbf=now - 30, exp=now + 270)

    def _event(self) -> dict[str, Any]:
        claims = self._claims()
        return self.ex.make_event(self.tokens.sign(claims), claims, {"target": "deploy"})

    def handler(self) -> Callable[[], object]:
        """One handler invocation per call, each with a fresh request id and token."""
        pending: list[dict[str, Any]] = []

        def invoke() -> object:
            if not pending:
                pending.extend(self._event() for _ in range(EVENT_BATCH))
            event = pending.pop()
            with redirect_stdout(self.devnull):
                response = self.exchange.handler(event, self.context)
            if response["statusCode"] != 200:
                raise RuntimeError(f"benchmark request refused: {response['body']}")
            return response

        return invoke

    # --- the bare calls, on the service's own (warm) clients, shaped like a granted request's ---
    # Request items and parameters are built once; each call only puts a fresh key in (the handler's
    # own work, building them, is what the comparison is meant to show).

    def _bare_requests(self) -> None:
        from kernel_access.exchange.issued import IssuedToken
        from kernel_access.exchange.minting import session_tags
        from kernel_access.exchange.permissions import session_policy
        from kernel_access.exchange.service import ExchangeAuditRecord, subject_key, subject_revocation
        from kernel_access.ratelimit import window_key
        from kernel_access.revocation import token_subject

        ex, subject = self.ex, self.claims["sub"]
        request_id = "req-0123456789abcdef"
        actions = ("s3:GetObject", "s3:PutObject", "s3:ListBucket", "cloudformation:*")
        presented = "sha256:" + "0" * 64
        identity = "github@repo_acme_app_ref_refs_heads_main"
        window = int(time.time()) // 60 * 60
        self.rate_key = {"pk": {"S": window_key(subject_key("github", subject), window)}}
        self.revocation_keys = [
            {"subject": {"S": subject_revocation("github", subject)}},
            {"subject": {"S": token_subject(presented)}},
        ]
        self.replay_item = {
            "expires_at": {"N": str(self.claims["exp"])},
            "request_id": {"S": request_id},
        }
        self.assume_role_params: dict[str, Any] = {
            "RoleArn": ex.DEPLOY_ROLE,
            "RoleSessionName": f"exchange.{request_id}",
            "DurationSeconds": 1800,
            "SourceIdentity": identity,
            "Tags": session_tags(
                self.claims, issuer_name="github", request_id=request_id, token_fingerprint=presented
            ),
            "Policy": session_policy(actions),
        }
        now = datetime.now(UTC)
        self.issued_item = IssuedToken(
            fingerprint="",
            kind="aws_credentials",
            issuer="github",
            subject=subject,
            target="deploy",
            policy="main-branch",
            permissions=actions,
            issued_at=now,
            expires_at=now + timedelta(seconds=1800),
            request_id=request_id,
            access_key_id="ASIAEXAMPLEEXAMPLE01",
            source_identity=identity,
            role_arn=ex.DEPLOY_ROLE,
            presented_token_fingerprint=presented,
        ).to_item()
        self.audit_item = ExchangeAuditRecord(
            request_id="",
            route="POST /exchange/github",
            decision="allow",
            rule_id="main-branch",
            reason="granted",
            caller_arn=f"oidc:github:{subject}",
            source_ip="192.0.2.10",
            user_agent="pytest",
            session_name=f"exchange.{request_id}",
            source_identity=identity,
            access_key_id="ASIAEXAMPLEEXAMPLE01",
            expiration="2026-11-23T10:00:00Z",
            duration=1800,
            policy_version="2026-11-23.1",
            issuer="github",
            subject=subject,
            jti=str(uuid.uuid4()),
            target="deploy",
            permissions=json.dumps(list(actions)),
            presented_token_fingerprint=presented,
            issued_token_fingerprint="sha256:" + "1" * 64,
        ).to_item(retention_days=400)

    def rate_limit_call(self) -> None:
        self.dynamodb.update_item(
            TableName=self.ex.RATE_TABLE,
            Key=self.rate_key,
            UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": "4102444800"}},
            ReturnValues="UPDATED_NEW",
        )

    def revocation_call(self) -> None:
        self.dynamodb.batch_get_item(
            RequestItems={self.ex.REVOCATION_TABLE: {"Keys": self.revocation_keys, "ConsistentRead": True}}
        )

    def replay_call(self) -> None:
        self.dynamodb.put_item(
            TableName=self.ex.REPLAY_TABLE,
            Item={**self.replay_item, "jti": {"S": f"{self.ex.GITHUB}#{uuid.uuid4()}"}},
            ConditionExpression="attribute_not_exists(jti)",
        )

    def assume_role_call(self) -> None:
        self.sts.assume_role(**self.assume_role_params)

    def issued_call(self) -> None:
        self.dynamodb.put_item(
            TableName=self.ex.ISSUED_TABLE,
            Item={**self.issued_item, "fingerprint": {"S": f"sha256:{uuid.uuid4().hex}"}},
            ConditionExpression="attribute_not_exists(fingerprint)",
        )

    def audit_call(self) -> None:
        self.dynamodb.put_item(
            TableName=self.ex.AUDIT_TABLE,
            Item={**self.audit_item, "request_id": {"S": f"bare-{uuid.uuid4().hex}"}},
            ConditionExpression="attribute_not_exists(request_id)",
        )


class _LambdaContext:
    function_name = "kernel-access-exchange"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:111111111111:function:kernel-access-exchange"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/kernel-access-exchange"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _exchange(backend: _Backend) -> list[Result]:
    handler = backend.handler()

    def bare_calls() -> None:
        backend.rate_limit_call()
        backend.revocation_call()
        backend.replay_call()
        backend.assume_role_call()
        backend.issued_call()
        backend.audit_call()

    for _ in range(50):  # warm: service built, configuration and HMAC key loaded, code paths hot
        handler()
        bare_calls()
    medians = alternating({"handler": handler, "bare": bare_calls}, samples=EXCHANGE_SAMPLES)
    ms = {name: value * 1e3 for name, value in medians.items()}
    return [
        Result(
            "exchange: warm POST /exchange (aws_role) vs its bare calls",
            ms["handler"],
            ms["bare"],
            "ms",
            "ratio <= 1.15",
            "baseline = UpdateItem (rate limit) + BatchGetItem (revocation) + PutItem (replay jti) + "
            "AssumeRole (tags, session policy) + PutItem (issued token) + PutItem (audit), the six "
            f"calls a grant makes, same moto backend and clients; medians of {EXCHANGE_SAMPLES} "
            f"alternating calls; difference {(ms['handler'] - ms['bare']) * 1e3:.0f} us/request",
        )
    ]


def _cold_start() -> list[Result]:
    ms = cold_start_ms(HANDLER_MODULE, samples=COLD_SAMPLES)
    return [
        Result(
            "exchange: cold start, import handler vs import boto3",
            ms["handler"],
            ms["boto3"],
            "ms",
            "ratio <= 1.5",
            f"fresh interpreter each, median of {COLD_SAMPLES}; the service (and its boto3 clients) is "
            "built on the first invocation",
        ),
        Result(
            "exchange: cold start, all the first request loads vs boto3",
            ms["first"],
            ms["boto3"],
            "ms",
            "for context (no goal)",
            "handler + boto3 + aws_xray_sdk.core: what the first invocation pays in total, import-wise",
        ),
    ]


def run() -> list[Result]:
    lambda_environment()
    rows = _cold_start()
    with mock_aws():
        backend = _Backend()
        try:
            rows = _exchange(backend) + rows
        finally:
            backend.close()
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name}: {row.figure:.4g} vs {row.baseline:.4g} {row.unit}", end=" ")
        print(f"(ratio {row.ratio:.3f}; goal {row.goal})")
