"""The example kernel stack, as `cdk synth` produces it, running locally: the vending API end to end.

Caller (partner session of a kernel role, SigV4) → emulator's IAM authorizer → vending handler
(in-process, template environment) → moto STS/DynamoDB/SSM. Every decision must be in the audit table.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import Emulator, Response, http


@pytest.fixture(scope="module")
def vending(kernel_emulator: Emulator) -> str:
    return str(kernel_emulator.state["vending_url"])


def audit_items(emulator: Emulator, request_id: str) -> list[dict[str, Any]]:
    """Every audit item written for a request (by its API Gateway request id), as DynamoDB returns them."""
    dynamodb = emulator.client("dynamodb")
    items: list[dict[str, Any]] = dynamodb.query(
        TableName=emulator.state["audit_table"],
        KeyConditionExpression="request_id = :r",
        ExpressionAttributeValues={":r": {"S": request_id}},
        ConsistentRead=True,
    )["Items"]
    return items


def audit_record(emulator: Emulator, request_id: str) -> dict[str, Any]:
    """The one audit record of a request (by its API Gateway request id), flattened."""
    items = audit_items(emulator, request_id)
    assert len(items) == 1, f"expected one audit record for {request_id}, found {len(items)}"
    return {k: next(iter(v.values())) for k, v in items[0].items()}


def get_credentials(emulator: Emulator, url: str, creds: dict[str, str], query: str) -> Response:
    return emulator.call("GET", f"{url}/credentials?{query}", creds)


def test_stack_resources_come_from_the_template(kernel_emulator: Emulator) -> None:
    state = kernel_emulator.state
    assert state["account_id"] == "111111111111"
    assert state["audit_table"] in state["tables"].values()
    assert set(state["target_roles"]) == {"kernel-reader", "kernel-deployer"}
    [url] = [u for u in state["objects"] if u.endswith("/vending/policy.json")]
    bucket, key = url.removeprefix("s3://").split("/", 1)
    policy = json.loads(kernel_emulator.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert {"payments", "acme-analytics"} <= set(policy["partners"])
    indexes = kernel_emulator.client("dynamodb").describe_table(TableName=state["audit_table"])["Table"]
    assert {i["IndexName"] for i in indexes["GlobalSecondaryIndexes"]} == {
        "by-caller",
        "by-access-key",
        "by-partner",
    }


def test_vended_credentials_work_and_are_audited(kernel_emulator: Emulator, vending: str) -> None:
    caller = kernel_emulator.partner_session("payments", "e2e-vend")
    response = get_credentials(kernel_emulator, vending, caller, "role=kernel-reader&duration=900")
    assert response.status == 200, response.body
    body = response.json()
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    assert body["Expiration"].endswith("Z")
    assert body["AccountId"] == "111111111111"
    identity = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=kernel_emulator.moto,
        aws_access_key_id=body["AccessKeyId"],
        aws_secret_access_key=body["SecretAccessKey"],
        aws_session_token=body["Token"],
    ).get_caller_identity()
    assert identity["Arn"].startswith("arn:aws:sts::111111111111:assumed-role/kernel-reader/")
    record = audit_record(kernel_emulator, response.headers["apigw-requestid"])
    assert record["decision"] == "allow"
    assert record["partner"] == "payments"
    assert (
        record["caller_arn"] == "arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.e2e-vend"
    )
    assert record["access_key_id"] == body["AccessKeyId"]
    flat = json.dumps(record)
    assert body["SecretAccessKey"] not in flat
    assert body["Token"] not in flat


def test_policy_deny_is_403_and_audited(kernel_emulator: Emulator, vending: str) -> None:
    caller = kernel_emulator.partner_session("acme-analytics", "e2e-deny")
    response = get_credentials(kernel_emulator, vending, caller, "role=kernel-deployer")
    assert response.status == 403
    body = response.json()
    assert body["error_code"] == "POLICY_DENY"
    assert body["details"]["rule_id"] == "deny-external-deployer"
    record = audit_record(kernel_emulator, body["request_id"])
    assert record["decision"] == "deny"
    assert record["error_code"] == "POLICY_DENY"
    assert "access_key_id" not in record


def test_session_not_named_for_a_partner_is_denied(kernel_emulator: Emulator) -> None:
    """A kernel-access session whose name does not start with a known partner is nobody: with local
    IAM on (the default), as in AWS, the trust policy's sts:RoleSessionName condition already refuses
    to create it (tests/e2e/test_local_iam.py covers each trust condition)."""
    from botocore.exceptions import ClientError

    payments = kernel_emulator.partner("payments")
    workload = kernel_emulator.workload(payments["account_id"], "payments-workload")
    with pytest.raises(ClientError) as refused:
        kernel_emulator.assume(payments["role_arn"], "stranger.e2e", caller=workload)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_revoked_caller_gets_session_revoked(kernel_emulator: Emulator, vending: str) -> None:
    caller = kernel_emulator.partner_session("payments", "e2e-revoked")
    arn = "arn:aws:sts::111111111111:assumed-role/kernel-access/222222222222.e2e-revoked"
    assert get_credentials(kernel_emulator, vending, caller, "role=kernel-reader").status == 200
    revocations = kernel_emulator.state["functions"]
    table = next(
        f["environment"]["KERNEL_ACCESS_REVOCATION_TABLE"]
        for f in revocations.values()
        if "KERNEL_ACCESS_REVOCATION_TABLE" in f["environment"]
    )
    kernel_emulator.client("dynamodb").put_item(
        TableName=table,
        Item={
            "subject": {"S": f"caller#{arn}"},
            "reason": {"S": "e2e test"},
            "revoked_by": {"S": "e2e"},
            "revoked_at": {"S": "2026-11-23T00:00:00Z"},
        },
    )
    response = get_credentials(kernel_emulator, vending, caller, "role=kernel-reader")
    assert response.status == 403
    body = response.json()
    assert body["error_code"] == "SESSION_REVOKED"
    assert audit_record(kernel_emulator, body["request_id"])["error_code"] == "SESSION_REVOKED"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("role=kernel-reader&duration=abc", 400, "INVALID_REQUEST"),
        ("role=kernel-reader&duration=60", 400, "INVALID_REQUEST"),
        ("role=kernel-reader&duration=7200", 400, "INVALID_REQUEST"),
        ("role=../../etc", 400, "INVALID_REQUEST"),
        ("role=kernel-reader&role=kernel-deployer", 400, "INVALID_REQUEST"),
        ("role=kernel-reader&admin=true", 400, "INVALID_REQUEST"),
        ("", 400, "INVALID_REQUEST"),
        # An unknown role is reported as ROLE_NOT_FOUND only to callers a rule would allow (no
        # enumeration of role names): for this caller no rule matches, so it is a policy deny.
        ("role=no-such-role", 403, "POLICY_DENY"),
    ],
)
def test_malformed_requests_get_documented_codes(
    kernel_emulator: Emulator, vending: str, query: str, status: int, code: str
) -> None:
    caller = dict(kernel_emulator.partner("payments")["credentials"])
    response = get_credentials(kernel_emulator, vending, caller, query)
    assert response.status == status, response.body
    body = response.json()
    assert body["error_code"] == code
    assert body["request_id"] == response.headers["apigw-requestid"]
    assert audit_record(kernel_emulator, body["request_id"])["decision"] != "allow"


def test_unsigned_request_never_reaches_the_handler(kernel_emulator: Emulator, vending: str) -> None:
    response = http("GET", f"{vending}/credentials?role=kernel-reader")
    assert response.status == 403
    assert response.json() == {"message": "Forbidden"}


def test_rate_limit_returns_429_with_retry_after(kernel_emulator: Emulator, vending: str) -> None:
    """The emulator's per-session limit: 100 requests per 60 s. One fresh session, 205 requests."""
    caller = kernel_emulator.partner_session("payments", "e2e-ratelimit")

    def one(_: int) -> Response:
        return kernel_emulator.call("GET", f"{vending}/credentials?role=kernel-reader&duration=900", caller)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one, range(205)))
    statuses = [r.status for r in responses]
    assert set(statuses) <= {200, 429}
    # A fixed window may roll over once during the burst: at most 200 can pass.
    assert 100 <= statuses.count(200) <= 200
    limited = [r for r in responses if r.status == 429]
    for response in limited:
        body = response.json()
        assert body["error_code"] == "RATE_LIMITED"
        assert int(response.headers["retry-after"]) >= 1
        assert body["retry_after_seconds"] >= 1
    # Refusals are sampled into the audit table (the 1st, 2nd, 4th, 8th, ... of a window), and with
    # 8 concurrent callers the first 429 in submission order need not be the first refusal counted:
    # some refusals are audited, far fewer than were answered.
    audited = [
        audit_record(kernel_emulator, r.json()["request_id"])
        for r in limited
        if audit_items(kernel_emulator, r.json()["request_id"])
    ]
    assert audited
    assert all(record["error_code"] == "RATE_LIMITED" for record in audited)
    # At most two windows: 1 + floor(log2(n)) sampled refusals in each.
    assert len(audited) <= 2 * (1 + len(limited).bit_length())


