"""`kernel-access local` as a user runs it: start-up, the printed commands, Ctrl-C.

The commands the banner prints are run here exactly as printed (through bash, after `source` of the
printed env file), so "ready to paste" is checked, not assumed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kernel_access.local.template import LOCAL_CDK_OUT

from tests.e2e.conftest import FIXTURES, PROJECT, STARTUP_TIMEOUT, Emulator, http

VENV_BIN = Path(sys.executable).parent


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def test_sigint_stops_cleanly_and_closes_every_port(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process) → "stopping", exit 0, API and moto ports closed."""
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kernel_access",
            "local",
            "--template",
            str(FIXTURES / "echo-stack.template.json"),
            "--state-dir",
            str(tmp_path),
        ],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        state_file = tmp_path / "state.json"
        while not state_file.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() - started < STARTUP_TIMEOUT
            time.sleep(0.05)
        ready = time.monotonic() - started
        state = json.loads(state_file.read_text())
        urls = [api["url"] for api in state["apis"]] + [state["moto_endpoint"]]
        assert all(_port_open(url) for url in urls)
        # An execution environment (worker process) exists: it must be gone after Ctrl-C too.
        api = state["apis"][0]["url"]
        worker = int(http("GET", f"{api}/slow/pid").body)
        assert _alive(worker)
        print(f"\nSTARTUP echo stack: {ready:.2f} s wall (process start to state.json)")

        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "kernel-access local: stopping" in output
    assert "kernel-access local: stopped" in output
    assert "Traceback" not in output
    assert not any(_port_open(url) for url in urls)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_state_lists_examples_the_policy_decides(kernel_emulator: Emulator) -> None:
    examples = kernel_emulator.state["examples"]
    allowed, denied = examples["allowed"], examples["denied"]
    assert allowed["allowed"] is True
    assert allowed["role"] in kernel_emulator.state["target_roles"]
    # The example config's explicit deny wins over the default deny as the example.
    assert denied == {
        "partner": "acme-analytics",
        "session_arn": (
            "arn:aws:sts::111111111111:assumed-role/kernel-access-external-acme-analytics/333333333333.local"
        ),
        "role": "kernel-deployer",
        "allowed": False,
        "rule_id": "deny-external-deployer",
        "reason": denied["reason"],
    }


def _banner(emulator: Emulator) -> str:
    return emulator.log_path.read_text()


def test_banner_prints_urls_identities_and_commands(kernel_emulator: Emulator) -> None:
    banner = _banner(kernel_emulator)
    state = kernel_emulator.state
    for api in state["apis"]:
        assert f"{api['logical_id']} ({api['name']}): {api['url']}" in banner
    assert f"local AWS     {state['moto_endpoint']}" in banner
    for partner in state["partners"]:
        assert partner["session_arn"] in banner
        assert f"source {partner['env_file']}" in banner
    acme = kernel_emulator.partner("acme-analytics")
    assert f"external id {acme['external_id']}" in banner
    assert re.search(r"Started in \d+\.\d s\. Ctrl-C stops\.", banner)


def _printed_block(banner: str, heading: str) -> tuple[Path, list[str]]:
    """The env file and the commands printed under a heading of the banner."""
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    block: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    env_file = Path(block[0].removeprefix("source "))
    return env_file, block[1:]


