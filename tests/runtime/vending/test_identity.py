"""Partner identity cannot be forged: regression tests for the measurements on the old identity model.

Every caller of the vending API is a kernel-access session; the partner comes only from what IAM
enforced when that session was created (the role assumed and the session-name prefix its trust
policy binds to ``${aws:PrincipalAccount}``), and only for sessions of the Lambda's own account and
partition.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_access.policy import KernelIdentity, access_request_for, parse_policy

from tests.runtime.conftest import KERNEL_ACCOUNT, POLICY, http_event
from tests.runtime.vending.test_credentials import call

KERNEL = KernelIdentity(account_id=KERNEL_ACCOUNT, partition="aws")
PAYMENTS_ACCOUNT = "222222222222"
ACME_ACCOUNT = "333333333333"


def _request(caller_arn: str, kernel: KernelIdentity = KERNEL) -> Any:
    return access_request_for(
        parse_policy(POLICY), caller_arn=caller_arn, source_ip=None, at=datetime.now(UTC), kernel=kernel
    )


# --- the service: ARNs of another account or partition resolve to no partner ---------------------

FOREIGN_CALLERS = [
    # The old identity model read only the session-name prefix: all of these resolved to payments.
    "arn:aws:sts::999999999999:assumed-role/kernel-access/payments.x",
    "arn:aws-cn:sts::111111111111:assumed-role/kernel-access/payments.x",
    "arn:aws-us-gov:sts::111111111111:assumed-role/kernel-access/payments.x",
    # The same forgeries in the current session-name format.
    f"arn:aws:sts::999999999999:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}.x",
    f"arn:aws-cn:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}.x",
    f"arn:aws:sts::999999999999:assumed-role/kernel-access-external-acme-analytics/{ACME_ACCOUNT}.x",
]


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_a_session_of_another_account_or_partition_is_no_partner(make_service: Any, caller: str) -> None:
    service = make_service()
    status, _, body = call(service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=caller))
    assert status == 403, body
    assert body["error_code"] == "POLICY_DENY"


def test_own_sessions_still_resolve(make_service: Any) -> None:
    service = make_service()
    for caller in (
        f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}.ci",
        f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access-external-acme-analytics/{ACME_ACCOUNT}.etl",
    ):
        status, _, body = call(
            service, http_event("/credentials", {"role": "kernel-reader"}, user_arn=caller)
        )
        assert status == 200, (caller, body)


@pytest.mark.parametrize(
    ("caller", "partner"),
    [
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}.ci", "payments"),
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}.", "payments"),
        (
            f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access-external-acme-analytics/{ACME_ACCOUNT}.e",
            "acme-analytics",
        ),
        # An external partner's account through the in-org role: it is not in the organization.
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{ACME_ACCOUNT}.x", None),
        # payments' account on acme's role: the trust binds acme's account only.
        (
            f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access-external-acme-analytics/{PAYMENTS_ACCOUNT}.x",
            None,
        ),
        # An in-org partner name as the external role's partner part.
        (
            f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access-external-payments/{PAYMENTS_ACCOUNT}.x",
            None,
        ),
        # The old formats: partner names are no longer read from session names.
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/payments.ci", None),
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access-external/acme-analytics.etl", None),
        # Unknown accounts, other roles, IAM users, malformed.
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/444444444444.x", None),
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-reader/{PAYMENTS_ACCOUNT}.x", None),
        (f"arn:aws:iam::{KERNEL_ACCOUNT}:user/{PAYMENTS_ACCOUNT}.x", None),
        (f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}x", None),
        ("not an arn", None),
    ],
)
def test_partner_resolution(caller: str, partner: str | None) -> None:
    request = _request(caller)
    assert request.partner == partner
    assert request.account_id == (
        json.loads(json.dumps(POLICY))["partners"][partner]["account_id"] if partner else None
    )


def test_an_unknown_kernel_resolves_nobody() -> None:
    caller = f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/kernel-access/{PAYMENTS_ACCOUNT}.ci"
    assert _request(caller, KernelIdentity(account_id=None, partition=None)).partner is None
    assert _request(caller, KernelIdentity(account_id="999999999999", partition="aws")).partner is None


def test_a_policy_binding_one_account_to_two_partners_is_refused() -> None:
    from kernel_access.policy import PolicyValidationError

    document = json.loads(json.dumps(POLICY))
    document["partners"]["twin"] = {"account_id": PAYMENTS_ACCOUNT, "in_organization": True}
    with pytest.raises(PolicyValidationError, match="222222222222"):
        parse_policy(document)


# --- property: no caller ARN a partner can produce resolves to another partner -------------------

_ACCOUNTS = {"payments": PAYMENTS_ACCOUNT, "acme-analytics": ACME_ACCOUNT}
_TAIL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+=,.@_-", max_size=50)


def _producible(partner: str, account: str) -> st.SearchStrategy[str]:
    """Every session ARN ``partner`` can obtain: any role it can name (the trust policies admit it
    only to the in-org role or its own external role, but it may try any), a session name that must
    start with its own account (IAM enforces ``${aws:PrincipalAccount}.*``) and any tail."""
    roles = st.sampled_from(
        [
            "kernel-access",
            "kernel-access-external",
            "kernel-access-external-payments",
            "kernel-access-external-acme-analytics",
            "kernel-access-external-acme",
            "kernel-reader",
        ]
    )
    return st.builds(
        lambda role, tail: f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/{role}/{account}.{tail}", roles, _TAIL
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_partner_can_produce_an_arn_resolving_to_another_partner(data: st.DataObject) -> None:
    partner = data.draw(st.sampled_from(sorted(_ACCOUNTS)))
    arn = data.draw(_producible(partner, _ACCOUNTS[partner]))
    resolved = _request(arn).partner
    assert resolved in (None, partner), (partner, arn, resolved)


@settings(max_examples=150, deadline=None)
@given(
    account=st.from_regex(r"\A[0-9]{12}\Z"),
    role=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-.", min_size=1, max_size=64),
    tail=_TAIL,
)
def test_an_account_that_is_no_partner_never_resolves(account: str, role: str, tail: str) -> None:
    if account in _ACCOUNTS.values():
        return
    assert _request(f"arn:aws:sts::{KERNEL_ACCOUNT}:assumed-role/{role}/{account}.{tail}").partner is None
