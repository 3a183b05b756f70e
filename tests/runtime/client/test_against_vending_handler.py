"""The partner client against the real vending handler (``kernel_access.handlers.vending``).

A local server verifies SigV4 like API Gateway's IAM authorizer (with the secrets moto minted for
the kernel-access session), turns the request into the HTTP API event API Gateway would send (the
verified session ARN as ``authorizer.iam.userArn``) and invokes the handler in-process. The
runtime tests' helpers build the tables, policy and environment; if they are not there, skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from kernel_access.client import KernelCallError, KernelClient
from kernel_access.local.sigv4 import KnownCredential

from tests.runtime.client.fake_kernel import FakeKernel, Reply, Request

vending = pytest.importorskip("kernel_access.handlers.vending")
runtime = pytest.importorskip("tests.runtime.conftest")


@pytest.fixture
def vending_api(aws: None, kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKernel]:
    from moto.sts.models import sts_backends

    dynamodb = boto3.client("dynamodb", region_name=runtime.REGION)
    if runtime.AUDIT_TABLE not in dynamodb.list_tables()["TableNames"]:
        runtime.create_tables(dynamodb)
        runtime.create_roles(boto3.client("iam", region_name=runtime.REGION))
    s3 = boto3.client("s3", region_name=runtime.REGION)
    if runtime.CONFIG_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        runtime.create_config_bucket()
    s3.put_object(
        Bucket=runtime.CONFIG_BUCKET, Key=runtime.POLICY_KEY, Body=json.dumps(runtime.POLICY).encode()
    )
    for name, value in runtime.vending_environment().items():
        monkeypatch.setenv(name, value)

    backend = sts_backends[runtime.KERNEL_ACCOUNT]["aws"]

    def from_moto(access_key: str) -> KnownCredential | None:
        role = backend.get_assumed_role_from_access_key(access_key)
        return None if role is None else KnownCredential(role.secret_access_key, role.session_token, role.arn)

    def invoke(request: Request) -> Reply:
        assert request.auth is not None
        assert request.auth.credential is not None
        event = runtime.http_event(
            request.path,
            raw_query=request.raw_query,
            user_arn=request.auth.credential.principal_arn,
            request_id=f"req-{len(kernel.seen_keys)}-{sum(kernel.hits.values())}",
        )
        response = vending.handler(event, runtime.FakeLambdaContext())
        return Reply(
            response["statusCode"], json.loads(response["body"]), dict(response.get("headers") or {})
        )

    kernel.fallback = from_moto
    kernel.routes["/credentials"] = invoke
    vending.reset_for_tests(None)
    try:
        yield kernel
    finally:
        vending.reset_for_tests(None)


def _partner_session(account: str) -> boto3.Session:
    """Credentials in the partner's own account (a workload role there), as a partner Lambda has."""
    creds = boto3.client("sts", region_name=runtime.REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/workload", RoleSessionName="workload"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=runtime.REGION,
    )


def test_partner_client_gets_credentials_from_the_vending_handler(vending_api: FakeKernel) -> None:
    payments = runtime.POLICY["partners"]["payments"]["account_id"]
    client = KernelClient(
        runtime.KERNEL_ACCOUNT, partner="payments", boto3_session=_partner_session(payments)
    )
    response = client.call(
        vending_api.url,
        "/credentials?role=kernel-reader&duration=900",
        method="GET",
    )
    body = response.json()
    assert set(body) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    from moto.sts.models import sts_backends

    vended = sts_backends[runtime.KERNEL_ACCOUNT]["aws"].get_assumed_role_from_access_key(body["AccessKeyId"])
    assert vended is not None
    assert vended.role_arn == runtime.TARGET_ROLES["kernel-reader"]
    (caller_key,) = vending_api.seen_keys
    assert caller_key != body["AccessKeyId"]


def test_partner_client_sees_the_policy_deny_code(vending_api: FakeKernel) -> None:
    client = KernelClient(runtime.KERNEL_ACCOUNT, partner="payments")
    with pytest.raises(KernelCallError) as caught:
        client.call(
            vending_api.url,
            "/credentials?role=kernel-admin",
            method="GET",
        )
    assert caught.value.status == 403
    assert caught.value.error_code == "POLICY_DENY"
    assert caught.value.request_id
