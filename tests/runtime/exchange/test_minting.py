"""Minting: the CodeArtifact call checked with botocore's Stubber; STS naming and tags."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.exchange.config import CodeArtifactTarget
from kernel_access.exchange.minting import SESSION_TAG_KEYS, Minter, session_tags, source_identity

READER = "arn:aws:iam::111111111111:role/reader"
PUBLISHER = "arn:aws:iam::111111111111:role/publisher"


def stubbed_codeartifact(
    expected: dict[str, Any], response: dict[str, Any] | None = None, error: str | None = None
) -> Any:
    client = boto3.client("codeartifact", region_name="us-east-1")
    stubber = Stubber(client)
    if error:
        stubber.add_client_error(
            "get_authorization_token", service_error_code=error, expected_params=expected
        )
    else:
        stubber.add_response("get_authorization_token", response or {}, expected)
    stubber.activate()
    return client, stubber


def test_codeartifact_token_via_minting_role(aws: None) -> None:
    expiry = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    client, stubber = stubbed_codeartifact(
        {"domain": "kernel", "domainOwner": "111111111111", "durationSeconds": 1200},
        {"authorizationToken": "secret-token", "expiration": expiry},
    )
    used: list[str] = []

    def factory(credentials: Any) -> Any:
        used.append(credentials.access_key_id)
        return client

    sts = boto3.client("sts", region_name="us-east-1")
    minter = Minter(
        sts_client_factory=lambda: sts,
        codeartifact_client_factory=factory,
        reader_role_arn=READER,
        publisher_role_arn=PUBLISHER,
        domain_owner="111111111111",
    )
    issued = minter.codeartifact(
        CodeArtifactTarget(name="packages", domain="kernel", access="publish"),
        level="publish",
        ttl=1200,
        session_name="exchange.req-1",
        source_identity_value="github@x",
        tags=[],
    )
    stubber.assert_no_pending_responses()
    assert issued.body == {"token": "secret-token"}
    assert issued.expires_at == expiry
    assert issued.role_arn == PUBLISHER
    assert used
    assert used[0].startswith("ASIA")
    assert "secret-token" not in repr(issued)


def test_codeartifact_error_is_upstream_unavailable(aws: None) -> None:
    client, _ = stubbed_codeartifact(
        {"domain": "kernel", "domainOwner": "222222222222", "durationSeconds": 900},
        error="ThrottlingException",
    )
    sts = boto3.client("sts", region_name="us-east-1")
    minter = Minter(
        sts_client_factory=lambda: sts, codeartifact_client_factory=lambda _c: client, reader_role_arn=READER
    )
    with pytest.raises(KernelAccessError) as info:
        minter.codeartifact(
            CodeArtifactTarget(name="p", domain="kernel", access="read", domain_owner="222222222222"),
            level="read",
            ttl=900,
            session_name="s-1",
            source_identity_value="github@x",
            tags=[],
        )
    assert info.value.code is ErrorCode.UPSTREAM_UNAVAILABLE


def test_missing_minting_role_refuses() -> None:
    minter = Minter(sts_client_factory=lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(KernelAccessError) as info:
        minter.codeartifact(
            CodeArtifactTarget(name="p", domain="kernel", access="publish"),
            level="publish",
            ttl=900,
            session_name="s-1",
            source_identity_value="x@y",
            tags=[],
        )
    assert info.value.code is ErrorCode.UPSTREAM_UNAVAILABLE


def test_source_identity_is_sts_safe_and_distinct() -> None:
    short = source_identity("github", "repo:acme/app:ref:refs/heads/main")
    assert short.startswith("github@repo-acme-app-ref-refs-heads-main.")
    long_a = source_identity("github", "repo:acme/" + "a" * 80 + ":ref:refs/heads/main")
    long_b = source_identity("github", "repo:acme/" + "a" * 80 + ":ref:refs/heads/dev")
    for value in (short, long_a, long_b):
        assert 2 <= len(value) <= 64
        assert all(c.isalnum() or c in "_+=,.@-" for c in value)
    assert long_a != long_b
    assert source_identity("gitlab", "plain") == "gitlab@plain"


def test_session_tags_take_only_string_claims_and_sanitize() -> None:
    tags = session_tags(
        {"repository": "acme/app", "ref": "refs/heads/main;rm -rf", "environment": 5, "actor": "mallory"},
        issuer_name="github",
        request_id="r-1",
        token_fingerprint="sha256:" + "a" * 64,
    )
    as_dict = {t["Key"]: t["Value"] for t in tags}
    assert as_dict["exchanged-token"] == "sha256:" + "a" * 64
    assert set(as_dict) <= set(SESSION_TAG_KEYS)
    assert as_dict["oidc-repository"] == "acme/app"
    assert as_dict["oidc-ref"] == "refs/heads/main-rm -rf"
    assert "oidc-environment" not in as_dict
    assert "oidc-actor" not in as_dict
