"""Issued-token tracking and ``kernel-access exchange list|revoke`` against moto DynamoDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from kernel_access.cli.main import main
from kernel_access.exchange.issued import (
    IssuedToken,
    IssuedTokenNotFound,
    IssuedTokenStore,
    revocation_advice,
)

from tests.runtime.exchange.conftest import ISSUED_TABLE, Harness, create_role, create_tables

FP_ACTIVE = "sha256:" + "a" * 64
FP_EXPIRED = "sha256:" + "b" * 64
FP_CA = "sha256:" + "c" * 64


def token(fingerprint: str, expires_in: int, kind: str = "aws_credentials") -> IssuedToken:
    now = datetime.now(UTC).replace(microsecond=0)
    return IssuedToken(
        fingerprint=fingerprint,
        kind=kind,  # type: ignore[arg-type]
        issuer="github",
        subject="repo:acme/app:ref:refs/heads/main",
        target="deploy",
        policy="main-branch",
        permissions=("s3:GetObject",),
        issued_at=now - timedelta(seconds=60),
        expires_at=now + timedelta(seconds=expires_in),
        request_id="req-1",
        access_key_id="ASIAEXAMPLE" if kind == "aws_credentials" else None,
        source_identity="github@repo-acme-app" if kind == "aws_credentials" else None,
        role_arn="arn:aws:iam::111111111111:role/ci-deployer",
    )


@pytest.fixture
def store(aws: None) -> IssuedTokenStore:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_tables(client)
    store = IssuedTokenStore(ISSUED_TABLE, lambda: client)
    store.record(token(FP_ACTIVE, 600))
    store.record(token(FP_EXPIRED, -600))
    store.record(token(FP_CA, 600, "codeartifact_token"))
    return store


def test_store_round_trip_list_and_revoke(store: IssuedTokenStore) -> None:
    got = store.get(FP_ACTIVE)
    assert got is not None
    assert (got.kind, got.subject, got.permissions) == (
        "aws_credentials",
        "repo:acme/app:ref:refs/heads/main",
        ("s3:GetObject",),
    )
    assert got.access_key_id == "ASIAEXAMPLE"
    assert got.revoked_at is None
    assert {t.fingerprint for t in store.list()} == {FP_ACTIVE, FP_EXPIRED, FP_CA}
    assert {t.fingerprint for t in store.list(active_only=True)} == {FP_ACTIVE, FP_CA}
    assert not store.is_revoked(FP_ACTIVE)
    revoked = store.revoke(FP_ACTIVE, reason="leak", revoked_by="arn:aws:sts::1:assumed-role/ops/me")
    assert revoked.revoked_reason == "leak"
    assert store.is_revoked(FP_ACTIVE)
    assert {t.fingerprint for t in store.list(active_only=True)} == {FP_CA}
    # First revocation wins.
    again = store.revoke(FP_ACTIVE, reason="other", revoked_by="x")
    assert again.revoked_reason == "leak"
    with pytest.raises(IssuedTokenNotFound):
        store.revoke("sha256:" + "d" * 64, reason="x", revoked_by="y")
    with pytest.raises(Exception):
        store.record(token(FP_CA, 600, "codeartifact_token"))


def test_revocation_advice_is_honest() -> None:
    aws = revocation_advice(token(FP_ACTIVE, 600))
    assert "aws:SourceIdentity" in aws
    assert "aws:TokenIssueTime" in aws
    assert "github@repo-acme-app" in aws
    assert "cannot be revoked" in revocation_advice(token(FP_CA, 600, "codeartifact_token"))


def test_cli_list_and_revoke(store: IssuedTokenStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exchange", "list", "--table", ISSUED_TABLE, "--output", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["fingerprint"] for row in rows} == {FP_ACTIVE, FP_EXPIRED, FP_CA}
    assert main(["exchange", "list", "--active", "--table", ISSUED_TABLE]) == 0
    out = capsys.readouterr().out
    assert FP_ACTIVE in out
    assert FP_EXPIRED not in out

    assert main(["exchange", "revoke", FP_ACTIVE, "--reason", "INC-1: leaked", "--table", ISSUED_TABLE]) == 0
    out = capsys.readouterr().out
    assert f"revoked {FP_ACTIVE}" in out
    assert "aws:TokenIssueTime" in out
    assert store.is_revoked(FP_ACTIVE)

    assert (
        main(["exchange", "revoke", FP_CA, "--reason", "x", "--table", ISSUED_TABLE, "--output", "json"]) == 0
    )
    assert "cannot be revoked" in json.loads(capsys.readouterr().out)["advice"]


def test_cli_errors(
    store: IssuedTokenStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["exchange", "revoke", "not-a-fingerprint", "--reason", "x", "--table", ISSUED_TABLE]) == 1
    assert main(["exchange", "revoke", FP_ACTIVE, "--reason", "  ", "--table", ISSUED_TABLE]) == 1
    assert main(["exchange", "revoke", "sha256:" + "e" * 64, "--reason", "x", "--table", ISSUED_TABLE]) == 1
    assert "no issued token" in capsys.readouterr().err
    monkeypatch.delenv("KERNEL_ACCESS_ISSUED_TOKENS_TABLE", raising=False)
    assert main(["exchange", "list"]) == 1
    with pytest.raises(SystemExit):
        main(["exchange", "revoke", FP_ACTIVE])  # --reason is required by argparse


def test_revoking_what_the_exchange_issued(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    status, body = harness.exchange({"target": "deploy"})
    assert status == 200
    import hashlib

    fingerprint = "sha256:" + hashlib.sha256(body["credentials"]["SessionToken"].encode()).hexdigest()
    # Without the target role the deny cannot be applied: the revocation is recorded and the
    # command says loudly that the sessions are not cut off.
    assert main(["exchange", "revoke", fingerprint, "--reason", "test", "--table", ISSUED_TABLE]) == 1
    assert "NOT cut off" in capsys.readouterr().err
    assert harness.service.issued_tokens.is_revoked(fingerprint)
    create_role(boto3.client("iam", region_name="us-east-1"), "ci-deployer")
    assert main(["exchange", "revoke", fingerprint, "--reason", "test", "--table", ISSUED_TABLE]) == 0
    assert "KernelAccessExchangeRevocations denies 1 revoked session(s)" in capsys.readouterr().out
