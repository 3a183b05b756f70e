"""Fixtures for the partner-side tests: a SigV4-verifying local kernel and moto STS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.client.fake_kernel import FakeKernel

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


@pytest.fixture(scope="session")
def aws() -> Iterator[None]:
    # One moto context for the whole session: entering mock_aws costs ~1 s; AssumeRole mints fresh
    # keys on every call anyway, so tests stay independent.
    with mock_aws():
        yield


@pytest.fixture
def sts(aws: None, kernel: FakeKernel) -> tuple[Any, AssumeRoleRecorder]:
    recorder = AssumeRoleRecorder(kernel)
    client = recorder.attach(boto3.client("sts", region_name="us-east-1"))
    return client, recorder
