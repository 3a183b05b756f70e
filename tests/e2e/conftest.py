"""End-to-end fixtures: `kernel-access local` running in a subprocess, shared by the whole session.

Why a subprocess and not a thread: the emulator's moto server keeps its state in moto's global
backends, which every `mock_aws` of the other test folders resets; and the emulator swaps
`os.environ` per function invocation. A separate process keeps both away from the rest of the
suite (and is exactly what a user runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from kernel_access import settings

PROJECT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
STARTUP_TIMEOUT = 120.0


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> Response:
    request = urllib.request.Request(url, data=body or None, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Response(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
            )
    except urllib.error.HTTPError as error:
        return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def signed_headers(
    method: str,
    url: str,
    credentials: Mapping[str, str],
    *,
    body: bytes = b"",
    region: str = "us-east-1",
    service: str = "execute-api",
    when: datetime | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """SigV4 headers made by botocore's signer, optionally at another time (stale-date tests)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(
        credentials["AWS_ACCESS_KEY_ID"],
        credentials["AWS_SECRET_ACCESS_KEY"],
        credentials.get("AWS_SESSION_TOKEN"),
    )
    signer = SigV4Auth(creds, service, region)
    if when is not None:
        from unittest import mock

        with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(request)
    else:
        signer.add_auth(request)
    return dict(request.headers.items())


@dataclass
class Emulator:
    """A running `kernel-access local` and what its state.json says."""

    process: subprocess.Popen[bytes]
    state: dict[str, Any]
    state_dir: Path
    log_path: Path

    @property
    def region(self) -> str:
        return str(self.state["region"])

    @property
    def moto(self) -> str:
        return str(self.state["moto_endpoint"])

    def api(self, logical_prefix: str) -> str:
        for api in self.state["apis"]:
            if api["logical_id"].startswith(logical_prefix):
                return str(api["url"])
        raise KeyError(logical_prefix)

    def partner(self, name: str) -> dict[str, Any]:
        return next(p for p in self.state["partners"] if p["partner"] == name)

    def call(
        self,
        method: str,
        url: str,
        credentials: Mapping[str, str] | None,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        **sign: Any,
    ) -> Response:
        all_headers = dict(headers or {})
        if credentials is not None:
            all_headers = signed_headers(method, url, credentials, body=body, headers=headers, **sign)
        return http(method, url, all_headers, body)

    def client(self, service: str, credentials: Mapping[str, str] | None = None) -> Any:
        """A boto3 client on the local AWS acting in the kernel account (or as ``credentials``)."""
        creds = credentials or self.kernel_admin()
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.moto,
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        )

    def assume(
        self,
        role_arn: str,
        session_name: str,
        *,
        external_id: str | None = None,
        caller: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> dict[str, str]:
        """A session of ``role_arn`` assumed by ``caller`` (credentials), or with a key the local STS
        did not issue (which local IAM lets assume only roles outside the template: an identity of
        some account, such as a partner's workload role)."""
        sts = boto3.client(
            "sts",
            region_name=self.region,
            endpoint_url=self.moto,
            aws_access_key_id=caller["AWS_ACCESS_KEY_ID"] if caller else "AKIATESTBOOTSTRAP000",
            aws_secret_access_key=caller["AWS_SECRET_ACCESS_KEY"] if caller else "bootstrap",
            aws_session_token=caller.get("AWS_SESSION_TOKEN") if caller else None,
        )
        kwargs: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": 3600,
            **extra,
        }
        if external_id:
            kwargs["ExternalId"] = external_id
        creds = sts.assume_role(**kwargs)["Credentials"]
        return {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }

    def kernel_admin(self) -> dict[str, str]:
        if not hasattr(self, "_admin"):
            self._admin = self.assume(f"arn:aws:iam::{self.state['account_id']}:role/e2e-inspector", "e2e")
        return self._admin

    def workload(self, account_id: str, name: str) -> dict[str, str]:
        """A session of the workload role ``name`` in ``account_id`` (a role outside the template)."""
        return self.assume(f"arn:aws:iam::{account_id}:role/{name}", "workload")

    def partner_session(self, partner: str, suffix: str) -> dict[str, str]:
        """A fresh session of the partner's kernel role (a distinct caller ARN per suffix), assumed as
        the partner would: from its workload role in its own account, with its external ID."""
        p = self.partner(partner)
        workload = self.workload(p["account_id"], f"{partner}-workload")
        return self.assume(
            p["role_arn"], p["session_prefix"] + suffix, external_id=p["external_id"], caller=workload
        )

    def scan(self, table: str) -> list[dict[str, Any]]:
        dynamodb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def start_emulator(args: list[str], state_dir: Path) -> Emulator:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "local.log"
    log = log_path.open("wb")
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel_access", "local", "--state-dir", str(state_dir), *args],
        cwd=PROJECT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    state_file = state_dir / "state.json"
    while not state_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"kernel-access local did not start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.1)
    return Emulator(process, json.loads(state_file.read_text()), state_dir, log_path)


def stop_emulator(emulator: Emulator) -> None:
    emulator.process.terminate()
    try:
        emulator.process.wait(timeout=15)
    except subprocess.TimeoutExpired:  # pragma: no cover - Ctrl-C handling is what is under test
        emulator.process.kill()
        raise


@pytest.fixture(scope="session")
def echo_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The emulator running the small hand-written stack in fixtures/ (no synth needed)."""
    emulator = start_emulator(
        ["--template", str(FIXTURES / "echo-stack.template.json")], tmp_path_factory.mktemp("echo")
    )
    yield emulator
    stop_emulator(emulator)


def kernel_cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emulator's own assembly of the project when fresh, else a private synth (never rewrites
    the shared one); either way synthesised as `kernel-access local` does, example service on."""
    from kernel_access.local.template import LOCAL_CDK_OUT, is_stale, synthesize

    shared = PROJECT / LOCAL_CDK_OUT
    if not is_stale(shared, PROJECT):
        return shared
    out = tmp_path_factory.mktemp("cdk-out")
    synthesize(PROJECT, out)
    return out


@pytest.fixture(scope="session")
def kernel_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example app's cloud assembly, synthesised at most once per session."""
    return kernel_cdk_out(tmp_path_factory)


@pytest.fixture(scope="session")
def kernel_emulator(tmp_path_factory: pytest.TempPathFactory, kernel_assembly: Path) -> Iterator[Emulator]:
    """The emulator running the example kernel stack exactly as `cdk synth` produces it.

    One change: the per-partner rate limit is raised (the per-session one stays at 100), because the
    whole e2e session, the 2,000-request load test included, runs as the same two partners within
    a few minutes. Per-partner limiting is covered by tests/runtime/vending/test_service_partner_limits.py.
    """
    limits = [
        f"--set={settings.RATE_LIMIT_REQUESTS}=1000000",
        f"--set={settings.RATE_LIMIT_SESSION_REQUESTS}=100",
    ]
    emulator = start_emulator(
        ["--cdk-out", str(kernel_assembly), "--no-synth", *limits], tmp_path_factory.mktemp("kernel")
    )
    yield emulator
    stop_emulator(emulator)


def utcnow() -> datetime:
    return datetime.now(UTC)
