"""`make demo` (scripts/demo.py): it runs end to end and shows what it promises, or exits non-zero."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import PROJECT

DEMO = PROJECT / "scripts" / "demo.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _json_blocks(output: str) -> list[dict[str, object]]:
    """The indented JSON records the demo prints in step 5."""
    blocks, current = [], []
    for line in output.splitlines():
        text = line.strip()
        if text == "{":
            current = [text]
        elif current:
            current.append(text)
            if text == "}":
                blocks.append(json.loads("\n".join(current)))
                current = []
    return blocks


def test_demo_shows_the_assumed_role_the_denial_and_both_audit_records(kernel_assembly: Path) -> None:
    result = _run("--cdk-out", str(kernel_assembly), "--no-synth")
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert output.rstrip().endswith("demo OK")
    # The emulator's assembly has the example service on (a deployed kernel has it off by default).
    assert re.search(r"example API   http://127\.0\.0\.1:\d+  \(EchoService GET /echo", output), output

    received = re.search(r"child process received: (\S+)", output)
    assert received is not None, output
    child_arn = received.group(1)
    assert re.fullmatch(r"arn:aws:sts::111111111111:assumed-role/kernel-reader/\S+", child_arn)
    assert "error_code: POLICY_DENY" in output

    allowed, denied = _json_blocks(output)
    assert allowed["decision"] == "allow"
    assert allowed["caller_arn"] == "arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.demo"
    assert allowed["target_role"] == "kernel-reader"
    # The audit record names the very session the child received (session name = account.request id).
    assert child_arn.endswith("/" + str(allowed["session_name"]))
    assert str(allowed["access_key_id"]).startswith("ASIA")
    assert denied["decision"] == "deny"
    assert denied["error_code"] == "POLICY_DENY"
    assert denied["rule_id"] == "deny-external-deployer"
    assert denied["caller_arn"] == (
        "arn:aws:sts::111111111111:assumed-role/kernel-access-external-acme-analytics/333333333333.demo"
    )
    assert "access_key_id" not in denied
    assert "stopped cleanly (exit 0)" in output


def test_demo_fails_loudly_without_a_template(tmp_path: Path) -> None:
    result = _run("--cdk-out", str(tmp_path), "--no-synth")
    assert result.returncode == 1
    assert "demo FAILED: kernel-access local exited during start-up" in result.stdout
    assert "manifest.json not found" in result.stdout
