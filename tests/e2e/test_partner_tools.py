"""Partner tooling against the local kernel: `serve`, `exec` and `KernelClient`, no mocks in between.

boto3's real container-credentials provider → `kernel-access serve` → emulator (SigV4 verified) →
vending handler → moto STS; and `KernelClient` → emulator → the example stack's KernelServiceApi route.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import boto3

from tests.e2e.conftest import PROJECT, Emulator

CHILD = (
    "import boto3, json; s = boto3.Session(); c = s.get_credentials().get_frozen_credentials(); "
    "print(json.dumps({'arn': s.client('sts').get_caller_identity()['Arn'], 'key': c.access_key, "
    "'method': s.get_credentials().method}))"
)


def partner_environment(emulator: Emulator, creds: dict[str, str]) -> dict[str, str]:
    """A shell of the partner: its session credentials, the local AWS endpoint, no config files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(creds)
    env.update(
        {
            "AWS_REGION": emulator.region,
            "AWS_DEFAULT_REGION": emulator.region,
            "AWS_ENDPOINT_URL": emulator.moto,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    return env


def records_of(emulator: Emulator, caller_arn: str) -> list[dict[str, Any]]:
    items = emulator.client("dynamodb").query(
        TableName=emulator.state["audit_table"],
        IndexName="by-caller",
        KeyConditionExpression="caller_arn = :c",
        ExpressionAttributeValues={":c": {"S": caller_arn}},
    )["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def test_exec_child_gets_vended_credentials(kernel_emulator: Emulator) -> None:
    creds = kernel_emulator.partner_session("payments", "e2e-exec")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_access",
            "exec",
            "--api",
            kernel_emulator.state["vending_url"],
            "--role",
            "kernel-reader",
            "--",
            sys.executable,
            "-c",
            CHILD,
        ],
        env=partner_environment(kernel_emulator, creds),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["method"] == "container-role"
    assert child["arn"].startswith("arn:aws:sts::111111111111:assumed-role/kernel-reader/")
    assert child["key"] != creds["AWS_ACCESS_KEY_ID"]
    records = records_of(
        kernel_emulator, "arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.e2e-exec"
    )
    assert [r["access_key_id"] for r in records] == [child["key"]]
    assert records[0]["decision"] == "allow"


def test_boto3_container_provider_through_serve(kernel_emulator: Emulator) -> None:
    creds = kernel_emulator.partner_session("payments", "e2e-serve")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kernel_access",
            "serve",
            "--api",
            kernel_emulator.state["vending_url"],
            "--role",
            "kernel-reader",
        ],
        env=partner_environment(kernel_emulator, creds),
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 60
        assert server.stdout is not None
        while len(exports) < 2 and time.monotonic() < deadline:
            line = server.stdout.readline()
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value.strip("'\"")
        assert set(exports) == {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}
        # Three independent SDK clients (fresh processes) resolve through the real container provider.
        child_env = partner_environment(kernel_emulator, {})
        child_env.update(exports)
        keys = set()
        for _ in range(3):
            result = subprocess.run(
                [sys.executable, "-c", CHILD],
                env=child_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            child = json.loads(result.stdout)
            assert child["method"] == "container-role"
            assert child["arn"].startswith("arn:aws:sts::111111111111:assumed-role/kernel-reader/")
            keys.add(child["key"])
        # The server cached one vended credential; the vending API saw exactly that one call.
        records = records_of(
            kernel_emulator, "arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.e2e-serve"
        )
        assert {r["access_key_id"] for r in records} == keys
        assert len(records) == len(keys) == 1
        # A wrong token gets nothing.
        bad = dict(child_env, AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong")
        refused = subprocess.run(
            [sys.executable, "-c", CHILD], env=bad, capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_kernel_client_calls_a_kernel_service_route(kernel_emulator: Emulator) -> None:
    """KernelClient → emulator (IAM authorizer) → the example stack's KernelServiceApi (EchoService)."""
    from kernel_access.client.kernel_client import KernelClient

    service = next(a for a in kernel_emulator.state["apis"] if a["logical_id"].startswith("EchoService"))
    assert ["GET /echo", "AWS_IAM"] in service["routes"]
    # The partner's workload credentials live in the partner account; the client assumes kernel-access.
    workload = kernel_emulator.assume("arn:aws:iam::222222222222:role/payments-workload", "workload")
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=kernel_emulator.moto,
        aws_access_key_id=workload["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=workload["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=workload["AWS_SESSION_TOKEN"],
    )
    assumed: list[str] = []
    sts.meta.events.register(
        "after-call.sts.AssumeRole", lambda parsed, **_: assumed.append(parsed["AssumedRoleUser"]["Arn"])
    )
    client = KernelClient("111111111111", partner="payments", sts_client=sts, read_timeout=10)
    try:
        responses = [client.call(service["url"], "/echo", method="GET") for _ in range(3)]
    finally:
        client.close()
    assert {r.status_code for r in responses} == {200}
    # One AssumeRole for three calls (the client caches), and the service saw that very session.
    assert len(assumed) == 1
    assert assumed[0].startswith("arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.")
    for response in responses:
        body = response.json()
        assert body["caller_arn"] == assumed[0]
        assert body["account_id"] == "111111111111"
