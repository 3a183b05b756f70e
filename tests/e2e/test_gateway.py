"""The emulator's HTTP API behaviour, on a small hand-written stack (fixtures/echo-stack.template.json).

These pin what API Gateway does: SigV4 refusals with its messages, the payload-2.0 event and its
IAM/JWT authorizer context, response mapping, handler errors - independent of the vending code.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.conftest import FIXTURES, Emulator, http, utcnow


@pytest.fixture(scope="module")
def api(echo_emulator: Emulator) -> str:
    return echo_emulator.api("HttpApi")


@pytest.fixture(scope="module")
def payments(echo_emulator: Emulator) -> dict[str, str]:
    return dict(echo_emulator.partner("payments")["credentials"])


def test_state_describes_the_template(echo_emulator: Emulator) -> None:
    state = echo_emulator.state
    assert state["stack"] == "echo-stack"
    assert set(state["tables"]) == {"AuditTable1A2B3C"}
    assert state["parameters"] == {"PolicyParameterABCD": "/echo-stack/policy"}
    assert {p["partner"] for p in state["partners"]} == {"payments", "acme-analytics"}
    acme = echo_emulator.partner("acme-analytics")
    assert acme["external_id"] == "ka-acme-1234"
    assert acme["session_arn"].endswith(":assumed-role/kernel-access-external/acme-analytics.local")
    assert (echo_emulator.state_dir / "state.json").stat().st_mode & 0o077 == 0


def test_table_created_with_keys_indexes_and_ttl(echo_emulator: Emulator) -> None:
    dynamodb = echo_emulator.client("dynamodb")
    name = echo_emulator.state["tables"]["AuditTable1A2B3C"]
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["request_id", "recorded_at"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-caller"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_roles_keep_the_template_trust_policy(echo_emulator: Emulator) -> None:
    iam = echo_emulator.client("iam")
    role = iam.get_role(RoleName="kernel-access")["Role"]
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::222222222222:root"}
    assert statement["Condition"]["StringLike"] == {"sts:RoleSessionName": "payments.*"}
    assert role["MaxSessionDuration"] == 3600


def test_signed_request_becomes_a_payload_v2_event(
    echo_emulator: Emulator, api: str, payments: dict[str, str]
) -> None:
    response = echo_emulator.call(
        "POST",
        f"{api}/items/42?a=1&a=2&b=x",
        payments,
        body=b'{"hello": "world"}',
        headers={
            "Content-Type": "application/json",
            "Cookie": "c1=v1; c2=v2",
            "X-Kernel-Caller-Arn": "forged",
        },
    )
    assert response.status == 200, response.body
    assert response.headers["x-echo"] == "yes"
    assert "apigw-requestid" in response.headers
    payload = response.json()
    event = payload["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /items/{id}"
    assert event["rawPath"] == "/items/42"
    assert event["rawQueryString"] == "a=1&a=2&b=x"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x"}
    assert event["pathParameters"] == {"id": "42"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert json.loads(event["body"]) == {"hello": "world"}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    iam = context["authorizer"]["iam"]
    assert iam["accessKey"] == payments["AWS_ACCESS_KEY_ID"]
    assert iam["userArn"] == echo_emulator.partner("payments")["session_arn"]
    assert iam["accountId"] == echo_emulator.state["account_id"]
    assert iam["callerId"] == iam["userId"]
    assert iam["userId"].endswith(":payments.local")
    assert iam["principalOrgId"] == "o-a1b2c3d4e5"
    assert iam["cognitoIdentity"] is None
    # The function ran with its template environment resolved to local names, as its own role.
    env = payload["env"]
    table = echo_emulator.state["tables"]["AuditTable1A2B3C"]
    assert env["AUDIT_TABLE"] == table
    assert env["POLICY_PARAMETER"] == "/echo-stack/policy"
    assert env["SELF_URL"] == api
    assert env["SUBSTITUTED"] == f"us-east-1:{table}:arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == payload["function"]
    assert payload["me"].startswith("arn:aws:sts::123456789012:assumed-role/echo-stack-EchoServiceRoleABCD/")
    assert 0 < payload["remaining"] <= 10_000
    # ...and its boto3 calls reached the local DynamoDB.
    records = [i for i in echo_emulator.scan(table) if i["request_id"]["S"] == context["requestId"]]
    assert records
    assert records[0]["caller_arn"]["S"] == iam["userArn"]


def test_missing_signature_is_forbidden(api: str) -> None:
    response = http("GET", f"{api}/echo")
    assert response.status == 403
    assert response.json() == {"message": "Forbidden"}


def test_bad_signature_is_refused(echo_emulator: Emulator, api: str, payments: dict[str, str]) -> None:
    wrong = dict(payments, AWS_SECRET_ACCESS_KEY="x" * 40)
    response = echo_emulator.call("GET", f"{api}/echo", wrong)
    assert response.status == 403
    assert response.json()["message"].startswith("The request signature we calculated does not match")
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"


def test_tampered_query_is_refused(echo_emulator: Emulator, api: str, payments: dict[str, str]) -> None:
    from tests.e2e.conftest import signed_headers

    headers = signed_headers("GET", f"{api}/echo?role=a", payments)
    response = http("GET", f"{api}/echo?role=b", headers)
    assert response.status == 403


def test_stale_date_is_refused(echo_emulator: Emulator, api: str, payments: dict[str, str]) -> None:
    response = echo_emulator.call("GET", f"{api}/echo", payments, when=utcnow() - timedelta(minutes=16))
    assert response.status == 403
    assert response.json() == {"message": "Signature expired."}


@pytest.mark.parametrize(("region", "service"), [("eu-west-1", "execute-api"), ("us-east-1", "lambda")])
def test_wrong_scope_is_refused(
    echo_emulator: Emulator, api: str, payments: dict[str, str], region: str, service: str
) -> None:
    response = echo_emulator.call("GET", f"{api}/echo", payments, region=region, service=service)
    assert response.status == 403
    assert "scoped" in response.json()["message"]


def test_unknown_key_and_wrong_token_are_refused(
    echo_emulator: Emulator, api: str, payments: dict[str, str]
) -> None:
    unknown = dict(payments, AWS_ACCESS_KEY_ID="ASIAUNKNOWNKEY000000")
    assert echo_emulator.call("GET", f"{api}/echo", unknown).json() == {
        "message": "The security token included in the request is invalid."
    }
    other_token = dict(payments, AWS_SESSION_TOKEN="not-the-session-token")
    assert echo_emulator.call("GET", f"{api}/echo", other_token).status == 403


def test_unrouted_path_is_not_found(echo_emulator: Emulator, api: str, payments: dict[str, str]) -> None:
    response = echo_emulator.call("GET", f"{api}/nope", payments)
    assert response.status == 404
    assert response.json() == {"message": "Not Found"}
    assert echo_emulator.call("DELETE", f"{api}/echo", payments).status == 404


def test_handler_exception_is_internal_server_error(api: str) -> None:
    response = http("GET", f"{api}/boom")
    assert response.status == 500
    assert response.json() == {"message": "Internal Server Error"}


def _issuer(echo_emulator: Emulator) -> dict[str, object]:
    return next(i for i in echo_emulator.state["issuers"] if i["name"] == "github")


def _token(echo_emulator: Emulator, key: object = None, **claims: object) -> str:
    issuer = _issuer(echo_emulator)
    now = int(time.time())
    payload = {
        "iss": issuer["issuer"],
        "aud": "kernel-access",
        "sub": "repo:acme/app:ref:refs/heads/main",
        "iat": now,
        "exp": now + 300,
        "jti": f"jti-{now}",
        "repository": "acme/app",
        "ephemeral": True,
    }
    payload.update(claims)
    signing_key = key or issuer["private_key_pem"]
    return jwt.encode(payload, signing_key, algorithm="RS256", headers={"kid": issuer["key_id"]})


def test_jwt_route_passes_claims_as_strings(echo_emulator: Emulator, api: str) -> None:
    token = _token(echo_emulator, groups=["a", "b"])
    response = http("POST", f"{api}/exchange/github", {"Authorization": f"Bearer {token}"}, b"{}")
    assert response.status == 200, response.body
    jwt_context = response.json()["event"]["requestContext"]["authorizer"]["jwt"]
    claims = jwt_context["claims"]
    assert claims["iss"] == "https://token.actions.githubusercontent.com"
    assert claims["sub"] == "repo:acme/app:ref:refs/heads/main"
    assert claims["ephemeral"] == "true"
    assert claims["groups"] == "[a b]"
    assert isinstance(claims["exp"], str)


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"iss": "https://gitlab.com"},
        {"exp": int(time.time()) - 3600},
        {"iat": int(time.time()) + 3600},
    ],
    ids=["audience", "issuer", "expired", "future-iat"],
)
def test_jwt_route_rejects_invalid_tokens(
    echo_emulator: Emulator, api: str, claims: dict[str, object]
) -> None:
    token = _token(echo_emulator, **claims)
    response = http("POST", f"{api}/exchange/github", {"Authorization": f"Bearer {token}"}, b"{}")
    assert response.status == 401
    assert response.json() == {"message": "Unauthorized"}


def test_jwt_route_rejects_a_foreign_key_and_no_token(echo_emulator: Emulator, api: str) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = http("POST", f"{api}/exchange/github", {"Authorization": _token(echo_emulator, key=foreign)})
    assert response.status == 401
    assert http("POST", f"{api}/exchange/github").status == 401


def test_cli_mints_a_token_the_emulator_accepts(tmp_path: Path) -> None:
    """`kernel-access local --issuer github` prints a token that its own JWT authorizer accepts."""
    import subprocess
    import sys

    from tests.e2e.conftest import PROJECT

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_access",
            "local",
            "--template",
            str(FIXTURES / "echo-stack.template.json"),
            "--issuer",
            "github",
            "--exit-after-start",
            "--state-dir",
            str(tmp_path),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    token = next(
        line.removeprefix("export TOKEN=")
        for line in result.stdout.splitlines()
        if line.startswith("export TOKEN=")
    )
    curl = next(line.strip() for line in result.stdout.splitlines() if line.strip().startswith("curl "))
    assert "/exchange/github" in curl
    assert '-H "Authorization: Bearer $TOKEN"' in curl
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "https://token.actions.githubusercontent.com"
    assert claims["aud"] == "kernel-access"
    assert "Started in" in result.stdout


# ---- execution environments (worker processes) ----------------------------------------------------


def _pid(api: str, sleep: float = 0.0) -> int:
    response = http("GET", f"{api}/slow/pid?sleep={sleep}")
    assert response.status == 200, response.body
    return int(response.body)


def test_a_warm_environment_is_reused(api: str) -> None:
    pids = {_pid(api) for _ in range(3)}
    assert len(pids) == 1


def test_concurrent_invocations_get_separate_environments_up_to_the_limit(api: str) -> None:
    """Six overlapping invocations: more than one environment, never more than the limit (4)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=6) as pool:
        pids = set(pool.map(lambda _: _pid(api, 0.5), range(6)))
    assert 2 <= len(pids) <= 4


