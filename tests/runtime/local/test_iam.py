"""The local IAM evaluator, pinned with the IAM User Guide's own examples (table-driven).

Each row names the User Guide page its policy and expected outcome come from. The evaluator is plain
Python: no moto, no emulator; ``tests/e2e/test_local_iam.py`` runs it behind the local STS and gateway.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from kernel_access.local.enforcement import StsGuard, assume_role_request
from kernel_access.local.iam import (
    ASSUME_ROLE,
    DEFAULT_WORKLOAD_POLICY,
    AssumeRoleRequest,
    Caller,
    IamModel,
    RoleFacts,
    arn_like,
    condition_holds,
    context_of,
    evaluate,
    substitute,
)

KERNEL = "111111111111"
PARTNER = "222222222222"
OUTSIDER = "999999999999"
ORG = "o-a1b2c3d4e5"
ROLE_ARN = f"arn:aws:iam::{KERNEL}:role/kernel-access"

# --------------------------------------------------------------------------------------------------
# Condition operators
# --------------------------------------------------------------------------------------------------

CONDITIONS: list[tuple[str, str, dict[str, Any], dict[str, Any], bool]] = [
    # (page, operator, block, request context, holds)
    # IAM User Guide, IAM JSON policy elements: Condition operators (string condition operators)
    (
        "StringEquals",
        "StringEquals",
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        True,
    ),
    (
        "StringEquals is case-sensitive",
        "StringEquals",
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        {"aws:PrincipalTag/job-category": "IAMUSER-ADMIN"},
        False,
    ),
    (
        "key absent: a positive operator is false",
        "StringEquals",
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        {},
        False,
    ),
    (
        "condition key names are case-insensitive",
        "StringEquals",
        {"AWS:principaltag/job-category": "iamuser-admin"},
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        True,
    ),
    (
        "StringEqualsIgnoreCase",
        "StringEqualsIgnoreCase",
        {"aws:PrincipalTag/job-category": "iamuser-admin"},
        {"aws:PrincipalTag/job-category": "IAMUser-Admin"},
        True,
    ),
    (
        "StringLike wildcard *",
        "StringLike",
        {"s3:prefix": ["", "home/", "home/${aws:username}/*"]},
        {"s3:prefix": "home/carlos/photos", "aws:username": "carlos"},
        True,
    ),
    (
        "StringLike: another user's home",
        "StringLike",
        {"s3:prefix": ["", "home/", "home/${aws:username}/*"]},
        {"s3:prefix": "home/maria/photos", "aws:username": "carlos"},
        False,
    ),
    (
        "StringLike wildcard ? is one character",
        "StringLike",
        {"sts:RoleSessionName": "payments.?"},
        {"sts:RoleSessionName": "payments.ab"},
        False,
    ),
    # IAM User Guide, IAM JSON policy elements: Condition operators ("key not present ... negated: true")
    ("negated operator, key absent: true", "StringNotLike", {"aws:PrincipalTag/team": "ops*"}, {}, True),
    (
        "negated operator, key present and matching: false",
        "StringNotLike",
        {"aws:PrincipalTag/team": "ops*"},
        {"aws:PrincipalTag/team": "ops-east"},
        False,
    ),
    # IAM User Guide, Conditions with multiple context keys or values (negated: NOR of the values)
    (
        "StringNotEquals with several values is a NOR",
        "StringNotEquals",
        {"aws:PrincipalTag/role": ["audit", "security"]},
        {"aws:PrincipalTag/role": "audit"},
        False,
    ),
    (
        "StringNotEquals: none of the values",
        "StringNotEquals",
        {"aws:PrincipalTag/role": ["audit", "security"]},
        {"aws:PrincipalTag/role": "dev"},
        True,
    ),
    (
        "several values are an OR",
        "StringEquals",
        {"aws:PrincipalAccount": ["111111111111", "222222222222"]},
        {"aws:PrincipalAccount": "222222222222"},
        True,
    ),
    (
        "several keys in one operator are an AND",
        "StringEquals",
        {"aws:PrincipalAccount": "222222222222", "aws:PrincipalOrgID": ORG},
        {"aws:PrincipalAccount": "222222222222"},
        False,
    ),
    # IAM User Guide, IAM JSON policy elements: Condition operators (Boolean, numeric, date, IP)
    (
        "Bool aws:SecureTransport false",
        "Bool",
        {"aws:SecureTransport": "false"},
        {"aws:SecureTransport": "false"},
        True,
    ),
    (
        "Bool values compare case-insensitively",
        "Bool",
        {"aws:SecureTransport": True},
        {"aws:SecureTransport": "TRUE"},
        True,
    ),
    (
        "NumericLessThanEquals s3:max-keys 10",
        "NumericLessThanEquals",
        {"s3:max-keys": "10"},
        {"s3:max-keys": "11"},
        False,
    ),
    (
        "DateGreaterThan aws:CurrentTime",
        "DateGreaterThan",
        {"aws:CurrentTime": "2020-04-01T00:00:00Z"},
        {"aws:CurrentTime": "2026-12-01T12:00:00Z"},
        True,
    ),
    (
        "DateLessThan with epoch request value",
        "DateLessThan",
        {"aws:CurrentTime": "2020-06-30T23:59:59Z"},
        {"aws:CurrentTime": "1767225600"},
        False,
    ),
    (
        "IpAddress aws:SourceIp range",
        "IpAddress",
        {"aws:SourceIp": "203.0.113.0/24"},
        {"aws:SourceIp": "203.0.113.7"},
        True,
    ),
    (
        "NotIpAddress aws:SourceIp range",
        "NotIpAddress",
        {"aws:SourceIp": "203.0.113.0/24"},
        {"aws:SourceIp": "198.51.100.1"},
        True,
    ),
    # IAM User Guide, IAM JSON policy elements: Condition operators (Amazon Resource Name (ARN))
    (
        "ArnEquals aws:SourceArn",
        "ArnEquals",
        {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:my-topic"},
        {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:my-topic"},
        True,
    ),
    (
        "ArnLike with wildcards per part",
        "ArnLike",
        {"aws:PrincipalArn": "arn:aws:iam::*:role/kernel-*"},
        {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/kernel-client"},
        True,
    ),
    (
        "ArnLike: wildcard does not cross into another part",
        "ArnLike",
        {"aws:PrincipalArn": "arn:aws:iam::222222222222:role/*"},
        {"aws:PrincipalArn": "arn:aws:iam::333333333333:role/x"},
        False,
    ),
    ("ArnNotLike, key absent: true", "ArnNotLike", {"aws:PrincipalArn": "arn:aws:iam::*:role/x"}, {}, True),
    # IAM User Guide, IAM JSON policy elements: Condition operators (...IfExists)
    ("IfExists: key absent", "StringLikeIfExists", {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]}, {}, True),
    (
        "IfExists: key present, no match",
        "StringLikeIfExists",
        {"ec2:InstanceType": ["t1.*", "t2.*", "m3.*"]},
        {"ec2:InstanceType": "c5.large"},
        False,
    ),
    # IAM User Guide, IAM JSON policy elements: Condition operators (condition operator to check existence)
    ("Null true: key absent", "Null", {"aws:TokenIssueTime": "true"}, {}, True),
    ("Null true: key present", "Null", {"aws:TokenIssueTime": "true"}, {"aws:TokenIssueTime": "x"}, False),
    ("Null false: key present", "Null", {"sts:ExternalId": "false"}, {"sts:ExternalId": "abc"}, True),
    # IAM User Guide, Multivalued context key examples / Conditions with multiple context keys or values
    (
        "ForAllValues: every request value listed",
        "ForAllValues:StringEquals",
        {"aws:TagKeys": ["environment", "cost-center"]},
        {"aws:TagKeys": ["environment"]},
        True,
    ),
    (
        "ForAllValues: one request value unlisted",
        "ForAllValues:StringEquals",
        {"aws:TagKeys": ["environment", "cost-center"]},
        {"aws:TagKeys": ["environment", "owner"]},
        False,
    ),
    (
        "ForAllValues: key absent is true",
        "ForAllValues:StringEquals",
        {"aws:TagKeys": ["environment", "cost-center"]},
        {},
        True,
    ),
    (
        "ForAllValues: key empty is true",
        "ForAllValues:StringEquals",
        {"aws:TagKeys": ["environment", "cost-center"]},
        {"aws:TagKeys": []},
        True,
    ),
    (
        "ForAllValues:StringLike with prefixes",
        "ForAllValues:StringLike",
        {"aws:TagKeys": ["key1*"]},
        {"aws:TagKeys": ["key1a", "key1b"]},
        True,
    ),
    (
        "ForAnyValue: one request value listed",
        "ForAnyValue:StringEquals",
        {"aws:TagKeys": ["environment", "cost-center"]},
        {"aws:TagKeys": ["environment", "owner"]},
        True,
    ),
    (
        "ForAnyValue: none listed",
        "ForAnyValue:StringEquals",
        {"aws:TagKeys": ["environment", "cost-center"]},
        {"aws:TagKeys": ["owner"]},
        False,
    ),
    (
        "ForAnyValue: key absent is false",
        "ForAnyValue:StringEquals",
        {"aws:TagKeys": ["environment"]},
        {},
        False,
    ),
    (
        "ForAllValues negated: no request value listed",
        "ForAllValues:StringNotEquals",
        {"aws:TagKeys": ["secret"]},
        {"aws:TagKeys": ["environment", "owner"]},
        True,
    ),
    (
        "ForAnyValue negated: some request value unlisted",
        "ForAnyValue:StringNotEquals",
        {"aws:TagKeys": ["environment"]},
        {"aws:TagKeys": ["environment", "owner"]},
        True,
    ),
    # IAM User Guide, IAM policy elements: Variables and tags
    (
        "variable in a condition value",
        "StringLike",
        {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"},
        {"sts:RoleSessionName": "222222222222.app", "aws:PrincipalAccount": "222222222222"},
        True,
    ),
    (
        "variable: another account's prefix",
        "StringLike",
        {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"},
        {"sts:RoleSessionName": "333333333333.app", "aws:PrincipalAccount": "222222222222"},
        False,
    ),
    (
        "variable with a default value",
        "StringEquals",
        {"aws:RequestTag/team": "${aws:PrincipalTag/team, 'company-wide'}"},
        {"aws:RequestTag/team": "company-wide"},
        True,
    ),
    (
        "a substituted value is literal, not a wildcard",
        "StringLike",
        {"sts:RoleSessionName": "${aws:userid}"},
        {"sts:RoleSessionName": "anything", "aws:userid": "*"},
        False,
    ),
    ("${*} is a literal asterisk", "StringLike", {"s3:prefix": "a${*}b"}, {"s3:prefix": "a*b"}, True),
    ("${*} does not match other text", "StringLike", {"s3:prefix": "a${*}b"}, {"s3:prefix": "axyb"}, False),
]


@pytest.mark.parametrize(
    ("operator", "block", "request_context", "holds"),
    [c[1:] for c in CONDITIONS],
    ids=[c[0] for c in CONDITIONS],
)
def test_condition_operator(
    operator: str, block: dict[str, Any], request_context: dict[str, Any], holds: bool
) -> None:
    assert condition_holds(operator, block, context_of(request_context)) is holds


def test_substitute_without_value_or_default_cannot_be_evaluated() -> None:
    from kernel_access.local.iam import Unevaluable

    with pytest.raises(Unevaluable):
        substitute("home/${aws:username}/", context_of({}))


def test_arn_like_needs_six_parts() -> None:
    assert not arn_like("arn:aws:iam::*", "arn:aws:iam::222222222222:role/x")


# --------------------------------------------------------------------------------------------------
# Statements: effect, action, resource, unevaluable conditions
# --------------------------------------------------------------------------------------------------


def _policy(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


ALLOW_INVOKE = {
    "Effect": "Allow",
    "Action": "execute-api:Invoke",
    "Resource": "arn:aws:execute-api:us-east-1:111111111111:api/*/GET/credentials",
}


def test_default_deny_without_a_statement() -> None:
    # IAM User Guide, Policy evaluation logic: "By default, all requests are implicitly denied"
    result = evaluate([_policy()], action="execute-api:Invoke", resource="arn:x", context={})
    assert (result.allowed, result.denied) == (False, False)


def test_explicit_deny_overrides_allow() -> None:
    # IAM User Guide, Policy evaluation logic: "An explicit deny in any of these policies overrides the allow"
    deny = {"Effect": "Deny", "Action": "execute-api:*", "Resource": "*"}
    result = evaluate(
        [_policy(ALLOW_INVOKE), _policy(deny)],
        action="execute-api:Invoke",
        resource="arn:aws:execute-api:us-east-1:111111111111:api/$default/GET/credentials",
        context={},
    )
    assert (result.allowed, result.denied) == (False, True)


@pytest.mark.parametrize(
    ("resource", "allowed"),
    [
        ("arn:aws:execute-api:us-east-1:111111111111:api/$default/GET/credentials", True),
        ("arn:aws:execute-api:us-east-1:111111111111:api/$default/GET/health", False),
        ("arn:aws:execute-api:us-east-1:111111111111:api/$default/POST/credentials", False),
        ("arn:aws:execute-api:us-east-1:111111111111:other/$default/GET/credentials", False),
    ],
)
def test_resource_wildcards(resource: str, allowed: bool) -> None:
    # IAM User Guide, IAM JSON policy elements: Resource (wildcards within ARN segments)
    result = evaluate([_policy(ALLOW_INVOKE)], action="execute-api:Invoke", resource=resource, context={})
    assert result.allowed is allowed


def test_action_match_is_case_insensitive_and_wildcarded() -> None:
    # IAM User Guide, IAM JSON policy elements: Action ("case insensitive", "iam:*AccessKey*")
    policy = _policy({"Effect": "Allow", "Action": "STS:Assume*", "Resource": "*"})
    assert evaluate([policy], action="sts:AssumeRole", resource="arn:x", context={}).allowed
    assert not evaluate([policy], action="sts:TagSession", resource="arn:x", context={}).allowed


def test_not_action_allows_everything_else() -> None:
    # IAM User Guide, IAM JSON policy elements: NotAction
    policy = _policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate([policy], action="sts:AssumeRole", resource="arn:x", context={}).allowed
    assert not evaluate([policy], action="iam:CreateUser", resource="arn:x", context={}).allowed


def test_variable_in_resource() -> None:
    # IAM User Guide, IAM policy elements: Variables and tags ("amzn-s3-demo-bucket/${aws:username}/*")
    policy = _policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/${aws:username}/*"}
    )
    own = evaluate(
        [policy],
        action="s3:GetObject",
        resource="arn:aws:s3:::bucket/carlos/a",
        context=context_of({"aws:username": "carlos"}),
    )
    other = evaluate(
        [policy],
        action="s3:GetObject",
        resource="arn:aws:s3:::bucket/maria/a",
        context=context_of({"aws:username": "carlos"}),
    )
    missing = evaluate([policy], action="s3:GetObject", resource="arn:aws:s3:::bucket/carlos/a", context={})
    assert (own.allowed, other.allowed, missing.allowed) == (True, False, False)


def test_unevaluable_condition_fails_an_allow_and_trips_a_deny() -> None:
    odd = {"BinaryEquals": {"key": "QmluYXJ5"}}
    allow = _policy({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": odd})
    deny = _policy(
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": odd},
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
    )
    assert not evaluate(
        [allow], action="sts:AssumeRole", resource="arn:x", context=context_of({"key": "x"})
    ).allowed
    assert evaluate(
        [deny], action="sts:AssumeRole", resource="arn:x", context=context_of({"key": "x"})
    ).denied


# --------------------------------------------------------------------------------------------------
# AssumeRole: trust policy and identity policy together
# --------------------------------------------------------------------------------------------------


def _trust(
    principal: Any, *, condition: Mapping[str, Any] | None = None, actions: list[str] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": actions or [ASSUME_ROLE],
    }
    if condition:
        statement["Condition"] = condition
    return _policy(statement)


def _model(trust: Mapping[str, Any], *, caller_policies: list[Mapping[str, Any]] | None = None) -> IamModel:
    model = IamModel(organizations={KERNEL: ORG, PARTNER: ORG})
    model.add_role(RoleFacts(ROLE_ARN, trust))
    if caller_policies is not None:
        model.declare(f"arn:aws:iam::{PARTNER}:role/workload", caller_policies)
        model.add_role(RoleFacts(f"arn:aws:iam::{KERNEL}:role/kernel-fn", _policy(), list(caller_policies)))
    return model


PARTNER_SESSION = Caller.from_arn(f"arn:aws:sts::{PARTNER}:assumed-role/workload/w")
KERNEL_SESSION = Caller.from_arn(f"arn:aws:sts::{KERNEL}:assumed-role/kernel-fn/f")
OUTSIDER_SESSION = Caller.from_arn(f"arn:aws:sts::{OUTSIDER}:assumed-role/workload/w")
NO_POLICY = _policy()
IN_ORG_TRUST = _trust(
    {"AWS": f"arn:aws:iam::{PARTNER}:root"},
    condition={
        "StringEquals": {"aws:PrincipalOrgID": ORG},
        "StringLike": {"sts:RoleSessionName": "payments.*"},
    },
)

ASSUME_CASES: list[tuple[str, IamModel, Caller, AssumeRoleRequest, bool, str]] = [
    # IAM User Guide, Cross-account policy evaluation logic: both sides must allow
    (
        "cross-account: trust and identity allow",
        _model(IN_ORG_TRUST),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        True,
        "",
    ),
    (
        "cross-account: identity policy does not allow",
        _model(IN_ORG_TRUST, caller_policies=[NO_POLICY]),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        False,
        ASSUME_ROLE,
    ),
    (
        "cross-account: trust names another account",
        _model(IN_ORG_TRUST),
        OUTSIDER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        False,
        ASSUME_ROLE,
    ),
    (
        "session name of another partner",
        _model(IN_ORG_TRUST),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "acme.app"),
        False,
        ASSUME_ROLE,
    ),
    (
        "account outside the organization",
        _model(_trust("*", condition={"StringEquals": {"aws:PrincipalOrgID": ORG}})),
        OUTSIDER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        False,
        ASSUME_ROLE,
    ),
    (
        "account inside the organization",
        _model(_trust("*", condition={"StringEquals": {"aws:PrincipalOrgID": ORG}})),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        True,
        "",
    ),
    # IAM User Guide, Access to AWS accounts owned by third parties (sts:ExternalId)
    (
        "external id missing",
        _model(_trust({"AWS": PARTNER}, condition={"StringEquals": {"sts:ExternalId": "ka-1"}})),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        False,
        ASSUME_ROLE,
    ),
    (
        "external id wrong",
        _model(_trust({"AWS": PARTNER}, condition={"StringEquals": {"sts:ExternalId": "ka-1"}})),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", external_id="ka-2"),
        False,
        ASSUME_ROLE,
    ),
    (
        "external id right",
        _model(_trust({"AWS": PARTNER}, condition={"StringEquals": {"sts:ExternalId": "ka-1"}})),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", external_id="ka-1"),
        True,
        "",
    ),
    # IAM User Guide, Passing session tags in AWS STS: tags need sts:TagSession in the trust policy.
    # A condition of a statement that allows several actions holds for each of them: the first action
    # of the request (sts:AssumeRole) is the one refused.
    (
        "tags without sts:TagSession",
        _model(IN_ORG_TRUST),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", tags={"team": "a"}),
        False,
        "sts:TagSession",
    ),
    (
        "listed tag key",
        _model(
            _trust(
                {"AWS": PARTNER},
                actions=[ASSUME_ROLE, "sts:TagSession"],
                condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}},
            )
        ),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", tags={"team": "a"}),
        True,
        "",
    ),
    (
        "unlisted tag key",
        _model(
            _trust(
                {"AWS": PARTNER},
                actions=[ASSUME_ROLE, "sts:TagSession"],
                condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}},
            )
        ),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", tags={"team": "a", "admin": "yes"}),
        False,
        ASSUME_ROLE,
    ),
    (
        "aws:RequestTag value",
        _model(
            _trust(
                {"AWS": PARTNER},
                actions=[ASSUME_ROLE, "sts:TagSession"],
                condition={"StringEquals": {"aws:RequestTag/team": "${aws:PrincipalAccount}"}},
            )
        ),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", tags={"team": OUTSIDER}),
        False,
        ASSUME_ROLE,
    ),
    # IAM User Guide, Monitor and control actions taken with assumed roles (sts:SetSourceIdentity)
    (
        "source identity without sts:SetSourceIdentity",
        _model(IN_ORG_TRUST),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", source_identity="alice"),
        False,
        "sts:SetSourceIdentity",
    ),
    (
        "sts:SourceIdentity constrained",
        _model(
            _trust(
                {"AWS": PARTNER},
                actions=[ASSUME_ROLE, "sts:SetSourceIdentity"],
                condition={"StringLike": {"sts:SourceIdentity": "payments-*"}},
            )
        ),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app", source_identity="acme-bob"),
        False,
        ASSUME_ROLE,
    ),
    # IAM User Guide, Policy evaluation for requests within a single account (role trust policies)
    (
        "same account, trust names the role: identity policy not needed",
        _model(_trust({"AWS": f"arn:aws:iam::{KERNEL}:role/kernel-fn"}), caller_policies=[NO_POLICY]),
        KERNEL_SESSION,
        AssumeRoleRequest(ROLE_ARN, "s"),
        True,
        "",
    ),
    (
        "same account, trust names the account: identity policy needed",
        _model(_trust({"AWS": f"arn:aws:iam::{KERNEL}:root"}), caller_policies=[NO_POLICY]),
        KERNEL_SESSION,
        AssumeRoleRequest(ROLE_ARN, "s"),
        False,
        ASSUME_ROLE,
    ),
    (
        "service principal",
        _model(_trust({"Service": "lambda.amazonaws.com"})),
        Caller.of_service("lambda.amazonaws.com"),
        AssumeRoleRequest(ROLE_ARN, "fn"),
        True,
        "",
    ),
    (
        "another service",
        _model(_trust({"Service": "lambda.amazonaws.com"})),
        Caller.of_service("ec2.amazonaws.com"),
        AssumeRoleRequest(ROLE_ARN, "fn"),
        False,
        ASSUME_ROLE,
    ),
    (
        "a role's session is not its account's service",
        _model(_trust({"Service": "lambda.amazonaws.com"})),
        KERNEL_SESSION,
        AssumeRoleRequest(ROLE_ARN, "fn"),
        False,
        ASSUME_ROLE,
    ),
    # IAM User Guide, Policy evaluation logic: explicit deny in the trust policy
    (
        "explicit deny in the trust policy",
        _model(
            _policy(
                {"Effect": "Allow", "Principal": {"AWS": PARTNER}, "Action": ASSUME_ROLE},
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ASSUME_ROLE,
                    "Condition": {"StringNotLike": {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"}},
                },
            )
        ),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, "payments.app"),
        False,
        ASSUME_ROLE,
    ),
    (
        "deny with a variable, request satisfies it",
        _model(
            _policy(
                {"Effect": "Allow", "Principal": {"AWS": PARTNER}, "Action": ASSUME_ROLE},
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ASSUME_ROLE,
                    "Condition": {"StringNotLike": {"sts:RoleSessionName": "${aws:PrincipalAccount}.*"}},
                },
            )
        ),
        PARTNER_SESSION,
        AssumeRoleRequest(ROLE_ARN, f"{PARTNER}.app"),
        True,
        "",
    ),
]


@pytest.mark.parametrize(
    ("model", "caller", "request_", "allowed", "action"),
    [c[1:] for c in ASSUME_CASES],
    ids=[c[0] for c in ASSUME_CASES],
)
def test_assume_role(
    model: IamModel, caller: Caller, request_: AssumeRoleRequest, allowed: bool, action: str
) -> None:
    decision = model.assume_role(caller, request_, now=datetime(2026, 12, 1, tzinfo=UTC))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.action == action
        assert decision.message == (
            f"User: {caller.arn} is not authorized to perform: {action} on resource: {ROLE_ARN}"
            + (" with an explicit deny" if decision.explicit_deny else "")
        )


def test_a_role_outside_the_template_holds_the_default_workload_policy() -> None:
    model = _model(IN_ORG_TRUST)
    assert model.identity_policies(PARTNER_SESSION) == [DEFAULT_WORKLOAD_POLICY]
    assert model.identity_policies(Caller.of_service("lambda.amazonaws.com")) == []


def test_invoke_needs_an_identity_grant_in_the_api_account() -> None:
    resource = "arn:aws:execute-api:us-east-1:111111111111:api/$default/GET/credentials"
    model = IamModel()
    model.add_role(RoleFacts(f"arn:aws:iam::{KERNEL}:role/kernel-access", _policy(), [_policy(ALLOW_INVOKE)]))
    model.add_role(RoleFacts(f"arn:aws:iam::{KERNEL}:role/kernel-reader", _policy(), []))
    granted = Caller.from_arn(f"arn:aws:sts::{KERNEL}:assumed-role/kernel-access/payments.x")
    ungranted = Caller.from_arn(f"arn:aws:sts::{KERNEL}:assumed-role/kernel-reader/r")
    assert model.invoke(granted, resource, api_account=KERNEL).allowed
    refused = model.invoke(ungranted, resource, api_account=KERNEL)
    assert not refused.allowed
    assert refused.message == (
        f"User: {ungranted.arn} is not authorized to perform: execute-api:Invoke on resource: {resource}"
    )
    # HTTP APIs have no resource policy: a caller of another account is refused whatever it holds.
    assert not model.invoke(PARTNER_SESSION, resource, api_account=KERNEL).allowed


# --------------------------------------------------------------------------------------------------
# The STS guard (WSGI middleware in front of moto)
# --------------------------------------------------------------------------------------------------


def _environ(body: str, key: str = "ASIAPARTNER", service: str = "sts") -> dict[str, Any]:
    data = body.encode()
    return {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8",
        "CONTENT_LENGTH": str(len(data)),
        "QUERY_STRING": "",
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={key}/20261201/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
        "wsgi.input": io.BytesIO(data),
    }


class _Downstream:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.bodies.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"moto"]


def _guard(callers: dict[str, Caller]) -> tuple[StsGuard, _Downstream]:
    downstream = _Downstream()
    return StsGuard(downstream, _model(IN_ORG_TRUST), callers.get), downstream


def _call(guard: StsGuard, environ: dict[str, Any]) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(guard(environ, lambda s, h: status.append(s)))
    return status[0], body


def test_guard_lets_an_allowed_assume_role_through_with_its_body() -> None:
    guard, downstream = _guard({"ASIAPARTNER": PARTNER_SESSION})
    body = f"Action=AssumeRole&Version=2011-06-15&RoleArn={ROLE_ARN}&RoleSessionName=payments.app"
    assert _call(guard, _environ(body)) == ("200 OK", b"moto")
    assert downstream.bodies == [body.encode()]  # moto still reads the whole form


def test_guard_answers_access_denied_as_sts_does() -> None:
    guard, downstream = _guard({"ASIAPARTNER": PARTNER_SESSION})
    status, body = _call(guard, _environ(f"Action=AssumeRole&RoleArn={ROLE_ARN}&RoleSessionName=acme.app"))
    assert status.startswith("403")
    assert b"<Code>AccessDenied</Code>" in body
    assert (
        f"User: {PARTNER_SESSION.arn} is not authorized to perform: "
        f"sts:AssumeRole on resource: {ROLE_ARN}".encode()
        in body
    )
    assert downstream.bodies == []


def test_guard_refuses_a_key_it_did_not_issue_for_a_template_role_only() -> None:
    guard, _downstream = _guard({})
    status, body = _call(guard, _environ(f"Action=AssumeRole&RoleArn={ROLE_ARN}&RoleSessionName=payments.a"))
    assert status.startswith("403")
    assert b"<Code>InvalidClientTokenId</Code>" in body
    outside = f"Action=AssumeRole&RoleArn=arn:aws:iam::{PARTNER}:role/payments-workload&RoleSessionName=w"
    assert _call(guard, _environ(outside))[0] == "200 OK"


def test_guard_ignores_other_services_and_actions() -> None:
    guard, _downstream = _guard({})
    assert _call(guard, _environ("Action=GetCallerIdentity"))[0] == "200 OK"
    assert _call(guard, _environ(f"Action=AssumeRole&RoleArn={ROLE_ARN}", service="iam"))[0] == "200 OK"


def test_assume_role_request_reads_tags_and_source_identity() -> None:
    request_ = assume_role_request(
        {
            "RoleArn": ROLE_ARN,
            "RoleSessionName": "s",
            "SourceIdentity": "alice",
            "ExternalId": "e",
            "Tags.member.1.Key": "team",
            "Tags.member.1.Value": "a",
            "Tags.member.2.Key": "env",
            "Tags.member.2.Value": "dev",
            "TransitiveTagKeys.member.1": "team",
        }
    )
    assert request_.tags == {"team": "a", "env": "dev"}
    assert (request_.source_identity, request_.external_id, list(request_.transitive_tag_keys)) == (
        "alice",
        "e",
        ["team"],
    )


def test_workload_policy_option_takes_role_arn_equals_file(tmp_path: Any) -> None:
    from kernel_access.cli.local import _workload_policies

    policy = tmp_path / "p.json"
    policy.write_text("{}")
    arn = "arn:aws:iam::222222222222:role/payments-workload"
    assert _workload_policies([f"{arn}={policy}"]) == ((arn, policy),)
    with pytest.raises(SystemExit):
        _workload_policies([f"{arn}={tmp_path / 'missing.json'}"])
    with pytest.raises(SystemExit):
        _workload_policies([str(policy)])


def test_declared_workload_policy_file_replaces_the_default(tmp_path: Any) -> None:
    import json

    from kernel_access.local.enforcement import load_declarations

    policy = tmp_path / "payments-workload.json"
    policy.write_text(json.dumps(_policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})))
    model = _model(IN_ORG_TRUST)
    load_declarations(model, [(PARTNER_SESSION.role_arn or "", policy)])
    decision = model.assume_role(PARTNER_SESSION, AssumeRoleRequest(ROLE_ARN, "payments.app"))
    assert (decision.allowed, decision.reason) == (False, "no identity policy allows")


def _stack(trust: Mapping[str, Any]) -> Any:
    from kernel_access.local.template import StackTemplate

    body = {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"RoleName": "r", "AssumeRolePolicyDocument": trust},
            }
        }
    }
    return StackTemplate("s", KERNEL, "us-east-1", body)


def test_organization_comes_from_the_kernel_configuration(tmp_path: Any) -> None:
    import json

    from kernel_access.local.enforcement import accounts_from_config

    config = {
        "organization_id": ORG,
        "kernel_account": KERNEL,
        "partners": [
            {"name": "payments", "account_id": PARTNER, "in_organization": True},
            {"name": "acme", "account_id": "333333333333", "in_organization": False},
        ],
    }
    (tmp_path / "cdk.json").write_text(json.dumps({"app": "x", "context": {"kernel-access": config}}))
    assert accounts_from_config(tmp_path, _stack(IN_ORG_TRUST)) == {KERNEL: ORG, PARTNER: ORG}


def test_without_configuration_the_trust_policies_name_the_organization(tmp_path: Any) -> None:
    from kernel_access.local.enforcement import accounts_from_config

    assert accounts_from_config(tmp_path, _stack(IN_ORG_TRUST)) == {KERNEL: ORG, PARTNER: ORG}
    assert accounts_from_config(tmp_path, _stack(_trust({"AWS": PARTNER}))) == {}


def test_principal_arn_is_the_roles_full_arn_with_its_path() -> None:
    # IAM User Guide, AWS global condition context keys (aws:PrincipalArn: the role's ARN, not the session's)
    trust = _trust(
        {"AWS": KERNEL},
        condition={"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{KERNEL}:role/team/kernel-fn"}},
    )
    model = _model(trust)
    model.add_role(
        RoleFacts(f"arn:aws:iam::{KERNEL}:role/team/kernel-fn", _policy(), [DEFAULT_WORKLOAD_POLICY])
    )
    assert model.assume_role(KERNEL_SESSION, AssumeRoleRequest(ROLE_ARN, "s")).allowed
    assert not model.assume_role(PARTNER_SESSION, AssumeRoleRequest(ROLE_ARN, "s")).allowed
