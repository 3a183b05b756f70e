"""Rate limits and revocations key on who the caller IS (partner, bound account), not on the
session name it picked.

The tail of a session name after ``<caller's account>.`` is chosen by the partner, so anything keyed on the
full session ARN can be escaped by renaming the session. These tests pin the behaviour that cannot:
one budget per partner (and a tighter one per session inside it), applied before the request is
validated; refusals past the limit sampled into the audit table; revocation by partner and by the
partner's account.
"""

from __future__ import annotations

from typing import Any

import pytest
from kernel_access.cli.main import main

from tests.runtime.conftest import ACME_ARN, AUDIT_TABLE, PAYMENTS_ARN, POLICY, REVOCATION_TABLE, http_event
from tests.runtime.vending.test_credentials import call

pytestmark = pytest.mark.usefixtures("secrets_scan")

PAYMENTS_ACCOUNT = POLICY["partners"]["payments"]["account_id"]
#: The in-org role's session ARNs, derived from the conftest's payments caller.
ROLE_PREFIX = PAYMENTS_ARN.rsplit("/", 1)[0] + "/"
assert PAYMENTS_ARN.startswith(f"{ROLE_PREFIX}{PAYMENTS_ACCOUNT}.")


def session(name: str) -> str:
    """A session of the payments partner: the in-org role, session name ``<its account>.<name>``."""
    return f"{ROLE_PREFIX}{PAYMENTS_ACCOUNT}.{name}"


def statuses(service: Any, arns: list[str], query: dict[str, str] | None = None) -> list[int]:
    query = {"role": "kernel-reader"} if query is None else query
    return [call(service, http_event("/credentials", query, user_arn=arn))[0] for arn in arns]


def clear_audit(aws_backend: Any) -> None:
    for item in aws_backend.audit_items():
        aws_backend.dynamodb.delete_item(TableName=AUDIT_TABLE, Key={"request_id": item["request_id"]})


def test_same_session_is_limited(make_service):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="3")
    assert statuses(service, [session("ci")] * 5) == [200, 200, 200, 429, 429]


def test_rotating_session_names_share_the_partner_budget(make_service):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="3")
    assert statuses(service, [session(f"rotated-{i}") for i in range(5)]) == [200, 200, 200, 429, 429]
    # Another partner has its own budget.
    assert statuses(service, [ACME_ARN]) == [200]


def test_one_session_has_a_tighter_budget_inside_the_partner_budget(make_service):
    service = make_service(
        KERNEL_ACCESS_RATE_LIMIT_REQUESTS="10", KERNEL_ACCESS_RATE_LIMIT_SESSION_REQUESTS="2"
    )
    assert statuses(service, [session("busy")] * 4) == [200, 200, 429, 429]
    # The partner's other sessions still have budget left (4 of 10 used).
    assert statuses(service, [session("quiet")]) == [200]


def test_rate_limit_keys_name_the_partner_not_the_session(make_service, aws_backend):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="3")
    statuses(service, [session("a"), session("b")])
    keys = [
        item["pk"]["S"] for item in aws_backend.dynamodb.scan(TableName="kernel-access-rate-limit")["Items"]
    ]
    partner_keys = [k for k in keys if k.startswith("partner#")]
    assert len(partner_keys) == 1
    assert partner_keys[0].startswith("partner#payments#")


def test_malformed_requests_are_limited_before_validation(make_service, aws_backend, sts_calls):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="3")
    assert statuses(service, [session(f"s{i}") for i in range(3)]) == [200, 200, 200]
    bad = [call(service, http_event("/credentials", {"role": "bad role!"}, user_arn=session("x")))[0]]
    assert bad == [429]
    # And malformed requests use the budget up too: a fresh partner window, 3 bad queries, then a good one.
    aws_backend.reset_mutable_state()
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="3")
    assert statuses(service, [session("x")] * 3, {"role": "bad role!"}) == [400, 400, 400]
    assert statuses(service, [session("y")]) == [429]
    assert len(sts_calls) == 3


