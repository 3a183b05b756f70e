"""Session names, source identity and tags for long and odd ARNs stay within STS's limits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_access.vending.sts import (
    caller_principal,
    session_name,
    session_tags,
    source_identity,
    tag_value,
)

STS_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
TAG_VALUE = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]{0,256}$")
LONG = "arn:aws:sts::222222222222:assumed-role/" + "r" * 64 + "/" + "s" * 64


@pytest.mark.parametrize(
    ("arn", "request_id", "name", "identity"),
    [
        (
            "arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci",
            "abc123=",
            "111111111111.abc123=",
            "payments.ci@abc123=",
        ),
        ("arn:aws:iam::111111111111:user/alice", "r-1", "111111111111.r-1", "alice@r-1"),
        ("arn:aws:iam::111111111111:root", "r-1", "111111111111.r-1", "root@r-1"),
    ],
)
def test_examples(arn, request_id, name, identity):
    account = arn.split(":")[4]
    assert session_name(caller_arn=arn, caller_account=account, request_id=request_id) == name
    assert source_identity(caller_arn=arn, request_id=request_id) == identity


def test_session_name_names_the_partner_when_known():
    arn = "arn:aws:sts::111111111111:assumed-role/kernel-access/payments.ci"
    assert session_name(
        caller_arn=arn, caller_account="111111111111", request_id="r-1", partner="payments"
    ) == ("payments.r-1")
    assert session_name(caller_arn=arn, caller_account=None, request_id="r-1") == "111111111111.r-1"
    long_partner = "p" * 60
    name = session_name(
        caller_arn=arn, caller_account=None, request_id="JKJaXhSpoAMEJ-A=", partner=long_partner
    )
    assert len(name) == 64
    assert name.endswith(".JKJaXhSpoAMEJ-A=")
    assert STS_NAME.match(name)


def test_long_arns_are_cut_with_a_hash_and_keep_the_request_id():
    other = LONG[:-1] + "t"
    a = source_identity(caller_arn=LONG, request_id="JKJaXhSpoAMEJ-A=")
    b = source_identity(caller_arn=other, request_id="JKJaXhSpoAMEJ-A=")
    assert len(a) == 64
    assert a.endswith("@JKJaXhSpoAMEJ-A=")
    assert a != b  # the hash of the full ARN keeps long callers apart
    assert STS_NAME.match(a)


def test_odd_characters_are_replaced():
    arn = "arn:aws:iam::111111111111:user/path/ünï cødé:x"
    name = source_identity(caller_arn=arn, request_id="id with spaces/and:colons")
    assert STS_NAME.match(name)
    assert not name.lower().startswith("aws:")


def test_caller_principal():
    assert caller_principal("arn:aws:sts::1:assumed-role/r/s") == "s"
    assert caller_principal("arn:aws:iam::1:root") == "root"


def test_tags_are_sanitised_and_bounded():
    tags = session_tags(partner=None, caller_account="111111111111", request_id="ü" * 300)
    assert [t["Key"] for t in tags] == ["partner", "caller-account", "request-id"]
    assert tags[0]["Value"] == "none"
    assert len(tags[2]["Value"]) == 256
    assert all(TAG_VALUE.match(t["Value"]) for t in tags)
    assert tag_value("a;b") == "a-b"


@settings(max_examples=500, deadline=None)
@given(
    arn=st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda s: f"arn:aws:sts::111111111111:assumed-role/kernel-access/{s}", st.text(max_size=200)
        ),
    ),
    account=st.one_of(st.none(), st.text(max_size=20)),
    request_id=st.text(max_size=200),
    partner=st.one_of(st.none(), st.text(max_size=70)),
)
def test_any_input_gives_valid_sts_values(arn, account, request_id, partner):
    name = session_name(caller_arn=arn, caller_account=account, request_id=request_id, partner=partner)
    identity = source_identity(caller_arn=arn, request_id=request_id)
    assert STS_NAME.match(name), name
    assert STS_NAME.match(identity), identity
    assert not identity.startswith("aws:")
    for tag in session_tags(partner=arn, caller_account=account, request_id=request_id):
        assert TAG_VALUE.match(tag["Value"])
