"""``make demo``: the whole kernel account on this machine, one allowed and one denied request, audited.

Steps (each printed as it runs):

1. start ``kernel-access local`` (the synthesised kernel stack on a loopback moto server);
2. create a partner identity: the partner's workload in its own account assumes the kernel-access
   role with a session name its trust policy accepts (``<account>.demo``);
3. run ``kernel-access exec --api … --role … -- python -c "…get_caller_identity…"`` as that partner
   and print the assumed-role ARN the child process received;
4. make a request the policy denies and print its ``error_code``;
5. print the audit records of both requests (read back from the local audit table);
6. stop ``local`` with Ctrl-C (SIGINT) and check it exits cleanly.

Exit status 0 only when every step did what it should. Roles come from the template's own policy,
evaluated by ``local`` at start-up (``state.json`` → ``examples``), so the demo works at any hour.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

PROJECT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 300.0  # a first run synthesises the app (cdk synth) before starting
CHILD_CODE = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
AUDIT_FIELDS = (
    "recorded_at",
    "request_id",
    "route",
    "decision",
    "error_code",
    "rule_id",
    "reason",
    "caller_arn",
    "partner",
    "target_role",
    "session_name",
    "access_key_id",
    "expiration",
    "duration",
    "policy_version",
)


class DemoFailure(RuntimeError):
    """A step did not do what the demo promises."""


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, text: str) -> None:
    say()
    say(f"[{number}/6] {text}")


def detail(text: str) -> None:
    for line in text.splitlines() or [""]:
        say(f"      {line}")


# --------------------------------------------------------------------------------------------------
# kernel-access local
# --------------------------------------------------------------------------------------------------


class Local:
    """``kernel-access local`` in a child process; its start-up notes are echoed as they come."""

    def __init__(self, state_dir: Path, extra_args: list[str]) -> None:
        self.state_dir = state_dir
        self.output: list[str] = []
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter and our own CLI
            [sys.executable, "-m", "kernel_access", "local", "--state-dir", str(state_dir), *extra_args],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            if line.startswith("kernel-access local:") and "stack" not in line:
                detail(line.rstrip("\n"))

    def wait_ready(self) -> dict[str, Any]:
        state_file = self.state_dir / "state.json"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not state_file.exists():
            if self.process.poll() is not None:
                raise DemoFailure("kernel-access local exited during start-up:\n" + self.tail())
            if time.monotonic() > deadline:
                raise DemoFailure("kernel-access local did not start in time:\n" + self.tail())
            time.sleep(0.05)
        state: dict[str, Any] = json.loads(state_file.read_text())
        return state

    def interrupt(self) -> int:
        """Ctrl-C, as a user would press it; the exit status (0 = clean)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise DemoFailure("kernel-access local did not stop within 30 s of Ctrl-C") from None
        self._reader.join(timeout=5)
        return code

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output[-lines:])


# --------------------------------------------------------------------------------------------------
# The partner's side
# --------------------------------------------------------------------------------------------------


def partner_identity(state: dict[str, Any], partner: str, suffix: str) -> dict[str, str]:
    """A session of the partner's kernel role, created the way the partner would create it.

    The partner's workload (a role in the partner's own account) assumes the kernel role, with the
    external ID when its trust statement requires one, and a session name ``<account>.<suffix>``
    (the trust policy only accepts session names that start with the calling account's id).
    """
    info = next(p for p in state["partners"] if p["partner"] == partner)
    region, endpoint = state["region"], state["moto_endpoint"]
    bootstrap = boto3.client(
        "sts",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="AKIADEMOBOOTSTRAP000",
        aws_secret_access_key="demo-bootstrap",  # noqa: S106 - the local moto server's placeholder
    )
    workload = bootstrap.assume_role(
        RoleArn=f"arn:aws:iam::{info['account_id']}:role/{partner}-workload", RoleSessionName="workload"
    )["Credentials"]
    sts = boto3.client(
        "sts",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=workload["AccessKeyId"],
        aws_secret_access_key=workload["SecretAccessKey"],
        aws_session_token=workload["SessionToken"],
    )
    kwargs: dict[str, Any] = {"RoleArn": info["role_arn"], "RoleSessionName": info["session_prefix"] + suffix}
    if info["external_id"]:
        kwargs["ExternalId"] = info["external_id"]
    response = sts.assume_role(**kwargs)
    creds = response["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
        "ARN": response["AssumedRoleUser"]["Arn"],
    }


def partner_shell(state: dict[str, Any], identity: dict[str, str]) -> dict[str, str]:
    """The environment of a partner's shell: its session, the local AWS endpoint, no config files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in identity.items() if k.startswith("AWS_")})
    env.update(
        AWS_REGION=state["region"],
        AWS_DEFAULT_REGION=state["region"],
        AWS_ENDPOINT_URL=state["moto_endpoint"],
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def kernel_access(*args: str) -> list[str]:
    return [sys.executable, "-m", "kernel_access", *args]


def audit_records(state: dict[str, Any], caller_arn: str) -> list[dict[str, Any]]:
    """The audit records of one caller, oldest first, from the local audit table's by-caller index."""
    inspector = boto3.client(
        "sts",
        region_name=state["region"],
        endpoint_url=state["moto_endpoint"],
        aws_access_key_id="AKIADEMOBOOTSTRAP000",
        aws_secret_access_key="demo-bootstrap",  # noqa: S106 - the local moto server's placeholder
    ).assume_role(
        RoleArn=f"arn:aws:iam::{state['account_id']}:role/demo-auditor", RoleSessionName="demo-auditor"
    )["Credentials"]
    dynamodb = boto3.client(
        "dynamodb",
        region_name=state["region"],
        endpoint_url=state["moto_endpoint"],
        aws_access_key_id=inspector["AccessKeyId"],
        aws_secret_access_key=inspector["SecretAccessKey"],
        aws_session_token=inspector["SessionToken"],
    )
    items = dynamodb.query(
        TableName=state["audit_table"],
        IndexName="by-caller",
        KeyConditionExpression="caller_arn = :c",
        ExpressionAttributeValues={":c": {"S": caller_arn}},
    )["Items"]
    records = []
    for item in items:
        flat = {k: _plain(v) for k, v in item.items()}
        records.append({k: flat[k] for k in AUDIT_FIELDS if k in flat})
    return records


