"""Fixtures for the partner-side tests: a SigV4-verifying local kernel and moto STS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.runtime.client.fake_kernel import FakeKernel

KERNEL_ACCOUNT = "111111111111"


class AssumeRoleRecorder:
    """Counts AssumeRole calls on an STS client and teaches the fake kernel each minted secret."""

    def __init__(self, kernel: FakeKernel) -> None:
        self.kernel = kernel
        self.calls: list[dict[str, Any]] = []

    def attach(self, client: Any) -> Any:
        client.meta.events.register("provide-client-params.sts.AssumeRole", self._before)
        client.meta.events.register("after-call.sts.AssumeRole", self._after)
        return client

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        creds = parsed.get("Credentials")
        if creds is None:  # an error response
            return
        self.kernel.trust(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    with FakeKernel() as server:
        yield server


@pytest.fixture(scope="package")
def aws() -> Iterator[None]:
    # One moto context for this package (never leaking into other test folders): entering mock_aws
    # costs ~1 s; AssumeRole mints fresh keys on every call anyway, so tests stay independent.
    with mock_aws():
        yield


@pytest.fixture
def sts(aws: None, kernel: FakeKernel) -> tuple[Any, AssumeRoleRecorder]:
    recorder = AssumeRoleRecorder(kernel)
    client = recorder.attach(boto3.client("sts", region_name="us-east-1"))
    return client, recorder


# --- a fake vending API (GET /credentials, GET /codeartifact/token) backed by a moto server ------

AMBIENT_KEY = "testing"  # what tests/conftest.py puts in the environment: the CLI signs with it
TARGET_ACCOUNT = "222222222222"
CODEARTIFACT_TOKEN = "eyJ2ZXIiOjF9.tok+en/with=chars"


@pytest.fixture(scope="package")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class FakeVending:
    """Routes of the vending contract; credentials come from moto's STS (over HTTP)."""

    def __init__(self, kernel: FakeKernel, moto_url: str) -> None:
        self.kernel = kernel
        self.sts = boto3.client("sts", region_name="us-east-1", endpoint_url=moto_url)
        self.requests: list[dict[str, str]] = []
        self.deny_with: str | None = None
        # The CLI signs with the ambient (environment) credentials: "testing" from tests/conftest.py,
        # or moto's own fake ones once mock_aws is active in this process.
        import os

        kernel.trust(
            os.environ.get("AWS_ACCESS_KEY_ID", AMBIENT_KEY),
            os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            os.environ.get("AWS_SESSION_TOKEN"),
        )
        self.ambient_key = os.environ.get("AWS_ACCESS_KEY_ID", AMBIENT_KEY)
        kernel.routes["/credentials"] = self.credentials
        kernel.routes["/codeartifact/token"] = self.token

    @property
    def url(self) -> str:
        return self.kernel.url

    def _denied(self) -> Any:
        from tests.runtime.client.fake_kernel import Reply

        if self.deny_with is None:
            return None
        return Reply(403, {"error_code": self.deny_with, "error": "denied by test", "request_id": "req-1"})

    def credentials(self, request: Any) -> Any:
        from tests.runtime.client.fake_kernel import Reply

        self.requests.append(request.query)
        if (denied := self._denied()) is not None:
            return denied
        role = request.query["role"]
        duration = int(request.query.get("duration", "3600"))
        creds = self.sts.assume_role(
            RoleArn=f"arn:aws:iam::{TARGET_ACCOUNT}:role/{role}",
            RoleSessionName="acme.vended",
            DurationSeconds=duration,
        )["Credentials"]
        return Reply(
            200,
            {
                "AccessKeyId": creds["AccessKeyId"],
                "SecretAccessKey": creds["SecretAccessKey"],
                "Token": creds["SessionToken"],
                "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "AccountId": TARGET_ACCOUNT,
            },
        )

    def token(self, request: Any) -> Any:
        from datetime import UTC, datetime, timedelta

        from tests.runtime.client.fake_kernel import Reply

        self.requests.append(request.query)
        if (denied := self._denied()) is not None:
            return denied
        expiration = datetime.now(UTC) + timedelta(hours=1)
        return Reply(
            200,
            {
                "authorizationToken": CODEARTIFACT_TOKEN,
                "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )


@pytest.fixture
def vending(kernel: FakeKernel, moto_server: str) -> FakeVending:
    return FakeVending(kernel, moto_server)
