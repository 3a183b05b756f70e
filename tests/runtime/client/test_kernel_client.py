"""KernelClient against a local server that verifies SigV4 with the secrets moto's STS minted."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kernel_access.client import (
    KernelCallError,
    KernelClient,
    KernelConfigError,
    KernelConnectionError,
)

from tests.runtime.client.conftest import KERNEL_ACCOUNT, AssumeRoleRecorder
from tests.runtime.client.fake_kernel import FakeKernel, Reply, Request

#: The account moto reports for the ambient test credentials: the partner's own account here.
CALLER_ACCOUNT = "123456789012"


def make_client(sts: tuple[Any, AssumeRoleRecorder], **kwargs: Any) -> KernelClient:
    kwargs.setdefault("partner", "acme")
    return KernelClient(KERNEL_ACCOUNT, sts_client=sts[0], **kwargs)


def test_many_threads_share_one_assume_role(kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]) -> None:
    client = make_client(sts)
    calls_per_thread = 8

    def work(i: int) -> list[str]:
        keys = []
        for j in range(calls_per_thread):
            response = client.call(kernel.url, "/echo", body={"thread": i, "call": j})
            assert response.status_code == 200
            keys.append(response.json()["access_key_id"])
        return keys

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = [key for keys in pool.map(work, range(16)) for key in keys]

    recorder = sts[1]
    assert len(recorder.calls) == 1
    assert len(results) == 16 * calls_per_thread
    # Every request was verified with the one minted secret; nothing was rejected.
    assert set(results) == set(kernel.known)
    assert kernel.rejections == []
    call = recorder.calls[0]
    assert call["RoleArn"] == f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access"
    # The trust policy requires ${aws:PrincipalAccount}.*: the client asked STS who it is.
    assert call["RoleSessionName"].startswith(f"{CALLER_ACCOUNT}.")
    assert "ExternalId" not in call
    assert "SourceIdentity" not in call


def test_external_id_path_assumes_external_role_with_the_id(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    client = make_client(sts, external_id="ext-id-0123456789", source_identity="ci-runner")
    client.call(kernel.url, "/echo", method="GET")
    (call,) = sts[1].calls
    assert call["RoleArn"] == f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access-external-acme"
    assert call["ExternalId"] == "ext-id-0123456789"
    # SourceIdentity under the caller's account prefix (the only one the trust policy admits), and
    # the session name the same, so the kernel (which sees only the session ARN) records it.
    assert call["SourceIdentity"] == f"{CALLER_ACCOUNT}.ci-runner"
    assert call["RoleSessionName"] == f"{CALLER_ACCOUNT}.ci-runner"
    assert call["DurationSeconds"] == 3600


def test_server_rejects_a_signature_made_with_another_secret(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    client = make_client(sts)
    client.call(kernel.url, "/echo", method="GET")
    (key,) = kernel.known
    kernel.trust(key, "not-the-secret", kernel.known[key].session_token)
    with pytest.raises(KernelCallError) as caught:
        client.call(kernel.url, "/echo", method="GET")
    assert caught.value.status == 403
    assert caught.value.error_code == "ACCESS_DENIED"
    assert kernel.rejections[-1].failure is not None
    assert kernel.rejections[-1].failure.value == "SIGNATURE_MISMATCH"


def test_body_is_json_and_query_survives_signing(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    client = make_client(sts)
    response = client.call(kernel.url, "/echo?b=2&a=x%20y", method="PUT", body={"k": ["v", 1]})
    echoed = response.json()
    assert json.loads(echoed["body"]) == {"k": ["v", 1]}
    assert echoed["query"] == {"a": "x y", "b": "2"}
    assert response.duration > 0


def test_stalling_server_fails_within_read_timeout(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    release = threading.Event()

    def stall(_: Request) -> Reply:
        release.wait(10)
        return Reply(200, {})

    kernel.routes["/stall"] = stall
    client = make_client(sts, read_timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(KernelConnectionError) as caught:
            client.call(kernel.url, "/stall", method="POST", body={})
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert caught.value.attempts == 1  # POST without an idempotency key: no retry
    assert elapsed < 5  # the server would have held the request for 10 s
    assert kernel.hits["/stall"] == 1


def _flaky(failures: int, status: int = 503, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    state = {"left": failures}

    def route(_: Request) -> Reply:
        if state["left"] > 0:
            state["left"] -= 1
            return Reply(status, {"error_code": "UPSTREAM_UNAVAILABLE", "error": "busy"}, headers or {})
        return Reply(200, {"ok": True})

    return route


def test_get_is_retried_on_503(kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]) -> None:
    kernel.routes["/flaky"] = _flaky(2)
    response = make_client(sts, max_attempts=3).call(kernel.url, "/flaky", method="GET")
    assert response.json() == {"ok": True}
    assert response.attempts == 3
    assert kernel.hits["/flaky"] == 3


def test_retries_never_exceed_max_attempts(kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]) -> None:
    kernel.routes["/down"] = _flaky(100)
    with pytest.raises(KernelCallError) as caught:
        make_client(sts, max_attempts=2).call(kernel.url, "/down", method="GET")
    assert caught.value.status == 503
    assert caught.value.error_code == "UPSTREAM_UNAVAILABLE"
    assert caught.value.attempts == 2
    assert kernel.hits["/down"] == 2


def test_post_without_idempotency_key_is_not_retried(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    kernel.routes["/flaky"] = _flaky(1)
    with pytest.raises(KernelCallError) as caught:
        make_client(sts).call(kernel.url, "/flaky", method="POST", body={"x": 1})
    assert caught.value.status == 503
    assert kernel.hits["/flaky"] == 1


def test_post_with_idempotency_key_is_retried(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    kernel.routes["/flaky"] = _flaky(1)
    response = make_client(sts).call(
        kernel.url, "/flaky", method="POST", body={"x": 1}, headers={"Idempotency-Key": "order-42"}
    )
    assert response.status_code == 200
    assert kernel.hits["/flaky"] == 2


def test_retry_after_beyond_the_bound_is_not_waited_for(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    kernel.routes["/throttled"] = lambda _: Reply(
        429,
        {
            "error_code": "RATE_LIMITED",
            "error": "slow down",
            "request_id": "req-9",
            "retry_after_seconds": 120,
        },
        {"Retry-After": "120"},
    )
    with pytest.raises(KernelCallError) as caught:
        make_client(sts).call(kernel.url, "/throttled", method="GET")
    error = caught.value
    assert (error.status, error.error_code, error.request_id, error.retry_after) == (
        429,
        "RATE_LIMITED",
        "req-9",
        120,
    )
    assert kernel.hits["/throttled"] == 1
    assert json.loads(error.body)["error"] == "slow down"


def test_short_retry_after_is_honoured(kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]) -> None:
    kernel.routes["/throttled"] = _flaky(1, 429, {"Retry-After": "0"})
    assert make_client(sts).call(kernel.url, "/throttled", method="GET").status_code == 200
    assert kernel.hits["/throttled"] == 2


def test_client_errors_carry_the_error_code(kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]) -> None:
    kernel.routes["/deny"] = lambda _: Reply(
        403, {"error_code": "POLICY_DENY", "error": "no rule matched", "request_id": "abc"}
    )
    with pytest.raises(KernelCallError) as caught:
        make_client(sts).call(kernel.url, "/deny", method="GET")
    assert caught.value.error_code == "POLICY_DENY"
    assert caught.value.request_id == "abc"
    assert kernel.hits["/deny"] == 1  # 4xx is never retried
    assert "POLICY_DENY" in str(caught.value)


def test_connection_refused_is_reported(sts: tuple[Any, AssumeRoleRecorder]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(KernelConnectionError) as caught:
        make_client(sts, max_attempts=2).call(f"http://127.0.0.1:{port}", "/x", method="GET")
    assert caught.value.attempts == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"account_id": "12345"}, "account_id"),
        ({"external_id": "bad id with spaces"}, "external_id"),
        ({"partner": None, "external_id": "ext-id-0123456789"}, "partner"),
        ({"session_name": "has space"}, "session_name"),
        ({"role_name": "bad/role"}, "role_name"),
        ({"region": "mars"}, "region"),
        ({"source_identity": "aws:nope"}, "source_identity"),
        ({"role_arn": "arn:aws:iam::222222222222:role/kernel-access"}, "role_arn"),
    ],
)
def test_bad_configuration_fails_at_construction_naming_the_field(
    sts: tuple[Any, AssumeRoleRecorder], kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"account_id": KERNEL_ACCOUNT, "partner": "acme", **kwargs}
    with pytest.raises(KernelConfigError) as caught:
        KernelClient(sts_client=sts[0], **args)
    assert str(caught.value).startswith(field)
    assert sts[1].calls == []


def test_explicit_session_name_without_partner_is_used(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    client = KernelClient(KERNEL_ACCOUNT, session_name=f"{CALLER_ACCOUNT}.batch", sts_client=sts[0])
    client.call(kernel.url, "/echo", method="GET")
    assert sts[1].calls[0]["RoleSessionName"] == f"{CALLER_ACCOUNT}.batch"


def test_eager_mints_at_construction(sts: tuple[Any, AssumeRoleRecorder]) -> None:
    client = make_client(sts, eager=True)
    assert len(sts[1].calls) == 1
    assert client.credentials_expire_at is not None


def test_assume_role_failure_is_a_clear_error(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    from botocore.stub import Stubber

    client = make_client(sts)
    with Stubber(sts[0]) as stubber:
        stubber.add_response(
            "get_caller_identity",
            {
                "Account": CALLER_ACCOUNT,
                "Arn": f"arn:aws:iam::{CALLER_ACCOUNT}:user/ci",
                "UserId": "AIDAEXAMPLE",
            },
        )
        stubber.add_client_error("assume_role", "AccessDenied", "not allowed", 403)
        from kernel_access.client import KernelCredentialsError

        with pytest.raises(KernelCredentialsError) as caught:
            client.call(kernel.url, "/echo", method="GET")
    assert "AccessDenied" in str(caught.value)
    assert kernel.hits["/echo"] == 0


def test_logs_have_call_fields_and_no_secrets(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    stream = io.StringIO()
    logger = logging.getLogger("kernel-client-test")
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(endpoint)s %(method)s %(status)s %(attempt)s"))
    logger.addHandler(handler)
    try:
        make_client(sts, logger=logger).call(kernel.url, "/echo?secret-ish=1", body={"password": "hunter2"})
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "kernel call /echo POST 200 1" in output
    (key,) = kernel.known
    assert kernel.known[key].secret_access_key not in output
    assert "hunter2" not in output
    assert "secret-ish" not in output


def test_powertools_logger_metrics_and_tracer(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder], capsys: pytest.CaptureFixture[str]
) -> None:
    from aws_lambda_powertools import Logger, Metrics, Tracer

    logger = Logger(service="partner")
    metrics = Metrics(namespace="PartnerTest", service="partner")
    tracer = Tracer(service="partner", disabled=True)
    kernel.routes["/flaky"] = _flaky(1)
    client = make_client(sts, logger=logger, metrics=metrics, tracer=tracer)
    client.call(kernel.url, "/flaky", method="GET")
    metrics.flush_metrics()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    latency = [line for line in lines if "Latency" in line]
    assert {line["StatusClass"] for line in latency} == {"5xx", "2xx"}
    assert any(line.get("Retries") == [1.0] for line in lines)
    assert {line["service"] for line in latency} == {"partner"}
    calls = [line for line in lines if line.get("message") == "kernel call"]
    assert [(c["status"], c["attempt"]) for c in calls] == [(503, 1), (200, 2)]
    (key,) = kernel.known
    assert all(kernel.known[key].secret_access_key not in json.dumps(line) for line in lines)


def test_expired_session_rejected_by_the_gateway_is_reassumed_once(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    state = {"first": True}

    def gateway(_: Request) -> Reply:
        if state["first"]:
            state["first"] = False
            return Reply(403, {"message": "The security token included in the request is expired"})
        return Reply(200, {"ok": True})

    kernel.routes["/gw"] = gateway
    client = make_client(sts)
    assert client.call(kernel.url, "/gw", method="POST", body={}).json() == {"ok": True}
    assert len(sts[1].calls) == 2
    kernel.routes["/gw"] = lambda _: Reply(
        403, {"message": "The security token included in the request is expired"}
    )
    with pytest.raises(KernelCallError):
        client.call(kernel.url, "/gw", method="POST", body={})
    assert len(sts[1].calls) == 3  # one re-assume per call, never a loop
    kernel.routes["/gw"] = lambda _: Reply(403, {"error_code": "POLICY_DENY", "error": "no"})
    with pytest.raises(KernelCallError):
        client.call(kernel.url, "/gw", method="POST", body={})
    assert len(sts[1].calls) == 3  # a kernel refusal is not a credentials problem


@pytest.mark.parametrize(
    ("base_url", "endpoint"),
    [
        ("http://kernel.example.com", "/x"),  # a signed request would carry the token in clear
        ("ftp://127.0.0.1", "/x"),
        ("https://abc.execute-api.us-east-1.amazonaws.com", "https://evil.example.com/x"),
    ],
)
def test_refuses_unsafe_urls_before_signing(
    sts: tuple[Any, AssumeRoleRecorder], base_url: str, endpoint: str
) -> None:
    with pytest.raises(KernelConfigError):
        make_client(sts).call(base_url, endpoint, method="GET")
    assert sts[1].calls == []
