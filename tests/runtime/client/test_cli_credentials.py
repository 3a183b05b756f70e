"""credential-process, serve and exec, end to end: real boto3 sessions resolve the vended
credentials through botocore's own process and container providers (nothing of botocore mocked)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.runtime.client.conftest import TARGET_ACCOUNT, FakeVending

CLI = str(Path(sys.executable).parent / "kernel-access")
STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def identity(moto_server: str, credentials: object) -> str:
    frozen = credentials.get_frozen_credentials()  # type: ignore[attr-defined]
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=moto_server,
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )
    return str(sts.get_caller_identity()["Arn"])


def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


ROLE = "kernel-reader"


def test_credential_process_from_a_config_file(
    vending: FakeVending, moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(
            f"""\
            [profile vended]
            region = us-east-1
            credential_process = {CLI} credential-process --api {vending.url} --role {ROLE} --duration 1800
            """
        )
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    credentials = boto3.Session(profile_name="vended").get_credentials()
    assert credentials is not None
    assert credentials.method == "custom-process"
    assert identity(moto_server, credentials).startswith(
        f"arn:aws:sts::{TARGET_ACCOUNT}:assumed-role/kernel-reader/"
    )
    assert vending.requests == [{"role": "kernel-reader", "duration": "1800"}]
    assert vending.kernel.seen_keys[vending.ambient_key] == 1  # signed with the ambient credentials, verified


def test_credential_process_reports_the_error_code(vending: FakeVending) -> None:
    vending.deny_with = "POLICY_DENY"
    result = subprocess.run(
        [CLI, "credential-process", "--api", vending.url, "--role", "kernel-admin"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert error["error_code"] == "POLICY_DENY"
    assert error["status"] == 403
    assert error["request_id"] == "req-1"


def test_credential_process_refuses_unsigned_ambient(vending: FakeVending) -> None:
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    result = subprocess.run(
        [CLI, "credential-process", "--api", vending.url, "--role", "kernel-reader"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 3
    assert json.loads(result.stderr)["error_code"] == "ACCESS_DENIED"
    assert vending.requests == []


@pytest.fixture
def served(vending: FakeVending) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = subprocess.Popen(
        [CLI, "serve", "--api", vending.url, "--role", "kernel-reader", "--output", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        yield process, json.loads(line)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


def test_serve_feeds_the_real_container_provider(
    served: tuple[subprocess.Popen[str], dict[str, str]], moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, environment = served
    uri = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    assert uri.startswith("http://127.0.0.1:")
    assert len(token) >= 43  # token_urlsafe(32): 256 bits
    for name in STATIC_KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
    credentials = boto3.Session(region_name="us-east-1").get_credentials()
    assert credentials is not None
    assert credentials.method == "container-role"
    assert identity(moto_server, credentials).startswith(
        f"arn:aws:sts::{TARGET_ACCOUNT}:assumed-role/kernel-reader/"
    )

    assert status_of(uri, {}) == 403
    assert status_of(uri, {"Authorization": token[:-1] + ("A" if token[-1] != "A" else "B")}) == 403
    assert status_of(uri, {"Authorization": token}) == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    port = int(uri.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_serve_prints_export_lines(vending: FakeVending) -> None:
    process = subprocess.Popen(
        [CLI, "serve", "--api", vending.url, "--role", "kernel-reader"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip(), process.stdout.readline().strip()]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert lines[0].startswith("export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:")
    assert lines[1].startswith("export AWS_CONTAINER_AUTHORIZATION_TOKEN=")


CHILD = textwrap.dedent(
    """\
    import json, os, sys, urllib.error, urllib.request
    import boto3

    uri = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    token = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]

    def status(headers):
        try:
            with urllib.request.urlopen(urllib.request.Request(uri, headers=headers), timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        parent_cmdline = f.read().decode()
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=sys.argv[1])
    print(json.dumps({
        "uri": uri,
        "arn": sts.get_caller_identity()["Arn"],
        "missing": status({}),
        "wrong": status({"Authorization": "x" * len(token)}),
        "right": status({"Authorization": token}),
        "static_keys": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN") if k in os.environ],
        "token_in_parent_argv": token in parent_cmdline,
    }))
    sys.exit(int(sys.argv[2]))
    """
)


def test_exec_runs_the_child_with_vended_identity(
    vending: FakeVending, moto_server: str, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    result = subprocess.run(
        [
            CLI,
            "exec",
            "--api",
            vending.url,
            "--role",
            "kernel-reader",
            "--",
            sys.executable,
            str(script),
            moto_server,
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 7, result.stderr
    seen = json.loads(result.stdout)
    assert seen["arn"].startswith(f"arn:aws:sts::{TARGET_ACCOUNT}:assumed-role/kernel-reader/")
    assert (seen["missing"], seen["wrong"], seen["right"]) == (403, 403, 200)
    assert seen["static_keys"] == []
    assert seen["token_in_parent_argv"] is False
    port = int(seen["uri"].rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_exec_reports_signal_death_and_fails_fast_on_denial(vending: FakeVending) -> None:
    killed = subprocess.run(
        [CLI, "exec", "--api", vending.url, "--role", "kernel-reader", "--", sys.executable, "-c",
         "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == 128 + signal.SIGTERM
    vending.deny_with = "POLICY_DENY"
    denied = subprocess.run(
        [
            CLI,
            "exec",
            "--api",
            vending.url,
            "--role",
            "kernel-reader",
            "--",
            sys.executable,
            "-c",
            "print('ran')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert denied.returncode == 3
    assert "ran" not in denied.stdout
    assert "POLICY_DENY" in denied.stderr


def test_exec_forwards_signals_to_the_child(vending: FakeVending) -> None:
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
        "sys.exit(1)\n"
    )
    process = subprocess.Popen(
        [CLI, "exec", "--api", vending.url, "--role", "kernel-reader", "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)  # to kernel-access only: the child must get it from us
        assert process.wait(timeout=20) == 42
    finally:
        if process.poll() is None:
            process.kill()


def test_cli_can_assume_the_kernel_role_itself(
    aws: None, vending: FakeVending, capsys: pytest.CaptureFixture[str]
) -> None:
    from kernel_access.cli.main import main
    from kernel_access.local.sigv4 import KnownCredential
    from moto.sts.models import sts_backends

    from tests.runtime.client.conftest import KERNEL_ACCOUNT

    backend = sts_backends[KERNEL_ACCOUNT]["aws"]
    signers: list[object] = []

    def from_moto(access_key: str) -> KnownCredential | None:
        role = backend.get_assumed_role_from_access_key(access_key)
        if role is None:
            return None
        signers.append(role)
        return KnownCredential(role.secret_access_key, role.session_token, role.arn)

    vending.kernel.fallback = from_moto
    code = main(
        [
            "credential-process", "--api", vending.url, "--role", "kernel-reader",
            "--kernel-account-id", KERNEL_ACCOUNT, "--partner", "acme", "--external-id", "ext-0123456789",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert printed["Version"] == 1
    assert printed["AccessKeyId"]
    (role,) = signers
    assert role.role_arn == f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access-external-acme"  # type: ignore[attr-defined]
    assert role.session_name.startswith("123456789012.")  # type: ignore[attr-defined]
    assert role.external_id == "ext-0123456789"  # type: ignore[attr-defined]


def test_exec_reports_a_command_that_cannot_start(vending: FakeVending) -> None:
    result = subprocess.run(
        [CLI, "exec", "--api", vending.url, "--role", "kernel-reader", "--", "/nonexistent/command"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 127
    assert "cannot run" in result.stderr
