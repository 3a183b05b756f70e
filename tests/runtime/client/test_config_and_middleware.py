"""from_env (environment and PartnerAccountStack's SSM parameters) and the Powertools middleware."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from kernel_access.client import KernelClient, KernelConfigError, load_config
from kernel_access.client.config import DEFAULT_SSM_PREFIX, SSM_PARAMETERS
from kernel_access.client.middleware import KernelClientMiddleware, get_kernel_client

from tests.runtime.client.conftest import KERNEL_ACCOUNT, AssumeRoleRecorder
from tests.runtime.client.fake_kernel import FakeKernel


def test_environment_alone_configures_the_client(aws: None) -> None:
    env = {
        "KERNEL_ACCESS_ACCOUNT_ID": KERNEL_ACCOUNT,
        "KERNEL_ACCESS_REGION": "eu-west-1",
        "KERNEL_ACCESS_PARTNER": "acme",
        "KERNEL_ACCESS_EXTERNAL_ID": "ext-0123456789",
    }
    client = KernelClient.from_env(env)
    assert client.role_arn == f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access-external-acme"
    assert client.region == "eu-west-1"
    # Named <account>.<workload>.<random> at the first AssumeRole (the account comes from STS).
    assert client.session_name is None
    assert client.external_id == "ext-0123456789"


def test_ssm_parameters_fill_in_and_environment_wins(aws: None) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    prefix = "/partner-test/"
    values = {
        "kernel-account-id": KERNEL_ACCOUNT,
        "kernel-role-arn": f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access",
        "region": "eu-central-1",
        "partner-name": "acme",
        "vending-api-url": "https://abc123.execute-api.eu-central-1.amazonaws.com",
    }
    assert set(values) <= set(SSM_PARAMETERS)
    for name, value in values.items():
        ssm.put_parameter(Name=f"{prefix}{name}", Value=value, Type="String", Overwrite=True)
    config = load_config({"KERNEL_ACCESS_SSM_PREFIX": prefix, "KERNEL_ACCESS_REGION": "eu-west-1"})
    assert config.account_id == KERNEL_ACCOUNT
    assert config.region == "eu-west-1"  # environment wins
    assert config.partner == "acme"
    assert config.vending_api_url == values["vending-api-url"]
    assert config.external_id is None
    client = KernelClient.from_env({"KERNEL_ACCESS_SSM_PREFIX": prefix})
    assert client.role_arn == values["kernel-role-arn"]
    assert client.region == "eu-central-1"


def test_default_prefix_is_read_when_the_environment_names_no_account(aws: None) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(
        Name=f"{DEFAULT_SSM_PREFIX}kernel-account-id", Value=KERNEL_ACCOUNT, Type="String", Overwrite=True
    )
    try:
        assert load_config({}).account_id == KERNEL_ACCOUNT
    finally:
        ssm.delete_parameter(Name=f"{DEFAULT_SSM_PREFIX}kernel-account-id")
    with pytest.raises(KernelConfigError) as caught:
        load_config({})
    assert str(caught.value).startswith("account_id")


def test_bad_values_from_the_environment_name_the_field(aws: None) -> None:
    with pytest.raises(KernelConfigError) as caught:
        KernelClient.from_env({"KERNEL_ACCESS_ACCOUNT_ID": "not-an-account", "KERNEL_ACCESS_PARTNER": "acme"})
    assert str(caught.value).startswith("account_id")


def test_middleware_shares_one_client_across_requests(
    kernel: FakeKernel, sts: tuple[Any, AssumeRoleRecorder]
) -> None:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    built: list[KernelClient] = []

    def factory() -> KernelClient:
        client = KernelClient(KERNEL_ACCOUNT, partner="acme", sts_client=sts[0])
        built.append(client)
        return client

    app = APIGatewayHttpResolver()
    app.use(middlewares=[KernelClientMiddleware(factory)])

    @app.get("/orders")
    def orders() -> dict[str, Any]:
        response = get_kernel_client(app).call(kernel.url, "/echo", method="GET")
        return {"caller": response.json()["access_key_id"]}

    event = {
        "version": "2.0",
        "routeKey": "GET /orders",
        "rawPath": "/orders",
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "http": {"method": "GET", "path": "/orders", "sourceIp": "10.0.0.1"},
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    first = app.resolve(event, None)
    second = app.resolve(event, None)
    assert first["statusCode"] == 200
    assert second["statusCode"] == 200
    assert first["body"] == second["body"]
    assert len(built) == 1
    assert len(sts[1].calls) == 1


def test_get_kernel_client_without_middleware_is_a_clear_error() -> None:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    with pytest.raises(LookupError, match="KernelClientMiddleware"):
        get_kernel_client(APIGatewayHttpResolver())