def test_timeout_is_a_500_and_the_environment_is_replaced(api: str) -> None:
    response = http("GET", f"{api}/slow/hang")
    assert response.status == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert _pid(api) > 0


def test_a_crashing_environment_is_a_500_and_the_next_call_gets_a_new_one(api: str) -> None:
    response = http("GET", f"{api}/slow/crash")
    assert response.status == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert _pid(api) > 0


def test_an_unserialisable_result_is_a_500(api: str) -> None:
    response = http("GET", f"{api}/slow/unserialisable")
    assert response.status == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_issuer_is_found_by_authorizer_name_url_or_cdk_json_name() -> None:
    from kernel_access.local.jwt_issuer import LocalIssuer, find_issuer

    github = LocalIssuer(
        name="oidc-github", issuer="https://token.actions.githubusercontent.com", audiences=("a",)
    )
    gitlab = LocalIssuer(name="gitlab", issuer="https://gitlab.example.com", audiences=("b",))
    issuers = [github, gitlab]
    assert find_issuer(issuers, "oidc-github") is github
    assert find_issuer(issuers, "github") is github
    assert find_issuer(issuers, "https://token.actions.githubusercontent.com") is github
    assert find_issuer(issuers, "gitlab") is gitlab
    with pytest.raises(KeyError, match=r"no JWT issuer 'circleci'.*have: oidc-github, gitlab"):
        find_issuer(issuers, "circleci")
