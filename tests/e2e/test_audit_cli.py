"""`kernel-access audit` in the local emulator: records made by real requests through the vending API,
read back by the command an operator runs (a subprocess with the emulator's operator env file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Emulator

REQUESTS = 5


def _operator_env(emulator: Emulator) -> dict[str, str]:
    """The process environment after ``source operator.env`` (and nothing from the user's AWS config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env_file = Path(emulator.state["operator_env_file"])
    for line in env_file.read_text().splitlines():
        if line:
            name, value = line.removeprefix("export ").split("=", 1)
            env[name] = value
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def _audit(emulator: Emulator, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kernel_access", "audit", *argv],
        env=_operator_env(emulator),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def traffic(kernel_emulator: Emulator) -> dict[str, Any]:
    """One fresh payments caller: REQUESTS vended reader sessions and one denied deployer request."""
    suffix = f"audit-{uuid.uuid4().hex[:8]}"
    caller = kernel_emulator.partner_session("payments", suffix)
    payments = kernel_emulator.partner("payments")
    vending = kernel_emulator.state["vending_url"]
    keys: dict[str, str] = {}
    for _ in range(REQUESTS):
        response = kernel_emulator.call(
            "GET", f"{vending}/credentials?role=kernel-reader&duration=900", caller
        )
        assert response.status == 200, response.body
        keys[response.json()["AccessKeyId"]] = response.headers["apigw-requestid"]
    denied = kernel_emulator.call("GET", f"{vending}/credentials?role=no-such-role", caller)
    assert denied.status >= 400
    return {
        # The session ARN IAM verified: the kernel role, the partner's own account as session-name prefix.
        "caller": f"arn:aws:sts::{kernel_emulator.state['account_id']}:assumed-role/"
        f"{payments['role_arn'].rsplit('/', 1)[1]}/{payments['session_prefix']}{suffix}",
        "keys": keys,
        "denied_request": denied.json()["request_id"],
    }


def test_query_by_caller_pages_through_every_record(
    kernel_emulator: Emulator, traffic: dict[str, Any]
) -> None:
    result = _audit(
        kernel_emulator,
        "query",
        "--caller",
        traffic["caller"],
        "--page-size",
        "2",
        "--limit",
        "0",
        "--output",
        "json",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == REQUESTS + 1
    assert {r["access_key_id"] for r in records if r["decision"] == "allow"} == set(traffic["keys"])
    assert {r["partner"] for r in records} == {"payments"}
    # Six records in pages of two: the progress line went to stderr, never into the JSON.
    assert "audit: page 3:" in result.stderr
    assert [r["recorded_at"] for r in records] == sorted((r["recorded_at"] for r in records), reverse=True)


def test_query_by_partner_with_filters(kernel_emulator: Emulator, traffic: dict[str, Any]) -> None:
    result = _audit(
        kernel_emulator,
        "query",
        "--partner",
        "payments",
        "--since",
        "1h",
        "--decision",
        "deny",
        "--page-size",
        "3",
        "--limit",
        "0",
        "--output",
        "json",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert traffic["denied_request"] in {r["request_id"] for r in records}
    assert {r["decision"] for r in records} == {"deny"}
    # API Gateway request ids may start with "-": the "=" form keeps argparse from reading an option.
    table = _audit(kernel_emulator, "query", f"--request-id={traffic['denied_request']}")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.startswith("RECORDED_AT")
    assert traffic["denied_request"] in row
    assert traffic["caller"] in row


def test_trace_answers_which_partner_and_request_received_a_key(
    kernel_emulator: Emulator, traffic: dict[str, Any]
) -> None:
    key, request_id = next(iter(traffic["keys"].items()))
    result = _audit(kernel_emulator, "trace", key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{key} was issued to partner payments by request {request_id} at ")
    assert traffic["caller"] in result.stdout
    as_json = json.loads(_audit(kernel_emulator, "trace", key, "--output", "json").stdout)
    assert [(r["request_id"], r["partner"], r["target_role"]) for r in as_json] == [
        (request_id, "payments", "kernel-reader")
    ]


def test_no_full_scan_without_the_flag(kernel_emulator: Emulator) -> None:
    refused = _audit(kernel_emulator, "query", "--target-role", "kernel-reader")
    assert refused.returncode == 1
    assert "--scan" in refused.stderr
