"""The exchange through its Lambda handler: payload-2.0 events, moto for STS/DynamoDB, every error code."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from kernel_access.audit import AuditWriteError

from tests.runtime.exchange.conftest import (
    AUDIENCE,
    DEPLOY_ROLE,
    GITHUB,
    GITLAB,
    NOW,
    PUBLISHER_ROLE,
    READER_ROLE,
    Harness,
    make_event,
)


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --- granted exchanges ---------------------------------------------------------------------------


def test_aws_role_exchange_returns_scoped_credentials_and_audits(harness: Harness) -> None:
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    # The claims the handler sees are what the authorizer decoded from the signed token.
    verified = harness.tokens.verify(token, AUDIENCE)
    status, body, headers = harness.call(
        make_event(
            token,
            verified,
            {"target": "deploy", "requested_permissions": ["s3:GetObject", "s3:DeleteObject"]},
        )
    )
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert body["matched_policy"] == "main-branch"
    # DeleteObject is in no layer; GetObject is in all three.
    assert body["permissions"] == ["s3:GetObject"]
    credentials = body["credentials"]
    assert credentials["Version"] == 1
    assert credentials["AccessKeyId"]
    assert credentials["SecretAccessKey"]
    assert credentials["SessionToken"]
    assert body["expires_at"] == credentials["Expiration"]
    call = harness.sts_calls[-1]
    assert call["RoleArn"] == DEPLOY_ROLE
    assert call["DurationSeconds"] == 900
    assert json.loads(call["Policy"]) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}],
    }
    assert call["SourceIdentity"].startswith("github@repo-acme-app-ref-refs-heads-main.")
    tags = {tag["Key"]: tag["Value"] for tag in call["Tags"]}
    assert tags["oidc-repository"] == "acme/app"
    assert tags["oidc-ref"] == "refs/heads/main"
    assert tags["oidc-issuer"] == "github"

    [record] = harness.audit_items()
    assert record["decision"]["S"] == "allow"
    assert record["caller_arn"]["S"] == "oidc:github:repo:acme/app:ref:refs/heads/main"
    assert record["rule_id"]["S"] == "main-branch"
    assert record["presented_token_fingerprint"]["S"] == sha256(token)
    assert record["issued_token_fingerprint"]["S"] == sha256(credentials["SessionToken"])
    assert record["access_key_id"]["S"] == credentials["AccessKeyId"]
    flat = json.dumps(record)
    assert token not in flat
    assert credentials["SecretAccessKey"] not in flat
    assert credentials["SessionToken"] not in flat

    [issued] = harness.issued_items()
    assert issued["fingerprint"]["S"] == sha256(credentials["SessionToken"])
    assert issued["kind"]["S"] == "aws_credentials"
    assert credentials["SessionToken"] not in json.dumps(issued)


def test_default_request_gets_everything_the_layers_share(harness: Harness) -> None:
    status, body = harness.exchange({"target": "deploy"})
    assert status == 200, body
    # trust {s3:GetObject, s3:PutObject, s3:ListBucket, cloudformation:*} ∩ max {s3:Get*, s3:List*,
    # s3:PutObject, cloudformation:Describe*}
    assert body["permissions"] == [
        "cloudformation:Describe*",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ]


def test_codeartifact_publish_and_read(harness: Harness) -> None:
    status, body = harness.exchange(
        {"target": "packages", "requested_ttl": 3600}, sub="repo:acme/lib:ref:refs/heads/main"
    )
    assert status == 200, body
    assert body["matched_policy"] == "publish-from-main"
    assert body["permissions"] == ["read", "publish"]
    assert body["token"].startswith("ca-token-")
    assert harness.codeartifact_calls[-1] == {
        "domain": "kernel",
        "domainOwner": "111111111111",
        "durationSeconds": 3600,
    }
    assert harness.sts_calls[-1]["RoleArn"] == PUBLISHER_ROLE
    assert "Policy" not in harness.sts_calls[-1]

    # An unprotected ref fails publish-from-main's claim_pattern and falls to read-any-acme.
    status, body = harness.exchange(
        {"target": "packages"}, sub="repo:acme/lib:ref:refs/heads/main", ref_protected=False
    )
    assert status == 200, body
    assert body["matched_policy"] == "read-any-acme"
    assert body["permissions"] == ["read"]
    assert harness.sts_calls[-1]["RoleArn"] == READER_ROLE
    kinds = {item["kind"]["S"] for item in harness.issued_items()}
    assert kinds == {"codeartifact_token"}


def test_gitlab_route_with_api_gateway_string_claims(harness: Harness) -> None:
    """API Gateway hands claims over as strings: numbers as digits, lists as "[a b]"."""
    claims = harness.tokens.claims(
        iss=GITLAB, sub="project_path:acme/tools:ref_type:branch:ref:main", aud=["kernel-access", "other"]
    )
    token = harness.tokens.sign(claims)
    stringified = {
        k: (f"[{' '.join(v)}]" if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in claims.items()
    }
    status, body, _ = harness.call(
        make_event(token, stringified, {"target": "packages"}, issuer_name="gitlab")
    )
    assert status == 200, body
    assert body["matched_policy"] == "gitlab-read"


def test_base64_body_is_accepted(harness: Harness) -> None:
    claims = harness.tokens.claims()
    status, body, _ = harness.call(
        make_event(harness.tokens.sign(claims), claims, {"target": "deploy"}, base64_body=True)
    )
    assert status == 200, body


# --- TTL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 900), (900, 900), (1200, 1200), (1800, 1800), (3600, 1800)],  # main-branch token_ttl = 1800
)
def test_ttl_is_clamped_to_the_trust_policy(harness: Harness, requested: int | None, expected: int) -> None:
    body: dict[str, Any] = {"target": "deploy"}
    if requested is not None:
        body["requested_ttl"] = requested
    status, payload = harness.exchange(body)
    assert status == 200, payload
    assert harness.sts_calls[-1]["DurationSeconds"] == expected


@pytest.mark.parametrize("ttl", [899, 3601, 0, -5, "900", 900.5, True])
def test_out_of_range_ttl_is_invalid_request_before_any_aws_call(harness: Harness, ttl: Any) -> None:
    status, body = harness.exchange({"target": "deploy", "requested_ttl": ttl})
    assert (status, body["error_code"]) == (400, "INVALID_REQUEST")
    assert harness.sts_calls == []


# --- refusals: every error code -----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"target": "deploy", "role": "admin"},
        {},
        {"target": ""},
        {"target": "a/b"},
        {"target": 5},
        {"target": "deploy", "policy_name": ["x"]},
        {"target": "deploy", "requested_permissions": "s3:GetObject"},
        {"target": "deploy", "requested_permissions": []},
        {"target": "deploy", "requested_permissions": [1]},
        [],
        "deploy",
    ],
)
def test_malformed_bodies_are_invalid_request(harness: Harness, payload: Any) -> None:
    status, body = harness.exchange(payload)
    assert (status, body["error_code"]) == (400, "INVALID_REQUEST"), body
    assert body["request_id"]
    assert harness.sts_calls == []


def test_oversized_missing_and_non_json_bodies(harness: Harness) -> None:
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    for raw in ("x" * 10000, json.dumps({"target": "deploy", "pad": "y" * 5000}), "{not json", ""):
        status, body, _ = harness.call(make_event(token, claims, raw_body=raw))
        assert (status, body["error_code"]) == (400, "INVALID_REQUEST")
    status, body, _ = harness.call(make_event(token, claims, None))
    assert (status, body["error_code"]) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize("missing", ["jti", "iat", "exp", "sub", "aud"])
def test_tokens_without_required_claims_are_refused(harness: Harness, missing: str) -> None:
    status, body = harness.exchange({"target": "deploy"}, **{missing: None})
    assert (status, body["error_code"]) == (401, "INVALID_TOKEN")
    assert harness.sts_calls == []


def test_expired_future_and_old_tokens_are_refused(harness: Harness) -> None:
    now = int(NOW.timestamp())
    cases = [
        {"exp": now - 1},  # expired
        {"iat": now + 61},  # issued in the future beyond skew
        {"nbf": now + 120},  # not valid yet
        {"iat": now - 601, "exp": now + 100},  # older than max_token_age_seconds (600)
    ]
    for overrides in cases:
        status, body = harness.exchange({"target": "deploy"}, **overrides)
        assert (status, body["error_code"]) == (401, "INVALID_TOKEN"), overrides
    # Within skew is fine.
    status, body = harness.exchange({"target": "deploy"}, iat=now + 59)
    assert status == 200, body
    assert len(harness.sts_calls) == 1


def test_replayed_token_is_refused(harness: Harness) -> None:
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    first = harness.call(make_event(token, claims, {"target": "deploy"}))
    second = harness.call(make_event(token, claims, {"target": "deploy"}))
    assert first[0] == 200
    assert (second[0], second[1]["error_code"]) == (401, "INVALID_TOKEN")
    assert "already been exchanged" in second[1]["error"]
    assert len(harness.sts_calls) == 1
    [replay] = harness.dynamodb.scan(TableName="replay")["Items"]
    assert replay["jti"]["S"] == f"{GITHUB}#{claims['jti']}"
    assert replay["expires_at"]["N"] == str(claims["exp"])


def test_issuer_not_allowed_cases(harness: Harness) -> None:
    # Route issuer unknown to the configuration.
    claims = harness.tokens.claims()
    status, body, _ = harness.call(
        make_event(harness.tokens.sign(claims), claims, {"target": "deploy"}, issuer_name="bitbucket")
    )
    assert (status, body["error_code"]) == (403, "ISSUER_NOT_ALLOWED")
    # Token of another issuer presented on the github route.
    status, body = harness.exchange({"target": "deploy"}, iss=GITLAB)
    assert body["error_code"] == "ISSUER_NOT_ALLOWED"
    # Central required claim fails.
    status, body = harness.exchange({"target": "deploy"}, repository_owner="evil")
    assert body["error_code"] == "ISSUER_NOT_ALLOWED"
    assert body["details"] == {"claim": "repository_owner"}
    # Required claim must match whole value (anchored): "acme-evil" is not "acme".
    status, body = harness.exchange({"target": "deploy"}, repository_owner="acme-evil")
    assert body["error_code"] == "ISSUER_NOT_ALLOWED"
    # Forbidden claim matches.
    status, body = harness.exchange({"target": "deploy"}, ref="refs/heads/experimental/x")
    assert body["error_code"] == "ISSUER_NOT_ALLOWED"
    assert harness.sts_calls == []


def test_audience_not_configured_for_issuer_is_invalid_token(harness: Harness) -> None:
    status, body = harness.exchange({"target": "deploy"}, aud="someone-else")
    assert (status, body["error_code"]) == (401, "INVALID_TOKEN")


def test_trust_policy_and_policy_not_found(harness: Harness) -> None:
    status, body = harness.exchange({"target": "nope"})
    assert (status, body["error_code"]) == (403, "TRUST_POLICY_NOT_FOUND")
    status, body = harness.exchange({"target": "unprotected"})  # declared target, no trust policy
    assert body["error_code"] == "TRUST_POLICY_NOT_FOUND"
    status, body = harness.exchange({"target": "deploy", "policy_name": "nope"})
    assert (status, body["error_code"]) == (403, "POLICY_NOT_FOUND")
    status, body = harness.exchange({"target": "deploy"}, sub="repo:other/app:ref:refs/heads/main")
    assert body["error_code"] == "POLICY_NOT_FOUND"
    assert harness.sts_calls == []


def test_named_policy_is_the_only_one_considered(harness: Harness) -> None:
    status, body = harness.exchange({"target": "deploy", "policy_name": "any-branch-read"})
    assert status == 200, body
    assert body["matched_policy"] == "any-branch-read"
    assert body["permissions"] == ["s3:Get*"]


def test_empty_intersection_is_a_denial_not_an_empty_credential(harness: Harness) -> None:
    status, body = harness.exchange({"target": "deploy", "requested_permissions": ["iam:CreateUser"]})
    assert (status, body["error_code"]) == (403, "POLICY_NOT_FOUND")
    assert body["details"]["reason"] == "no_effective_permissions"
    assert harness.sts_calls == []


@pytest.mark.parametrize(
    ("target", "requested"),
    [("packages", ["s3:GetObject"]), ("deploy", ["read"]), ("deploy", ["*"]), ("deploy", ['s3:Get","x'])],
)
def test_permissions_of_the_wrong_kind_are_invalid_request(
    harness: Harness, target: str, requested: list[str]
) -> None:
    status, body = harness.exchange({"target": target, "requested_permissions": requested})
    assert (status, body["error_code"]) == (400, "INVALID_REQUEST")
    assert harness.sts_calls == []


def test_codeartifact_levels_intersect_downwards(harness: Harness) -> None:
    """publish includes read: asking for publish where only read is allowed yields read, never publish."""
    status, body = harness.exchange(
        {"target": "packages", "requested_permissions": ["publish"]},
        sub="repo:acme/other:ref:refs/heads/main",
    )
    assert status == 200, body
    assert (body["matched_policy"], body["permissions"]) == ("read-any-acme", ["read"])
    assert harness.sts_calls[-1]["RoleArn"] == READER_ROLE
    # And a read request on the publish policy mints read only.
    status, body = harness.exchange(
        {"target": "packages", "requested_permissions": ["read"]}, sub="repo:acme/lib:ref:refs/heads/main"
    )
    assert (body["matched_policy"], body["permissions"]) == ("publish-from-main", ["read"])
    assert harness.sts_calls[-1]["RoleArn"] == READER_ROLE


def test_rate_limited_per_subject(build_harness: Callable[..., Harness]) -> None:
    harness = build_harness(rate_limit=2)
    assert harness.exchange({"target": "deploy"})[0] == 200
    assert harness.exchange({"target": "deploy"})[0] == 200
    claims = harness.tokens.claims()
    status, body, headers = harness.call(
        make_event(harness.tokens.sign(claims), claims, {"target": "deploy"})
    )
    assert (status, body["error_code"]) == (429, "RATE_LIMITED")
    assert int(headers["Retry-After"]) >= 1
    assert body["retry_after_seconds"] >= 1
    # Another subject is not affected.
    status, body = harness.exchange(
        {"target": "deploy", "policy_name": "any-branch-read"}, sub="repo:acme/app:ref:refs/heads/dev"
    )
    assert status == 200, body


def test_policy_load_failed_when_configuration_missing_or_invalid(harness: Harness) -> None:
    from kernel_access.document_store import Fetched
    from kernel_access.exchange.store import ExchangeConfigStore

    from tests.runtime.exchange.conftest import fixed

    def missing(_etag: str | None) -> Fetched:
        raise RuntimeError("NoSuchKey")

    for fetch in (missing, fixed("{}"), fixed("not json")):
        harness.service.config_store = ExchangeConfigStore(fetch)
        status, body = harness.exchange({"target": "deploy"})
        assert (status, body["error_code"]) == (503, "POLICY_LOAD_FAILED")
    assert harness.sts_calls == []


def test_missing_authorizer_context_or_token(harness: Harness) -> None:
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    status, body, _ = harness.call(make_event(token, None, {"target": "deploy"}))
    assert (status, body["error_code"]) == (401, "INVALID_TOKEN")
    status, body, _ = harness.call(make_event(None, claims, {"target": "deploy"}))
    assert (status, body["error_code"]) == (401, "INVALID_TOKEN")
    event = make_event(token, claims, {"target": "deploy"})
    event["requestContext"]["routeKey"] = "GET /credentials"
    status, body, _ = harness.call(event)
    assert (status, body["error_code"]) == (400, "INVALID_REQUEST")
    assert harness.sts_calls == []


def test_identity_is_never_taken_from_the_body_or_headers(harness: Harness) -> None:
    claims = harness.tokens.claims(sub="repo:other/app:ref:refs/heads/main")
    event = make_event(harness.tokens.sign(claims), claims, {"target": "deploy"})
    event["headers"]["x-oidc-sub"] = "repo:acme/app:ref:refs/heads/main"
    _status, body, _ = harness.call(event)
    assert body["error_code"] == "POLICY_NOT_FOUND"
    _status, body = harness.exchange({"target": "deploy", "sub": "repo:acme/app:ref:refs/heads/main"})
    assert body["error_code"] == "INVALID_REQUEST"


def test_sts_error_maps_to_upstream_unavailable(harness: Harness) -> None:
    from botocore.exceptions import ClientError

    class FailingSts:
        def assume_role(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "AssumeRole")

    harness.service.minter._sts = FailingSts  # type: ignore[assignment,return-value]
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert body["retry_after_seconds"] == 5
    [record] = harness.audit_items()
    assert record["decision"]["S"] == "error"
    assert harness.issued_items() == []


# --- audit fail-closed ---------------------------------------------------------------------------


def test_audit_failure_drops_the_credential(harness: Harness) -> None:
    def broken(_record: Any) -> Any:
        raise AuditWriteError("audit write failed: ProvisionedThroughputExceededException")

    harness.service.audit.write = broken  # type: ignore[method-assign]
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (500, "INTERNAL_ERROR")
    assert "credentials" not in body
    assert "token" not in body
    assert "Provisioned" not in json.dumps(body)


def test_audit_failure_on_a_denial_is_internal_error(harness: Harness) -> None:
    harness.service.audit.table_name = "no-such-table"
    status, body = harness.exchange({"target": "nope"})
    assert (status, body["error_code"]) == (500, "INTERNAL_ERROR")


def test_issued_token_tracking_failure_drops_the_credential(harness: Harness) -> None:
    harness.service.issued_tokens.table_name = "no-such-table"
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (500, "INTERNAL_ERROR")
    assert "credentials" not in body
    [record] = harness.audit_items()
    assert record["decision"]["S"] == "error"
    assert record["error_code"]["S"] == "INTERNAL_ERROR"


def test_replay_guard_failure_refuses(harness: Harness) -> None:
    harness.service.replay_guard.table_name = "no-such-table"
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert harness.sts_calls == []


def test_rate_limiter_failure_refuses(harness: Harness) -> None:
    assert harness.service.rate_limiter is not None
    harness.service.rate_limiter.table_name = "no-such-table"
    status, body = harness.exchange({"target": "deploy"})
    assert (status, body["error_code"]) == (503, "UPSTREAM_UNAVAILABLE")
    assert harness.sts_calls == []


def test_every_decision_is_audited(harness: Harness) -> None:
    harness.exchange({"target": "deploy"})
    harness.exchange({"target": "nope"})
    harness.exchange({"target": "deploy"}, exp=1)
    decisions = sorted(item["decision"]["S"] for item in harness.audit_items())
    assert decisions == ["allow", "deny", "deny"]
    codes = sorted(item.get("error_code", {}).get("S", "-") for item in harness.audit_items())
    assert codes == ["-", "INVALID_TOKEN", "TRUST_POLICY_NOT_FOUND"]


def test_service_build_failure_is_internal_error(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel_access.handlers import exchange as exchange_handler

    exchange_handler.reset_for_tests(None)
    monkeypatch.delenv("KERNEL_ACCESS_EXCHANGE_CONFIG_OBJECT_KEY", raising=False)
    claims = harness.tokens.claims()
    response = exchange_handler.handle(
        make_event(harness.tokens.sign(claims), claims, {"target": "deploy"}), "x"
    )
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error_code"] == "INTERNAL_ERROR"


def test_lambda_entry_point_with_powertools_decorators(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    from kernel_access.handlers import exchange as exchange_handler

    exchange_handler.reset_for_tests(harness.service)
    context = SimpleNamespace(
        function_name="exchange",
        memory_limit_in_mb=512,
        invoked_function_arn="arn:aws:lambda:us-east-1:111111111111:function:exchange",
        aws_request_id="lambda-req",
        function_version="$LATEST",
    )
    claims = harness.tokens.claims()
    token = harness.tokens.sign(claims)
    response = exchange_handler.handler(make_event(token, claims, {"target": "deploy"}), context)
    assert response["statusCode"] == 200
    secret = json.loads(response["body"])["credentials"]["SecretAccessKey"]
    output = capsys.readouterr().out
    assert "ExchangeGranted" in output  # EMF metric flushed
    assert secret not in output
    assert token not in output