def _plain(value: Mapping[str, Any]) -> Any:
    (kind, raw), *_ = value.items()
    return int(raw) if kind == "N" and raw.isdigit() else raw


# --------------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------------


def describe_started(state: Mapping[str, Any], seconds: float) -> None:
    """Step 1's report: what ``kernel-access local`` is serving."""
    detail(f"stack {state['stack']} (account {state['account_id']}, {state['region']})")
    detail(f"vending API   {state['vending_url']}")
    detail(f"local AWS     {state['moto_endpoint']}")
    # `kernel-access local` synthesises with the example service on (off in a deployed kernel).
    echo = next((a for a in state["apis"] if a["logical_id"].startswith("EchoService")), None)
    if echo is not None:
        detail(f"example API   {echo['url']}  (EchoService GET /echo, example code, local only)")
    detail(
        f"ready in {seconds:.1f} s ({len(state['tables'])} tables, "
        f"{len(state['parameters'])} parameters, {len(state['roles'])} roles)"
    )


def run_demo(local_args: list[str], state_dir: Path) -> None:
    step(1, "starting kernel-access local (the kernel stack's template on a loopback moto server)")
    started = time.monotonic()
    local = Local(state_dir, local_args)
    try:
        state = local.wait_ready()
        describe_started(state, time.monotonic() - started)
        examples = state.get("examples") or {}
        allowed, denied = examples.get("allowed"), examples.get("denied")
        if not allowed or not denied:
            raise DemoFailure("the template's policy gives no allowed/denied example pair")
        api = state["vending_url"]

        step(2, f"creating a partner identity: {allowed['partner']} assumes its kernel role")
        partner = partner_identity(state, allowed["partner"], "demo")
        detail(f"the {allowed['partner']} workload -> sts:AssumeRole -> {partner['ARN']}")

        step(
            3,
            f"kernel-access exec as {allowed['partner']}: the child gets {allowed['role']} credentials",
        )
        detail(f'$ kernel-access exec --api {api} --role {allowed["role"]} -- python -c "{CHILD_CODE}"')
        result = subprocess.run(  # noqa: S603 - fixed argv: this interpreter and our own CLI
            kernel_access(
                "exec", "--api", api, "--role", allowed["role"], "--", sys.executable, "-c", CHILD_CODE
            ),
            env=partner_shell(state, partner),
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        child_arn = result.stdout.strip()
        if result.returncode != 0 or f":assumed-role/{allowed['role']}/" not in child_arn:
            raise DemoFailure(f"exec failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
        detail(f"child process received: {child_arn}")

        step(4, f"a denied request: {denied['partner']} asks for {denied['role']}")
        refused = partner_identity(state, denied["partner"], "demo")
        detail(f"the {denied['partner']} workload -> sts:AssumeRole -> {refused['ARN']}")
        detail(f"$ kernel-access credential-process --api {api} --role {denied['role']}")
        result = subprocess.run(  # noqa: S603 - fixed argv: this interpreter and our own CLI
            kernel_access("credential-process", "--api", api, "--role", denied["role"]),
            env=partner_shell(state, refused),
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = result.stderr.strip().splitlines()
        error = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        if result.returncode == 0 or result.stdout or not error.get("error_code"):
            raise DemoFailure(
                f"expected a refusal, got exit {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        detail(f"exit {result.returncode}; {json.dumps(error)}")
        detail(f"error_code: {error['error_code']}")

        step(5, "audit records of both requests (local audit table, index by-caller)")
        for who in (partner["ARN"], refused["ARN"]):
            records = audit_records(state, who)
            if len(records) != 1:
                raise DemoFailure(f"expected one audit record for {who}, found {len(records)}")
            detail(json.dumps(records[0], indent=2))
        detail("(records carry the vended access key id, never a secret key or session token)")
    except BaseException:
        local.interrupt()  # a step failed: still stop the servers, but report the step's failure
        raise
    step(6, "stopping kernel-access local (Ctrl-C)")
    code = local.interrupt()
    if code != 0:
        raise DemoFailure(f"kernel-access local exited {code} on Ctrl-C:\n{local.tail()}")
    detail(f"stopped cleanly (exit {code})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cdk-out",
        type=Path,
        help="cloud assembly to run (default: kernel-access local's own, synthesised if stale)",
    )
    parser.add_argument("--no-synth", action="store_true", help="never synthesise")
    args = parser.parse_args(argv)
    local_args: list[str] = []
    if args.cdk_out:
        local_args += ["--cdk-out", str(args.cdk_out)]
    if args.no_synth:
        local_args.append("--no-synth")
    say("kernel-access demo: the kernel account on this machine, no AWS account needed")
    state_dir = Path(tempfile.mkdtemp(prefix="kernel-access-demo-"))
    try:
        run_demo(local_args, state_dir)
    except DemoFailure as failure:
        say()
        say(f"demo FAILED: {failure}")
        return 1
    except KeyboardInterrupt:
        say("\ndemo interrupted")
        return 130
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)  # it held the partner sessions' credentials
    say()
    say("demo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
