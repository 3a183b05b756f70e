"""``accounts`` / ``organization_ids`` rule conditions evaluate the *partner's* bound account and
organization, never the kernel-access session that the IAM authorizer describes.

Every caller of the vending API is a session of a kernel-access role, which lives in the kernel
account: the authorizer's ``accountId``/``principalOrgId`` are always the kernel's. Comparing rule
conditions with them made a deny on a partner's account never fire, and an allow on the
organization admit external partners. The Lambda and ``policy explain`` derive the request with one
function, so the two can never disagree.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kernel_access.cli.main import main as cli_main
from kernel_access.handlers import vending
from kernel_access.policy import parse_policy

from tests.runtime.conftest import (
    ACME_ARN,
    ORG_ID,
    PAYMENTS_ARN,
    POLICY,
    STRANGER_ARN,
    AwsBackend,
    FakeLambdaContext,
    http_event,
)

pytestmark = pytest.mark.usefixtures("secrets_scan")

PAYMENTS_ACCOUNT = POLICY["partners"]["payments"]["account_id"]
ACME_ACCOUNT = POLICY["partners"]["acme-analytics"]["account_id"]


def policy_with(first_rule: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(POLICY)
    document["partners"]["payments"]["organization_id"] = ORG_ID
    document["rules"].insert(0, first_rule)
    return document


def status_of(service: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    vending.reset_for_tests(service)
    try:
        response = vending.handler(event, FakeLambdaContext())
    finally:
        vending.reset_for_tests(None)
    return response["statusCode"], json.loads(response["body"])


def test_deny_on_partner_account_fires(aws_backend: AwsBackend, make_service: Any) -> None:
    aws_backend.put_policy(
        policy_with(
            {"id": "deny-payments-account", "effect": "deny", "accounts": [PAYMENTS_ACCOUNT]},
        )
    )
    status, body = status_of(make_service(), http_event("/credentials", {"role": "kernel-reader"}))
    assert status == 403
    assert body["error_code"] == "POLICY_DENY"
    assert body["details"]["rule_id"] == "deny-payments-account"


def test_allow_on_partner_account_matches_only_that_partner(
    aws_backend: AwsBackend, make_service: Any
) -> None:
    aws_backend.put_policy(
        policy_with(
            {
                "id": "acme-account-deployer",
                "effect": "allow",
                "accounts": [ACME_ACCOUNT],
                "roles": ["kernel-narrow"],
            }
        )
    )
    service = make_service()
    status, _ = status_of(service, http_event("/credentials", {"role": "kernel-narrow"}, user_arn=ACME_ARN))
    assert status == 200
    # payments (another account) is not admitted by it: it falls through to payments-narrow, which
    # allows; the kernel account the authorizer reports is not what the condition compares.
    kernel_rule = policy_with(
        {
            "id": "kernel-account",
            "effect": "allow",
            "accounts": ["111111111111"],
            "roles": ["kernel-deployer"],
        }
    )
    aws_backend.put_policy(kernel_rule)
    status, body = status_of(
        make_service(), http_event("/credentials", {"role": "kernel-deployer"}, user_arn=ACME_ARN)
    )
    assert status == 403
    assert body["details"]["rule_id"] == "deny-external-deployer"


def test_allow_on_organization_does_not_admit_external_partner(
    aws_backend: AwsBackend, make_service: Any
) -> None:
    aws_backend.put_policy(
        policy_with(
            {
                "id": "org-deployer",
                "effect": "allow",
                "organization_ids": [ORG_ID],
                "roles": ["kernel-deployer"],
            }
        )
    )
    service = make_service()
    # The external partner's session is a kernel-account session in the kernel's organization: the
    # authorizer says principalOrgId = ORG_ID. Its partner is outside the organization.
    status, body = status_of(
        service, http_event("/credentials", {"role": "kernel-deployer"}, user_arn=ACME_ARN, org_id=ORG_ID)
    )
    assert status == 403
    assert body["details"]["rule_id"] == "deny-external-deployer"
    status, body = status_of(
        service, http_event("/credentials", {"role": "kernel-narrow"}, user_arn=ACME_ARN, org_id=ORG_ID)
    )
    assert status == 403
    assert body["details"]["reason"] == "no rule matched"
    # The in-organization partner is admitted by it.
    status, _ = status_of(service, http_event("/credentials", {"role": "kernel-deployer"}, org_id=ORG_ID))
    assert status == 200


def test_deny_conditions_trip_for_a_caller_whose_account_is_unknown(
    aws_backend: AwsBackend, make_service: Any
) -> None:
    """No partner means no bound account: an ``accounts`` deny cannot be evaluated, so it applies."""
    aws_backend.put_policy(
        policy_with(
            {"id": "deny-account", "effect": "deny", "accounts": ["999999999999"]},
        )
        | {
            "rules": [
                {"id": "deny-account", "effect": "deny", "accounts": ["999999999999"]},
                {
                    "id": "anyone-with-arn",
                    "effect": "allow",
                    "principal_arns": ["arn:aws:sts::111111111111:assumed-role/kernel-access/*"],
                },
            ]
        }
    )
    service = make_service()
    status, body = status_of(
        service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=STRANGER_ARN)
    )
    assert status == 403
    assert body["details"]["rule_id"] == "deny-account"
    # A known partner in another account is evaluated and passes the deny.
    status, _ = status_of(service, http_event("/credentials", {"role": "kernel-reader"}))
    assert status == 200


@pytest.mark.parametrize(
    ("caller", "role"),
    [
        (PAYMENTS_ARN, "kernel-reader"),
        (PAYMENTS_ARN, "kernel-deployer"),
        (ACME_ARN, "kernel-deployer"),
        (ACME_ARN, "kernel-reader"),
        (STRANGER_ARN, "kernel-reader"),
    ],
)
def test_policy_explain_agrees_with_the_lambda(
    aws_backend: AwsBackend, make_service: Any, tmp_path: Path, capsys: Any, caller: str, role: str
) -> None:
    document = policy_with({"id": "deny-payments-account", "effect": "deny", "accounts": [PAYMENTS_ACCOUNT]})
    document["rules"].insert(1, {"id": "org-all", "effect": "allow", "organization_ids": [ORG_ID]})
    aws_backend.put_policy(document)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    at = "2026-11-24T10:00:00Z"
    code = cli_main(
        [
            *("policy", "explain", str(path), "--caller", caller, "--role", role, "--at", at),
            *("--output", "json", "--kernel-account", "111111111111", "--partition", "aws"),
        ]
    )
    explained = json.loads(capsys.readouterr().out)
    status, body = status_of(
        make_service(), http_event("/credentials", {"role": role}, user_arn=caller, org_id=ORG_ID)
    )
    lambda_rule = body.get("details", {}).get("rule_id") if status != 200 else None
    assert (code == 0) is (status == 200)
    if status != 200 and explained["rule_id"] is not None:
        assert explained["rule_id"] == lambda_rule


def test_one_function_derives_the_request() -> None:
    from kernel_access.policy import KernelIdentity, access_request_for

    document = policy_with({"id": "x", "effect": "deny", "accounts": [PAYMENTS_ACCOUNT]})
    policy = parse_policy(json.dumps(document))
    at = datetime(2026, 11, 24, 10, tzinfo=UTC)
    request = access_request_for(
        policy,
        caller_arn=PAYMENTS_ARN,
        source_ip="203.0.113.7",
        at=at,
        kernel=KernelIdentity(account_id="111111111111", partition="aws"),
        role="kernel-reader",
    )
    assert (request.partner, request.account_id, request.org_id) == ("payments", PAYMENTS_ACCOUNT, ORG_ID)
    external = access_request_for(
        policy,
        caller_arn=ACME_ARN,
        source_ip=None,
        at=at,
        kernel=KernelIdentity(account_id="111111111111", partition="aws"),
        role="kernel-reader",
    )
    assert (external.partner, external.account_id, external.org_id) == ("acme-analytics", ACME_ACCOUNT, None)
