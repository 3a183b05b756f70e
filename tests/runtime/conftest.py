"""Fixtures for runtime tests: moto-backed AWS state for the vending Lambda, API Gateway events,
and a reusable secrets scanner.

``secrets_scan`` (opt in with ``pytestmark = pytest.mark.usefixtures("secrets_scan")`` or by
requesting it): every secret any AWS call issued during the session — STS ``SecretAccessKey`` and
``SessionToken`` (moto), CodeArtifact ``authorizationToken`` (Stubber), decrypted SSM
``SecureString`` values (the audit HMAC key) — is recorded by a hook on botocore's
``BaseClient._make_api_call``; every log record (Powertools service logger and root) and every
DynamoDB item written (``PutItem`` and ``TransactWriteItems``) is captured. At the end of each test
using the fixture, none of the captured lines/items written during that test may contain any secret
issued so far; and at the end of the session, every line and item captured during the whole runtime
suite is scanned once more against every secret issued (so a test that forgot the fixture is
covered too).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import boto3
import botocore.client
import pytest
from botocore.stub import ANY, Stubber
from kernel_access import settings
from moto import mock_aws

KERNEL_ACCOUNT = "111111111111"
REGION = "us-east-1"
AUDIT_TABLE = "kernel-access-audit"
RATE_LIMIT_TABLE = "kernel-access-rate-limit"
REVOCATION_TABLE = "kernel-access-revocation"
CONFIG_BUCKET = "kernel-access-config"
POLICY_KEY = "vending/policy.json"
READER_ROLE_ARN = f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access-codeartifact-reader"
PUBLISHER_ROLE_ARN = f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-access-codeartifact-publisher"
TARGET_ROLES = {
    "kernel-reader": f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-reader",
    "kernel-deployer": f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-deployer",
    "kernel-narrow": f"arn:aws:iam::{KERNEL_ACCOUNT}:role/kernel-narrow",
}
#: Sessions as IAM names them: the in-org role's session names start with the caller's account
#: (``${aws:PrincipalAccount}.*``); each external partner has its own role.
PAYMENTS_ARN = f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/222222222222.ci-job"
ACME_ARN = (
    f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access-external-acme-analytics/333333333333.etl"
)
STRANGER_ARN = f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/444444444444.x"
ORG_ID = "o-a1b2c3d4e5"

#: The test policy: every branch of the vending flow has a rule that reaches it.
POLICY: dict[str, Any] = {
    "version": "test-1",
    "partners": {
        "payments": {"account_id": "222222222222", "in_organization": True},
        "acme-analytics": {"account_id": "333333333333", "in_organization": False},
    },
    "rules": [
        {
            "id": "deny-external-deployer",
            "effect": "deny",
            "partners": ["acme-analytics"],
            "roles": ["kernel-deployer"],
        },
        {
            "id": "payments-deployer",
            "effect": "allow",
            "partners": ["payments"],
            "roles": ["kernel-deployer"],
            "max_duration": 1800,
        },
        {
            "id": "partners-read",
            "effect": "allow",
            "partners": ["payments", "acme-analytics"],
            "roles": ["kernel-reader"],
            "session_policy": {"managed_policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]},
        },
        {
            "id": "payments-narrow",
            "effect": "allow",
            "partners": ["payments"],
            "roles": ["kernel-narrow"],
            "session_policy": {
                "inline": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
                }
            },
        },
        # Allowed by policy but absent from TARGET_ROLES: the only way to reach ROLE_NOT_FOUND.
        {"id": "payments-ghost", "effect": "allow", "partners": ["payments"], "roles": ["kernel-ghost"]},
        {
            "id": "payments-publish",
            "effect": "allow",
            "partners": ["payments"],
            "codeartifact": {"domains": ["kernel"], "access": "publish"},
        },
        {
            "id": "acme-read",
            "effect": "allow",
            "partners": ["acme-analytics"],
            "codeartifact": {"domains": ["kernel"], "access": "read"},
        },
    ],
}


# ----------------------------------------------------------------------------- secrets scanning


@dataclass
class SecretsLedger:
    """Secrets issued by AWS calls, and everything written where secrets must never go."""

    secrets: set[str] = field(default_factory=set)
    log_lines: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    def add_secret(self, value: object) -> None:
        # Short strings ("testing") would match by accident; real secrets are long and random.
        if isinstance(value, str) and len(value) >= 16:
            self.secrets.add(value)

    def leaks(self, *, since_logs: int = 0, since_records: int = 0) -> list[str]:
        """Exact substring search, fast enough for thousands of secrets and lines: every secret is
        at least 16 characters, so slide a 16-character window over the text and verify the few
        positions whose window starts some secret."""
        by_prefix: dict[str, list[str]] = {}
        for secret in self.secrets:
            by_prefix.setdefault(secret[:16], []).append(secret)
        found = []
        for where, texts in (("log", self.log_lines[since_logs:]), ("record", self.records[since_records:])):
            for text in texts:
                for i in range(len(text) - 15):
                    candidates = by_prefix.get(text[i : i + 16])
                    if candidates:
                        for secret in candidates:
                            if text.startswith(secret, i):
                                shown = text.replace(secret, "<SECRET>")[:200]
                                found.append(f"{where} contains an issued secret ({secret[:4]}…): {shown}")
        return found


LEDGER = SecretsLedger()


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        attributes = json.dumps(record.__dict__, default=str)
        exc = ""
        if record.exc_info:
            exc = logging.Formatter().formatException(record.exc_info)
        LEDGER.log_lines.append(f"{message} {attributes} {exc}")


_original_make_api_call = botocore.client.BaseClient._make_api_call


def _recording_make_api_call(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
    if operation_name == "PutItem":
        LEDGER.records.append(json.dumps(api_params.get("Item", {}), default=str))
    elif operation_name == "TransactWriteItems":
        LEDGER.records.append(json.dumps(api_params.get("TransactItems", []), default=str))
    response = _original_make_api_call(self, operation_name, api_params)
    credentials = response.get("Credentials") if isinstance(response, dict) else None
    if isinstance(credentials, dict):
        LEDGER.add_secret(credentials.get("SecretAccessKey"))
        LEDGER.add_secret(credentials.get("SessionToken"))
    if isinstance(response, dict):
        LEDGER.add_secret(response.get("authorizationToken"))
        parameter = response.get("Parameter")
        if isinstance(parameter, dict) and parameter.get("Type") == "SecureString":
            LEDGER.add_secret(parameter.get("Value"))
    return response


@pytest.fixture(scope="session", autouse=True)
def _secret_capture() -> Iterator[SecretsLedger]:
    """Session-wide capture (cheap); assertions happen only in ``secrets_scan``."""
    handler = _CaptureHandler(level=logging.DEBUG)
    service_logger = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
    service_logger.addHandler(handler)
    logging.getLogger().addHandler(handler)
    botocore.client.BaseClient._make_api_call = _recording_make_api_call  # type: ignore[method-assign]
    try:
        yield LEDGER
    finally:
        botocore.client.BaseClient._make_api_call = _original_make_api_call  # type: ignore[method-assign]
        service_logger.removeHandler(handler)
        logging.getLogger().removeHandler(handler)
    # Whole-suite scan: every line and item captured, against every secret issued.
    leaks = LEDGER.leaks()
    assert not leaks, "\n".join(leaks[:5])


@pytest.fixture
def secrets_scan(_secret_capture: SecretsLedger) -> Iterator[SecretsLedger]:
    """Fail the test if any log line or PutItem item written during it contains an issued secret."""
    logs, records = len(LEDGER.log_lines), len(LEDGER.records)
    yield LEDGER
    leaks = LEDGER.leaks(since_logs=logs, since_records=records)
    assert not leaks, "\n".join(leaks[:5])


# ----------------------------------------------------------------------------- events


class FakeLambdaContext:
    function_name = "kernel-access-vending"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{KERNEL_ACCOUNT}:function:kernel-access-vending"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/kernel-access-vending"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def http_event(
    path: str,
    query: Mapping[str, str] | list[tuple[str, str]] | None = None,
    *,
    user_arn: str | None = PAYMENTS_ARN,
    account_id: str | None = KERNEL_ACCOUNT,
    org_id: str | None = ORG_ID,
    source_ip: str = "203.0.113.7",
    user_agent: str = "kernel-access-tests/1.0",
    request_id: str | None = None,
    raw_query: str | None = None,
    headers: Mapping[str, str] | None = None,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event as API Gateway sends it after IAM authorization."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query or [])
    raw = raw_query if raw_query is not None else urlencode(pairs)
    request_context: dict[str, Any] = {
        "accountId": KERNEL_ACCOUNT,
        "apiId": "api123",
        "domainName": "api123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "api123",
        "http": {
            "method": "GET",
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id or f"req-{uuid.uuid4().hex[:16]}",
        "routeKey": f"GET {path}",
        "stage": "$default",
        "time": "23/Nov/2026:09:00:00 +0000",
        "timeEpoch": 1795424400000,
    }
    if authorizer is not None:
        request_context["authorizer"] = authorizer
    elif user_arn is not None:
        iam: dict[str, Any] = {"userArn": user_arn, "accessKey": "ASIAEXAMPLEEXAMPLE01"}
        if account_id is not None:
            iam["accountId"] = account_id
        if org_id is not None:
            iam["principalOrgId"] = org_id
        request_context["authorizer"] = {"iam": iam}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"GET {path}",
        "rawPath": path,
        "rawQueryString": raw,
        "headers": dict(headers or {"user-agent": user_agent}),
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if pairs:
        params: dict[str, str] = {}
        for key, value in pairs:
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    return event


# ----------------------------------------------------------------------------- moto backend


def vending_environment(**overrides: str) -> dict[str, str]:
    env = {
        settings.AUDIT_TABLE_NAME: AUDIT_TABLE,
        settings.RATE_LIMIT_TABLE_NAME: RATE_LIMIT_TABLE,
        settings.REVOCATION_TABLE_NAME: REVOCATION_TABLE,
        settings.CONFIG_BUCKET: CONFIG_BUCKET,
        settings.POLICY_OBJECT_KEY: POLICY_KEY,
        settings.POLICY_MAX_STALENESS_SECONDS: "300",
        settings.TARGET_ROLES: json.dumps(TARGET_ROLES),
        settings.RATE_LIMIT_REQUESTS: "100",
        settings.RATE_LIMIT_WINDOW_SECONDS: "60",
        settings.AUDIT_RETENTION_DAYS: "400",
        settings.CODEARTIFACT_READER_ROLE_ARN: READER_ROLE_ARN,
        settings.CODEARTIFACT_PUBLISHER_ROLE_ARN: PUBLISHER_ROLE_ARN,
        settings.CODEARTIFACT_DOMAIN_OWNER: KERNEL_ACCOUNT,
        settings.IN_ORG_ROLE_NAME: "kernel-access",
        settings.EXTERNAL_ROLE_NAME: "kernel-access-external",
        settings.KERNEL_ACCOUNT_ID: KERNEL_ACCOUNT,
        settings.PARTITION: "aws",
    }
    env.update(overrides)
    return env


def create_tables(dynamodb: Any) -> None:
    """The schemas the constructs create (audit, rate-limit and revocation tables)."""
    dynamodb.create_table(
        TableName=AUDIT_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "request_id", "AttributeType": "S"},
            {"AttributeName": "recorded_at", "AttributeType": "S"},
            {"AttributeName": "caller_arn", "AttributeType": "S"},
            {"AttributeName": "access_key_id", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-caller",
                "KeySchema": [
                    {"AttributeName": "caller_arn", "KeyType": "HASH"},
                    {"AttributeName": "recorded_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by-access-key",
                "KeySchema": [
                    {"AttributeName": "access_key_id", "KeyType": "HASH"},
                    {"AttributeName": "recorded_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    dynamodb.create_table(
        TableName=RATE_LIMIT_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    dynamodb.create_table(
        TableName=REVOCATION_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "subject", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "subject", "KeyType": "HASH"}],
    )


def clear_table(dynamodb: Any, table: str, key_names: tuple[str, ...]) -> None:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key={k: item[k] for k in key_names})


@dataclass
class AwsBackend:
    """Handles on the moto state shared by a test module."""

    dynamodb: Any
    ssm: Any
    s3: Any
    iam: Any
    sts: Any

    def put_policy(self, document: Mapping[str, Any] | str) -> None:
        value = document if isinstance(document, str) else json.dumps(document)
        self.s3.put_object(Bucket=CONFIG_BUCKET, Key=POLICY_KEY, Body=value.encode())

    def audit_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=AUDIT_TABLE):
            items.extend(page["Items"])
        return items

    def audit_for(self, request_id: str) -> list[dict[str, Any]]:
        response = self.dynamodb.query(
            TableName=AUDIT_TABLE,
            KeyConditionExpression="request_id = :r",
            ExpressionAttributeValues={":r": {"S": request_id}},
        )
        return list(response["Items"])

    def reset_mutable_state(self) -> None:
        clear_table(self.dynamodb, RATE_LIMIT_TABLE, ("pk",))
        clear_table(self.dynamodb, REVOCATION_TABLE, ("subject",))
        self.put_policy(POLICY)


def create_roles(iam: Any) -> None:
    """The target roles and both CodeArtifact minting roles, trusting the kernel account."""
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{KERNEL_ACCOUNT}:root"},
                    "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                }
            ],
        }
    )
    for arn in [*TARGET_ROLES.values(), READER_ROLE_ARN, PUBLISHER_ROLE_ARN]:
        iam.create_role(RoleName=arn.rsplit("/", 1)[-1], AssumeRolePolicyDocument=trust)


def create_config_bucket() -> Any:
    """The versioned config bucket (as the ``ConfigBucket`` construct makes it); its S3 client."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=CONFIG_BUCKET)
    s3.put_bucket_versioning(Bucket=CONFIG_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3


@pytest.fixture(scope="module")
def aws_backend() -> Iterator[AwsBackend]:
    """moto state built ONCE per module: tables, roles, the versioned config bucket with the policy."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_tables(dynamodb)
        iam = boto3.client("iam", region_name=REGION)
        create_roles(iam)
        backend = AwsBackend(
            dynamodb=dynamodb,
            ssm=boto3.client("ssm", region_name=REGION),
            s3=create_config_bucket(),
            iam=iam,
            sts=boto3.client("sts", region_name=REGION),
        )
        backend.put_policy(POLICY)
        yield backend


# ----------------------------------------------------------------------------- CodeArtifact stub


@dataclass
class CodeArtifactStub:
    """A factory of CodeArtifact clients for the vending service, each wrapped in a Stubber with
    exactly one ``GetAuthorizationToken`` response queued (one client per mint)."""

    mints: list[dict[str, Any]] = field(default_factory=list)
    lifetime: timedelta = timedelta(hours=1)
    fail_with: str | None = None

    def __call__(self, credentials: Any) -> Any:
        client = boto3.client(
            "codeartifact",
            region_name=REGION,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
        )
        stubber = Stubber(client)
        expected = {
            "domain": ANY,
            "domainOwner": KERNEL_ACCOUNT,
            "durationSeconds": 0,
        }
        if self.fail_with:
            stubber.add_client_error(
                "get_authorization_token", service_error_code=self.fail_with, http_status_code=503
            )
        else:
            token = "ca-token-" + secrets.token_urlsafe(48)
            expiration = datetime.now(UTC) + self.lifetime
            stubber.add_response(
                "get_authorization_token",
                {"authorizationToken": token, "expiration": expiration},
                expected,
            )
            self.mints.append(
                {
                    "token": token,
                    "access_key_id": credentials.access_key_id,
                    "secret_access_key": credentials.secret_access_key,
                    "session_token": credentials.session_token,
                    "expiration": expiration,
                }
            )
        stubber.activate()
        return client


@pytest.fixture
def codeartifact_stub() -> CodeArtifactStub:
    return CodeArtifactStub()


ServiceFactory = Callable[..., Any]


@pytest.fixture
def sts_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every AssumeRole the service makes (to prove that bad input and refused requests never reach STS)."""
    from kernel_access.vending import service as service_module

    calls: list[dict[str, Any]] = []
    real = service_module.assume_role

    def counting(client: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(client, **kwargs)

    monkeypatch.setattr(service_module, "assume_role", counting)
    return calls


@pytest.fixture
def make_service(aws_backend: AwsBackend, codeartifact_stub: CodeArtifactStub) -> ServiceFactory:
    """Build a fresh VendingService on the module's moto state (fresh caches, reset tables)."""
    from kernel_access.vending.config import VendingConfig
    from kernel_access.vending.service import VendingService

    aws_backend.reset_mutable_state()

    def build(**env_overrides: str) -> Any:
        config = VendingConfig.from_env(vending_environment(**env_overrides))
        service = VendingService(config)
        service.tokens._codeartifact_client = codeartifact_stub  # the one seam moto cannot fill
        return service

    return build