def _run_pasted(env_file: Path, command: str) -> subprocess.CompletedProcess[str]:
    """Run a printed command as a user would paste it: a shell that sources the printed env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    script = f"source {shlex.quote(str(env_file))} && {command}"
    return subprocess.run(
        ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_printed_exec_command_works_when_pasted(kernel_emulator: Emulator) -> None:
    env_file, commands = _printed_block(_banner(kernel_emulator), "Try (in another shell")
    exec_command = next(c for c in commands if c.startswith("kernel-access exec "))
    role = kernel_emulator.state["examples"]["allowed"]["role"]
    result = _run_pasted(env_file, exec_command)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(f"arn:aws:sts::111111111111:assumed-role/{role}/")


def test_printed_denied_command_is_refused_with_its_code(kernel_emulator: Emulator) -> None:
    env_file, commands = _printed_block(_banner(kernel_emulator), "Denied (")
    result = _run_pasted(env_file, commands[0])
    assert result.returncode != 0
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["error_code"] == "POLICY_DENY"
    assert error["status"] == 403
    assert result.stdout == ""


def _start_once_in(project: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`kernel-access local --project-dir PROJECT --exit-after-start`, PATH limited to /usr/bin:/bin."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_access",
            "local",
            "--project-dir",
            str(project),
            "--exit-after-start",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=project,
        env=dict(os.environ, PATH=f"{tmp_path}{os.pathsep}/usr/bin:/bin"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("missing", [True, False], ids=["missing", "stale"])
def test_cli_synthesises_a_missing_or_stale_assembly(tmp_path: Path, missing: bool) -> None:
    """No usable assembly → `local` runs the app of cdk.json (here a tiny stand-in app) first, into its
    own assembly directory, with the example service switched on in the context it passes."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(
        "import json, os, shutil, sys\n"
        f"template = json.load(open({str(FIXTURES / 'echo-stack.template.json')!r}))\n"
        "context = json.loads(os.environ['CDK_CONTEXT_JSON'])\n"
        "template['Description'] = json.dumps(context['kernel-access'])\n"
        "out = os.environ['CDK_OUTDIR']\n"
        "os.makedirs(out, exist_ok=True)\n"
        "json.dump(template, open(os.path.join(out, 'Echo.template.json'), 'w'))\n"
        "json.dump({'version': '1', 'artifacts': {'Echo': {'type': 'aws:cloudformation:stack',\n"
        "  'environment': 'aws://123456789012/us-east-1',\n"
        "  'properties': {'templateFile': 'Echo.template.json', 'stackName': 'echo-synth'}}}},\n"
        "  open(os.path.join(out, 'manifest.json'), 'w'))\n"
    )
    context = {"kernel-access": {"kernel_account": "123456789012"}}
    (project / "cdk.json").write_text(
        json.dumps({"app": f"{shlex.quote(sys.executable)} app.py", "context": context})
    )
    out = project / LOCAL_CDK_OUT
    if not missing:
        out.mkdir()
        (out / "manifest.json").write_text("{}")
        old = time.time() - 3600
        os.utime(out / "manifest.json", (old, old))
    result = _start_once_in(project, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "synthesising the app" in result.stderr
    assert "missing" in result.stderr if missing else "older than the app's sources" in result.stderr
    assert "stack echo-synth" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert "Echo" in manifest["artifacts"]
    synthesised = json.loads((out / "Echo.template.json").read_text())
    assert json.loads(synthesised["Description"]) == {
        "kernel_account": "123456789012",
        "example_service": True,
    }


def test_cli_uses_a_fresh_assembly_without_synth(tmp_path: Path) -> None:
    """A manifest newer than every source is used as is: a broken app command proves no synth ran."""
    project = tmp_path / "project"
    out = project / LOCAL_CDK_OUT
    out.mkdir(parents=True)
    (project / "cdk.json").write_text(json.dumps({"app": "false"}))
    template = json.loads((FIXTURES / "echo-stack.template.json").read_text())
    (out / "Echo.template.json").write_text(json.dumps(template))
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "version": "1",
                "artifacts": {
                    "Echo": {
                        "type": "aws:cloudformation:stack",
                        "environment": "aws://123456789012/us-east-1",
                        "properties": {"templateFile": "Echo.template.json", "stackName": "echo-fresh"},
                    }
                },
            }
        )
    )
    result = _start_once_in(project, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "synthesising the app" not in result.stderr
    assert "stack echo-fresh" in result.stdout


def test_printed_operator_env_reaches_the_local_tables(kernel_emulator: Emulator) -> None:
    """The operator env file names the tables, so `kernel-access revoke --list` works as pasted.

    (Listing only: revoking a partner here would refuse every other test's requests.)
    """
    env_file, commands = _printed_block(_banner(kernel_emulator), "Operator (")
    assert env_file == Path(kernel_emulator.state["operator_env_file"])
    assert commands[0].startswith("kernel-access revoke --partner ")
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines() if line
    )
    assert exported["AWS_ENDPOINT_URL"] == kernel_emulator.moto
    assert exported["KERNEL_ACCESS_AUDIT_TABLE"] == kernel_emulator.state["audit_table"]
    result = _run_pasted(env_file, "kernel-access revoke --list --output json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list | dict)


def test_partner_env_file_sets_the_api_the_cli_reads(kernel_emulator: Emulator) -> None:
    """After `source <partner>.env`, the partner commands need no --api."""
    env_file = Path(kernel_emulator.partner("payments")["env_file"])
    result = _run_pasted(env_file, "kernel-access credential-process --role kernel-reader")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Version"] == 1