def test_health(kernel_emulator: Emulator, vending: str) -> None:
    caller = dict(kernel_emulator.partner("payments")["credentials"])
    response = kernel_emulator.call("GET", f"{vending}/health", caller)
    assert response.status == 200
    assert response.json()["status"] == "ok"


def test_codeartifact_token_from_the_local_stand_in_is_audited_by_fingerprint(
    kernel_emulator: Emulator, vending: str
) -> None:
    """moto has no CodeArtifact: the emulator's stand-in mints for the template's domain only."""
    assert kernel_emulator.state["codeartifact_domains"] == ["kernel"]
    caller = kernel_emulator.partner_session("payments", "e2e-codeartifact")
    response = kernel_emulator.call(
        "GET", f"{vending}/codeartifact/token?domain=kernel&repository=internal&duration=900", caller
    )
    assert response.status == 200, response.body
    body = response.json()
    assert set(body) == {"authorizationToken", "expiration"}
    assert body["authorizationToken"].startswith("local-codeartifact-")
    record = audit_record(kernel_emulator, response.headers["apigw-requestid"])
    assert record["decision"] == "allow"
    assert record["codeartifact_domain"] == "kernel"
    assert record["codeartifact_access"] == "publish"  # payments-publish matches first
    assert record["token_fingerprint"]
    assert body["authorizationToken"] not in json.dumps(record)


