"""The secrets scan itself: it must catch a leak (canary), and a full run of every route through
the handler — with Logger at DEBUG — must leak nothing issued by moto or the CodeArtifact stub."""

from __future__ import annotations

import json
import logging
import os

import pytest
from kernel_access.handlers import vending

from tests.runtime.conftest import LEDGER, FakeLambdaContext, SecretsLedger, http_event


def test_scanner_catches_a_planted_secret():
    ledger = SecretsLedger()
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    ledger.add_secret(secret)
    ledger.log_lines.append(json.dumps({"message": "oops", "key": secret}))
    ledger.records.append('{"ok": {"S": "nothing here"}}')
    leaks = ledger.leaks()
    assert len(leaks) == 1
    assert leaks[0].startswith("log contains an issued secret")
    assert secret not in leaks[0]  # the report itself does not repeat the secret


def test_capture_sees_powertools_log_lines_and_put_items(aws_backend):
    from aws_lambda_powertools import Logger

    canary = "canary-" + "z" * 20
    before = len(LEDGER.log_lines)
    Logger(child=True).info("canary", extra={"value": canary})
    assert any(canary in line for line in LEDGER.log_lines[before:])
    before_records = len(LEDGER.records)
    aws_backend.dynamodb.put_item(TableName="kernel-access-revocation", Item={"subject": {"S": canary}})
    assert any(canary in record for record in LEDGER.records[before_records:])


def test_every_route_leaks_nothing(make_service, codeartifact_stub, secrets_scan, monkeypatch):
    logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).setLevel(logging.DEBUG)
    service = make_service(KERNEL_ACCESS_AUDIT_HMAC_KEY_PARAMETER="")
    vending.reset_for_tests(service)
    try:
        events = [
            http_event("/credentials", {"role": "kernel-reader"}),
            http_event("/credentials", {"role": "kernel-narrow", "duration": "900"}),
            http_event("/codeartifact/token", {"domain": "kernel"}),
            http_event("/codeartifact/token", {"domain": "kernel"}),
            http_event("/health"),
            http_event("/credentials", {"role": "kernel-admin"}),
        ]
        bodies = [json.loads(vending.handler(e, FakeLambdaContext())["body"]) for e in events]
    finally:
        vending.reset_for_tests(None)
        logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).setLevel(logging.INFO)
    issued = {bodies[0]["SecretAccessKey"], bodies[0]["Token"], bodies[2]["authorizationToken"]}
    assert issued <= secrets_scan.secrets  # the hook saw what moto and the stub issued
    # Minting-role credentials (never returned to callers) were recorded too.
    assert codeartifact_stub.mints[0]["secret_access_key"] in secrets_scan.secrets


@pytest.mark.parametrize("route", ["credentials", "token"])
def test_audit_failure_logs_no_secret(make_service, codeartifact_stub, secrets_scan, route):
    service = make_service(KERNEL_ACCESS_AUDIT_TABLE="no-such-table")
    vending.reset_for_tests(service)
    try:
        path, query = (
            ("/credentials", {"role": "kernel-reader"})
            if route == "credentials"
            else (
                "/codeartifact/token",
                {"domain": "kernel"},
            )
        )
        response = vending.handler(http_event(path, query), FakeLambdaContext())
    finally:
        vending.reset_for_tests(None)
    assert response["statusCode"] == 500


def test_caller_signatures_and_hmac_key_reach_no_log_or_record(make_service, aws_backend, secrets_scan):
    """What callers send (SigV4 Authorization header, session token header) and the audit HMAC key
    from SSM are secrets too: every route and refusal, with Logger at DEBUG, leaks none of them."""
    import secrets as random_secrets

    hmac_key = random_secrets.token_hex(32)
    aws_backend.ssm.put_parameter(
        Name="/kernel-access/audit-hmac-scan",
        Value=hmac_key,
        Type="SecureString",
        Overwrite=True,
    )
    signature = random_secrets.token_hex(32)
    session_token = "IQoJb3JpZ2luX2VjE" + random_secrets.token_urlsafe(120)
    authorization = (
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEEXAMPLE01/20261123/us-east-1/execute-api/aws4_request, "
        f"SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={signature}"
    )
    secrets_scan.add_secret(signature)
    secrets_scan.add_secret(session_token)
    headers = {"authorization": authorization, "x-amz-security-token": session_token, "user-agent": "scan"}
    service = make_service(KERNEL_ACCESS_AUDIT_HMAC_KEY_PARAMETER="/kernel-access/audit-hmac-scan")
    # Requests are counted before validation (the malformed role too; the unknown route is not
    # routed to the limiter): the sixth counted, the last, is limited.
    service.limiter.limit = 5
    logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).setLevel(logging.DEBUG)
    vending.reset_for_tests(service)
    try:
        requests = [
            ("/credentials", {"role": "kernel-reader"}),
            ("/codeartifact/token", {"domain": "kernel"}),
            ("/health", {}),
            ("/credentials", {"role": "kernel-admin"}),
            ("/credentials", {"role": "bad role"}),
            ("/nowhere", {}),
            ("/credentials", {"role": "kernel-reader"}),
        ]
        statuses = [
            vending.handler(http_event(path, query, headers=headers), FakeLambdaContext())["statusCode"]
            for path, query in requests
        ]
    finally:
        vending.reset_for_tests(None)
        logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).setLevel(logging.INFO)
    assert statuses == [200, 200, 200, 403, 400, 400, 429]
    # The key was read (so it is in the ledger): the scan at teardown checks it against everything.
    assert hmac_key in secrets_scan.secrets
