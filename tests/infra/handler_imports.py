"""Run both Lambda handlers on moto in a fresh interpreter and print which ``kernel_access`` modules
they loaded (one JSON object on stdout).

A separate process because the test process has long since imported most of ``kernel_access``
(CLI, emulator, client); here nothing of it is imported before the handlers are. Each handler is
built from its environment, exactly as in Lambda, and driven through every route and its main refusal
paths, so lazily imported modules (the services, the stores, the CodeArtifact minting) are loaded
as they would be in production. Run by ``tests/infra/test_lambda_asset.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

ACCOUNT = "111111111111"
REGION = "us-east-1"
GITHUB = "https://token.actions.githubusercontent.com"
PAYMENTS = f"arn:aws:sts::{ACCOUNT}:assumed-role/kernel-access/222222222222.ci"
AUDIENCE = f"kernel-access:{ACCOUNT}:{REGION}:exchange"
ARCHIVE_BUCKET = "audit-archive"

POLICY = {
    "version": "asset-1",
    "partners": {
        "payments": {"account_id": "222222222222", "in_organization": True, "organization_id": "o-a1b2c3d4e5"}
    },
    "rules": [
        {"id": "read", "effect": "allow", "partners": ["payments"], "roles": ["kernel-reader"]},
        {
            "id": "tokens",
            "effect": "allow",
            "partners": ["payments"],
            "codeartifact": {"domains": ["kernel"], "access": "read"},
        },
    ],
}
EXCHANGE = {
    "version": "asset-1",
    "issuers": {
        "github": {
            "issuer": GITHUB,
            "audiences": [AUDIENCE],
            "max_permissions": ["s3:Get*", "read"],
        }
    },
    "trust_policies": {
        "deploy": [
            {"name": "main", "issuer": GITHUB, "subject": "repo:acme/app", "permissions": ["s3:Get*"]}
        ],
        "packages": [{"name": "main", "issuer": GITHUB, "subject": "repo:acme/app", "permissions": ["read"]}],
    },
    "targets": {
        "deploy": {"type": "aws_role", "role_arn": f"arn:aws:iam::{ACCOUNT}:role/kernel-reader"},
        "packages": {"type": "codeartifact", "domain": "kernel", "access": "read"},
    },
}


class Context:
    function_name = "kernel-access"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:kernel-access"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/kernel-access"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _context(method: str, path: str, authorizer: dict[str, Any]) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT,
        "apiId": "api123",
        "domainName": "api123.execute-api.us-east-1.amazonaws.com",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1"},
        "requestId": uuid.uuid4().hex,
        "routeKey": f"{method} {path}",
        "stage": "$default",
        "authorizer": authorizer,
    }


def vending_event(path: str, query: dict[str, str]) -> dict[str, Any]:
    iam = {"userArn": PAYMENTS, "accountId": ACCOUNT, "principalOrgId": "o-a1b2c3d4e5", "accessKey": "ASIAX"}
    return {
        "version": "2.0",
        "routeKey": f"GET {path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in query.items()),
        "queryStringParameters": query or None,
        "headers": {"user-agent": "asset-test"},
        "requestContext": _context("GET", path, {"iam": iam}),
        "isBase64Encoded": False,
    }


def exchange_event(body: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": GITHUB,
        "sub": "repo:acme/app",
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
        "iat": str(now),
        "exp": str(now + 300),
    }
    return {
        "version": "2.0",
        "routeKey": "POST /exchange/github",
        "rawPath": "/exchange/github",
        "rawQueryString": "",
        "headers": {"authorization": "Bearer header.payload.signature", "content-type": "application/json"},
        "requestContext": _context("POST", "/exchange/github", {"jwt": {"claims": claims, "scopes": None}}),
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def archive_event() -> dict[str, Any]:
    """One audit-table stream record as the event source mapping delivers it."""
    image = {
        "request_id": {"S": "r-1"},
        "recorded_at": {"S": "2026-11-23T09:00:00Z"},
        "decision": {"S": "allow"},
    }
    record = {
        "eventID": "e-1",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/audit/stream/2026-11-23",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795424400.0,
            "Keys": {"request_id": {"S": "r-1"}},
            "NewImage": image,
            "SequenceNumber": "1",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    return {"Records": [record]}


def provision() -> dict[str, str]:
    import boto3

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    keys = {"audit": ("request_id",), "rate": ("pk",), "revocation": ("subject",)}
    keys |= {"replay": ("jti",), "issued": ("fingerprint",)}
    for table, names in keys.items():
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in names],
            KeySchema=[
                {"AttributeName": n, "KeyType": kind}
                for n, kind in zip(names, ("HASH", "RANGE"), strict=False)
            ],
        )
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARCHIVE_BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=ARCHIVE_BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    s3.create_bucket(Bucket="ka-config")
    s3.put_bucket_versioning(Bucket="ka-config", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="ka-config", Key="vending/policy.json", Body=json.dumps(POLICY).encode())
    s3.put_object(Bucket="ka-config", Key="exchange/config.json", Body=json.dumps(EXCHANGE).encode())
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/ka/hmac", Value="k" * 32, Type="SecureString")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:*"}],
    }
    iam = boto3.client("iam", region_name=REGION)
    for role in ("kernel-reader", "codeartifact-reader"):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    return {
        "KERNEL_ACCESS_AUDIT_TABLE": "audit",
        "KERNEL_ACCESS_RATE_LIMIT_TABLE": "rate",
        "KERNEL_ACCESS_REVOCATION_TABLE": "revocation",
        "KERNEL_ACCESS_REPLAY_TABLE": "replay",
        "KERNEL_ACCESS_ISSUED_TOKENS_TABLE": "issued",
        "KERNEL_ACCESS_CONFIG_BUCKET": "ka-config",
        "KERNEL_ACCESS_POLICY_OBJECT_KEY": "vending/policy.json",
        "KERNEL_ACCESS_EXCHANGE_CONFIG_OBJECT_KEY": "exchange/config.json",
        "KERNEL_ACCESS_AUDIT_HMAC_KEY_PARAMETER": "/ka/hmac",
        "KERNEL_ACCESS_TARGET_ROLES": json.dumps(
            {"kernel-reader": f"arn:aws:iam::{ACCOUNT}:role/kernel-reader"}
        ),
        "KERNEL_ACCESS_CODEARTIFACT_READER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/codeartifact-reader",
        "KERNEL_ACCESS_CODEARTIFACT_DOMAIN_OWNER": ACCOUNT,
        "KERNEL_ACCESS_KERNEL_ACCOUNT_ID": ACCOUNT,
        "KERNEL_ACCESS_PARTITION": "aws",
        "KERNEL_ACCESS_AUDIT_ARCHIVE_BUCKET": ARCHIVE_BUCKET,
    }


def main() -> None:
    os.environ.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        POWERTOOLS_SERVICE_NAME="kernel-access",
        POWERTOOLS_METRICS_NAMESPACE="KernelAccess",
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="CRITICAL",
    )
    assert not [m for m in sys.modules if m.startswith("kernel_access")], "imported before the handlers"
    from moto import mock_aws

    statuses: dict[str, int] = {}
    with mock_aws():
        os.environ.update(provision())
        from kernel_access.handlers import audit_archive, exchange, vending

        calls = {
            "GET /credentials": (vending, vending_event("/credentials", {"role": "kernel-reader"})),
            "GET /credentials bad": (vending, vending_event("/credentials", {"role": "../x"})),
            "GET /codeartifact/token": (vending, vending_event("/codeartifact/token", {"domain": "kernel"})),
            "GET /health": (vending, vending_event("/health", {})),
            "POST /exchange aws_role": (exchange, exchange_event({"target": "deploy"})),
            "POST /exchange codeartifact": (exchange, exchange_event({"target": "packages"})),
            "POST /exchange bad": (exchange, exchange_event({"target": 1})),
        }
        for name, (module, event) in calls.items():
            statuses[name] = module.handler(event, Context())["statusCode"]
        archived = audit_archive.handler(archive_event(), Context())
        statuses["audit archive"] = 200 if archived.get("archived") == 1 else 500
    loaded = sorted(m for m in sys.modules if m == "kernel_access" or m.startswith("kernel_access."))
    # Last line of stdout (the handlers print their EMF metrics before it).
    print(json.dumps({"modules": loaded, "statuses": statuses}))


if __name__ == "__main__":
    main()