def test_refusals_past_the_limit_are_sampled_into_the_audit_table(make_service, aws_backend):
    service = make_service(KERNEL_ACCESS_RATE_LIMIT_REQUESTS="1")
    assert statuses(service, [session("first")]) == [200]
    clear_audit(aws_backend)
    refused = statuses(service, [session(f"flood-{i}") for i in range(20)], {"role": "bad role!"})
    assert refused == [429] * 20
    records = aws_backend.audit_items()
    assert 1 <= len(records) < 20
    from kernel_access.ratelimit import is_sampled_refusal

    assert sorted(int(r["refusals"]["N"]) for r in records) == [
        n for n in range(1, 21) if is_sampled_refusal(n)
    ]
    assert {r["error_code"]["S"] for r in records} == {"RATE_LIMITED"}
    assert {r["partner"]["S"] for r in records} == {"payments"}


@pytest.mark.parametrize("subject", ["partner#payments", f"account#{PAYMENTS_ACCOUNT}"])
def test_partner_and_account_revocation_stop_every_session_name(make_service, sts_calls, subject):
    service = make_service()
    service.revocations.revoke(subject, reason="incident 7", revoked_by="arn:aws:iam::111111111111:user/op")
    for name in ("ci", "renamed", "another-name"):
        status, _, body = call(
            service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=session(name))
        )
        assert status == 403, body
        assert body["error_code"] == "SESSION_REVOKED"
    # Refused before validation too: a malformed request of a revoked partner learns nothing more.
    status, _, body = call(service, http_event("/credentials", {"role": "bad role!"}, user_arn=session("x")))
    assert body["error_code"] == "SESSION_REVOKED"
    assert sts_calls == []
    assert statuses(service, [ACME_ARN]) == [200]


def test_caller_revocation_stops_that_session_only(make_service):
    """Documented limit: a caller revocation names one session ARN. The partner behind it can
    assume the role again under another session name; stop the partner with --partner/--account."""
    service = make_service()
    service.revocations.revoke(
        f"caller#{session('leaked')}", reason="leaked", revoked_by="arn:aws:iam::111111111111:user/op"
    )
    assert statuses(service, [session("leaked"), session("other")]) == [403, 200]


def test_cli_revokes_and_unrevokes_an_account(make_service, aws_backend, capsys):
    service = make_service()
    tables = ["--table", REVOCATION_TABLE, "--audit-table", AUDIT_TABLE]
    assert main(["revoke", "--account", PAYMENTS_ACCOUNT, "--reason", "INC-9", *tables]) == 0
    assert f"account#{PAYMENTS_ACCOUNT}" in capsys.readouterr().out
    assert statuses(service, [session("ci")]) == [403]
    assert main(["unrevoke", "--account", PAYMENTS_ACCOUNT, "--reason", "INC-9 closed", *tables]) == 0
    assert statuses(service, [session("ci")]) == [200]
    assert main(["revoke", "--account", "12345", "--reason", "typo", *tables]) == 1


def test_cli_caller_revocation_says_what_it_does_not_stop(make_service, capsys):
    make_service()
    tables = ["--table", REVOCATION_TABLE, "--audit-table", AUDIT_TABLE]
    assert main(["revoke", "--caller", session("ci"), "--reason", "leak", *tables]) == 0
    err = capsys.readouterr().err
    assert "--partner" in err
    assert "--account" in err


def test_requests_are_counted_while_the_policy_cannot_be_loaded(make_service, aws_backend):
    service = make_service(
        KERNEL_ACCESS_RATE_LIMIT_REQUESTS="2", KERNEL_ACCESS_POLICY_OBJECT_KEY="vending/missing.json"
    )
    codes = [
        call(service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=session(f"s{i}")))[2][
            "error_code"
        ]
        for i in range(3)
    ]
    assert codes == ["POLICY_LOAD_FAILED", "POLICY_LOAD_FAILED", "RATE_LIMITED"]
    keys = [
        item["pk"]["S"] for item in aws_backend.dynamodb.scan(TableName="kernel-access-rate-limit")["Items"]
    ]
    assert any(k.startswith(f"principal#{ROLE_PREFIX.rstrip('/')}#") for k in keys)