def test_codeartifact_domain_the_policy_does_not_name_is_denied(
    kernel_emulator: Emulator, vending: str
) -> None:
    caller = kernel_emulator.partner_session("acme-analytics", "e2e-codeartifact")
    response = kernel_emulator.call("GET", f"{vending}/codeartifact/token?domain=elsewhere", caller)
    assert response.status == 403
    assert response.json()["error_code"] == "POLICY_DENY"


def test_codeartifact_stand_in_checks_signature_domain_owner_and_duration(
    kernel_emulator: Emulator,
) -> None:
    from botocore.exceptions import ClientError

    admin = kernel_emulator.kernel_admin()

    def client(creds: dict[str, str]) -> Any:
        return boto3.client(
            "codeartifact",
            region_name=kernel_emulator.region,
            endpoint_url=kernel_emulator.state["codeartifact_endpoint"],
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=creds["AWS_SESSION_TOKEN"],
        )

    token = client(admin).get_authorization_token(
        domain="kernel", domainOwner="111111111111", durationSeconds=900
    )
    assert token["authorizationToken"].startswith("local-codeartifact-")
    refusals = [
        (admin, {"domain": "nope", "domainOwner": "111111111111"}, "ResourceNotFoundException"),
        (admin, {"domain": "kernel", "domainOwner": "999999999999"}, "ResourceNotFoundException"),
        (admin, {"domain": "kernel", "durationSeconds": 60}, "ValidationException"),
        (dict(admin, AWS_SECRET_ACCESS_KEY="x" * 40), {"domain": "kernel"}, "UnrecognizedClientException"),
    ]
    for creds, kwargs, code in refusals:
        with pytest.raises(ClientError) as caught:
            client(creds).get_authorization_token(**kwargs)
        assert caught.value.response["Error"]["Code"] == code, kwargs
