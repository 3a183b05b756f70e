"""Fixtures for the exchange tests: RSA-signed OIDC tokens, moto tables, a configured service."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from kernel_access.audit import AuditLog
from kernel_access.document_store import Fetch, Fetched
from kernel_access.exchange.issued import IssuedTokenStore
from kernel_access.exchange.minting import Minter
from kernel_access.exchange.replay import ReplayGuard
from kernel_access.exchange.service import ExchangeService
from kernel_access.exchange.store import ExchangeConfigStore
from kernel_access.handlers import exchange as exchange_handler
from kernel_access.ratelimit import RateLimiter
from kernel_access.revocation import RevocationStore
from moto import mock_aws

GITHUB = "https://token.actions.githubusercontent.com"
GITLAB = "https://gitlab.example.com"
NOW = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
KERNEL = "111111111111"
DEPLOY_ROLE = f"arn:aws:iam::{KERNEL}:role/ci-deployer"
READER_ROLE = f"arn:aws:iam::{KERNEL}:role/ka-codeartifact-reader"
PUBLISHER_ROLE = f"arn:aws:iam::{KERNEL}:role/ka-codeartifact-publisher"
AUDIT_TABLE, RATE_TABLE, REPLAY_TABLE, ISSUED_TABLE = "audit", "rate", "replay", "issued"
CONFIG_BUCKET = "kernel-access-config"
CONFIG_KEY = "exchange/config.json"


def wiring_environment(**extra: str) -> dict[str, str]:
    """What ``exchange.wiring.service_from_env`` requires (the configuration object and the five
    tables), plus ``extra``."""
    from kernel_access import settings

    return {
        settings.CONFIG_BUCKET: CONFIG_BUCKET,
        settings.EXCHANGE_CONFIG_OBJECT_KEY: CONFIG_KEY,
        settings.REPLAY_TABLE_NAME: "replay",
        settings.ISSUED_TOKENS_TABLE_NAME: "issued",
        settings.AUDIT_TABLE_NAME: "audit",
        settings.RATE_LIMIT_TABLE_NAME: "rate",
        settings.REVOCATION_TABLE_NAME: "revocation",
        **extra,
    }


REVOCATION_TABLE = "revocation"
#: The audience workflows request for this test deployment (never a shared one such as STS's).
AUDIENCE = "kernel-access:111111111111:us-east-1:exchange"


def fixed(document: Any) -> Fetch:
    """A fetch that always answers ``document`` (JSON-encoded unless already text), without a tag."""
    body = document if isinstance(document, str) else json.dumps(document)
    return lambda _etag: Fetched(body)


def example_config() -> dict[str, Any]:
    return {
        "version": "2026-11-23.1",
        "issuers": {
            "github": {
                "issuer": GITHUB,
                "audiences": [AUDIENCE, "kernel-access"],
                "required_claims": {"repository_owner": "acme"},
                "forbidden_claims": {"ref": "refs/heads/experimental/.*"},
                "max_permissions": [
                    "s3:Get*",
                    "s3:List*",
                    "s3:PutObject",
                    "cloudformation:Describe*",
                    "read",
                    "publish",
                ],
                "max_token_age_seconds": 600,
            },
            "gitlab": {
                "issuer": GITLAB,
                "audiences": ["kernel-access"],
                "max_permissions": ["read"],
            },
        },
        "trust_policies": {
            "deploy": [
                {
                    "name": "main-branch",
                    "issuer": GITHUB,
                    "subject_pattern": "repo:acme/[^/]+:ref:refs/heads/main",
                    "audience": AUDIENCE,
                    "claim_pattern": {
                        "workflow_ref": "acme/[^/]+/\\.github/workflows/deploy\\.yml@refs/heads/main"
                    },
                    "permissions": ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "cloudformation:*"],
                    "token_ttl": 1800,
                },
                {
                    "name": "any-branch-read",
                    "issuer": GITHUB,
                    "subject_pattern": "repo:acme/app:.*",
                    "permissions": ["s3:Get*"],
                },
            ],
            "packages": [
                {
                    "name": "publish-from-main",
                    "issuer_pattern": "https://token\\.actions\\.githubusercontent\\.com",
                    "subject": "repo:acme/lib:ref:refs/heads/main",
                    "claim_pattern": {"ref_protected": "true"},
                    "permissions": ["publish"],
                    "token_ttl": 3600,
                },
                {
                    "name": "read-any-acme",
                    "issuer": GITHUB,
                    "subject_pattern": "repo:acme/.*",
                    "permissions": ["read"],
                },
                {
                    "name": "gitlab-read",
                    "issuer": GITLAB,
                    "subject_pattern": "project_path:acme/.+:ref_type:branch:ref:main",
                    "permissions": ["read"],
                },
            ],
        },
        "targets": {
            "deploy": {"type": "aws_role", "role_arn": DEPLOY_ROLE},
            "packages": {"type": "codeartifact", "domain": "kernel", "access": "publish"},
            "unprotected": {"type": "aws_role", "role_arn": f"arn:aws:iam::{KERNEL}:role/unused"},
        },
    }


@dataclass
class TokenFactory:
    """Signs OIDC tokens with a key generated for the test run (what the JWT authorizer verifies)."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": GITHUB,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "aud": AUDIENCE,
            "jti": str(uuid.uuid4()),
            "iat": int(NOW.timestamp()) - 30,
            "nbf": int(NOW.timestamp()) - 30,
            "exp": int(NOW.timestamp()) + 270,
            "repository": "acme/app",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "ref_protected": True,
            "workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test"})

    def verify(self, token: str, audience: str | list[str]) -> dict[str, Any]:
        decoded: dict[str, Any] = jwt.decode(
            token,
            self.key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        return decoded


def make_event(
    token: str | None,
    claims: dict[str, Any] | None,
    body: Any = None,
    *,
    issuer_name: str = "github",
    raw_body: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An HTTP API payload-2.0 event as API Gateway sends it after the JWT authorizer succeeded."""
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    if text is not None and base64_body:
        text = base64.b64encode(text.encode()).decode()
    headers = {"content-type": "application/json", "user-agent": "pytest"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    request_context: dict[str, Any] = {
        "accountId": KERNEL,
        "apiId": "api123",
        "domainName": "api123.execute-api.us-east-1.amazonaws.com",
        "http": {
            "method": "POST",
            "path": f"/exchange/{issuer_name}",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.10",
            "userAgent": "pytest",
        },
        "requestId": f"req-{uuid.uuid4()}",
        "routeKey": f"POST /exchange/{issuer_name}",
        "stage": "$default",
        "time": "23/Nov/2026:09:00:00 +0000",
        "timeEpoch": int(NOW.timestamp() * 1000),
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return {
        "version": "2.0",
        "routeKey": f"POST /exchange/{issuer_name}",
        "rawPath": f"/exchange/{issuer_name}",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": request_context,
        "body": text,
        "isBase64Encoded": base64_body,
    }


def create_tables(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=AUDIT_TABLE,
        KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "request_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for name, key in (
        (RATE_TABLE, "pk"),
        (REPLAY_TABLE, "jti"),
        (ISSUED_TABLE, "fingerprint"),
        (REVOCATION_TABLE, "subject"),
    ):
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def create_role(iam: Any, name: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{KERNEL}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            }
        ],
    }
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    return arn


@dataclass
class Harness:
    """A service wired to moto tables, with knobs the tests turn."""

    tokens: TokenFactory
    service: ExchangeService
    dynamodb: Any
    sts_calls: list[dict[str, Any]]
    codeartifact_calls: list[dict[str, Any]]
    config: dict[str, Any]
    clock: list[datetime]

    def call(self, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        exchange_handler.reset_for_tests(self.service)
        response = exchange_handler.handle(event, "lambda-request-id")
        return response["statusCode"], json.loads(response["body"]), response["headers"]

    def exchange(
        self, body: Any, *, issuer_name: str = "github", **claim_overrides: Any
    ) -> tuple[int, dict[str, Any]]:
        claims = self.tokens.claims(**claim_overrides)
        token = self.tokens.sign(claims)
        status, payload, _ = self.call(make_event(token, claims, body, issuer_name=issuer_name))
        return status, payload

    def audit_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.dynamodb.scan(TableName=AUDIT_TABLE)["Items"]
        return items

    def issued_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.dynamodb.scan(TableName=ISSUED_TABLE)["Items"]
        return items


class FakeCodeArtifact:
    """Stands in for the CodeArtifact client (moto has none); records calls. The Stubber-based test
    in test_minting.py checks the real client's request shape."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls

    def get_authorization_token(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {
            "authorizationToken": f"ca-token-{len(self.calls)}-{uuid.uuid4().hex}",
            "expiration": datetime.fromtimestamp(NOW.timestamp() + kwargs["durationSeconds"], UTC),
        }


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def build_harness(tokens: TokenFactory, aws: None) -> Callable[..., Harness]:
    def build(config: dict[str, Any] | None = None, *, rate_limit: int = 100) -> Harness:
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(dynamodb)
        # (moto's AssumeRole does not require the role to exist; no IAM setup needed.)
        sts = boto3.client("sts", region_name="us-east-1")
        sts_calls: list[dict[str, Any]] = []

        def record_sts(params: dict[str, Any], **_: Any) -> None:
            sts_calls.append(dict(params))

        sts.meta.events.register("provide-client-params.sts.AssumeRole", record_sts)
        document = config if config is not None else example_config()
        clock = [NOW]
        codeartifact_calls: list[dict[str, Any]] = []
        service = ExchangeService(
            config_store=ExchangeConfigStore(fixed(document), clock=lambda: 0.0),
            replay_guard=ReplayGuard(REPLAY_TABLE, lambda: dynamodb),
            issued_tokens=IssuedTokenStore(ISSUED_TABLE, lambda: dynamodb),
            revocations=RevocationStore(REVOCATION_TABLE, lambda: dynamodb),
            audit=AuditLog(AUDIT_TABLE, lambda: dynamodb),
            rate_limiter=RateLimiter(
                RATE_TABLE,
                lambda: dynamodb,
                limit=rate_limit,
                window_seconds=60,
                clock=clock[0].timestamp,
            ),
            minter=Minter(
                sts_client_factory=lambda: sts,
                codeartifact_client_factory=lambda _credentials: FakeCodeArtifact(codeartifact_calls),  # type: ignore[arg-type,return-value]
                reader_role_arn=READER_ROLE,
                publisher_role_arn=PUBLISHER_ROLE,
                domain_owner=KERNEL,
            ),
            clock=lambda: clock[0],
        )
        return Harness(tokens, service, dynamodb, sts_calls, codeartifact_calls, document, clock)

    return build


@pytest.fixture
def harness(build_harness: Callable[..., Harness]) -> Harness:
    return build_harness()
