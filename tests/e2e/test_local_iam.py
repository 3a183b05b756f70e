"""Local IAM end to end: the example kernel stack's trust policies and execute-api grants, enforced.

Two halves over one table of requests:

* e2e: each request goes to the running emulator's STS (boto3, as a partner's SDK sends it); each
  refusal is STS's ``AccessDenied`` with AWS's message;
* mutations: the same request is decided by the local evaluator over the *synthesised template* and
  over a copy with one control removed (a trust condition, a principal binding, a grant). The refusal
  must disappear with the control: it is the template's statement that refuses, not the emulator.

Expectations come from the emulator's state and the template where they can (partners, their roles,
session-name prefixes and external IDs; the tag-key allow-list), so a change of account numbers or
partners changes the inputs, not this file. Each refused attempt differs from a partner's own
AssumeRole in one respect, so exactly one control of the partner identity model refuses it: the
principal (external roles), ``sts:ExternalId``, ``sts:RoleSessionName`` and ``sts:SourceIdentity``
bound to ``${aws:PrincipalAccount}``, ``aws:PrincipalOrgID``, ``aws:PrincipalAccount`` (not the kernel
account) and the ``aws:TagKeys`` allow-list.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from kernel_access.local.enforcement import accounts_from_config, model_from_template
from kernel_access.local.iam import AssumeRoleRequest, Caller, IamModel, statements
from kernel_access.local.template import Resolver, StackTemplate, select_kernel_stack
from kernel_access.validation import PARTNER_SESSION_TAG_KEYS

from tests.e2e.conftest import FIXTURES, PROJECT, Emulator, start_emulator, stop_emulator

OUTSIDE_ACCOUNT = "999999999999"
UNLISTED_TAG = "e2e-unlisted-tag"

Mutation = Callable[[dict[str, Any]], None]  # mutates one role's trust policy document in place


# --------------------------------------------------------------------------------------------------
# The requests, derived from the emulator's state (which reads the template)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One AssumeRole a workload in ``account`` makes on ``role_arn``."""

    name: str
    account: str
    workload: str
    role_arn: str
    session_name: str
    external_id: str | None = None
    source_identity: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def caller(self) -> Caller:
        return Caller.from_arn(f"arn:aws:sts::{self.account}:assumed-role/{self.workload}/workload")

    def request(self) -> AssumeRoleRequest:
        return AssumeRoleRequest(
            self.role_arn,
            self.session_name,
            external_id=self.external_id,
            source_identity=self.source_identity,
            tags=dict(self.tags),
        )


def _partners(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An in-organization partner (no external ID) and an external one, as the template has them."""
    in_org = next(p for p in state["partners"] if not p["external_id"])
    external = next(p for p in state["partners"] if p["external_id"])
    return in_org, external


def attempts(state: Mapping[str, Any]) -> dict[str, Attempt]:
    """Each attempt differs from a configured partner's own AssumeRole in one respect, so exactly one
    of the template's controls refuses it (the mutations below remove that one control)."""
    inside, outside = _partners(state)
    kernel = str(state["account_id"])

    def own(p: Mapping[str, Any], name: str, **changes: Any) -> Attempt:
        fields: dict[str, Any] = {
            "name": name,
            "account": p["account_id"],
            "workload": f"{p['partner']}-workload",
            "role_arn": p["role_arn"],
            "session_name": f"{p['session_prefix']}e2e-iam",
            "external_id": p["external_id"],
        }
        fields.update(changes)
        return Attempt(**fields)

    return {
        attempt.name: attempt
        for attempt in (
            own(inside, "in-org partner, as configured"),
            own(outside, "external partner, as configured"),
            own(
                inside,
                "in-org partner with its own source identity and listed session tags",
                source_identity=f"{inside['session_prefix']}alice",
                tags=dict.fromkeys(PARTNER_SESSION_TAG_KEYS, "e2e"),
            ),
            own(
                outside,
                "external partner with its own source identity and listed session tags",
                source_identity=f"{outside['session_prefix']}alice",
                tags=dict.fromkeys(PARTNER_SESSION_TAG_KEYS, "e2e"),
            ),
            own(outside, "external partner without its external ID", external_id=None),
            own(outside, "external partner with an external ID not its own", external_id="ka-not-acme-0000"),
            own(
                inside,
                "another partner's role and external ID",
                role_arn=outside["role_arn"],
                external_id=outside["external_id"],
            ),
            own(
                inside, "session name of another partner", session_name=f"{outside['session_prefix']}e2e-iam"
            ),
            own(
                outside,
                "external partner, session name of another partner",
                session_name=f"{inside['session_prefix']}e2e-iam",
            ),
            own(
                inside,
                "source identity of another partner",
                source_identity=f"{outside['session_prefix']}alice",
            ),
            own(
                outside,
                "external partner, source identity of another partner",
                source_identity=f"{inside['session_prefix']}alice",
            ),
            own(
                inside,
                "account outside the organization",
                account=OUTSIDE_ACCOUNT,
                workload="stranger-workload",
                session_name=f"{OUTSIDE_ACCOUNT}.e2e-iam",
            ),
            own(
                inside,
                "the kernel account itself",
                account=kernel,
                workload="kernel-workload",
                session_name=f"{kernel}.e2e-iam",
            ),
            own(inside, "unlisted session tag", tags={UNLISTED_TAG: "x"}),
            own(outside, "external partner, unlisted session tag", tags={UNLISTED_TAG: "x"}),
        )
    }


ADMITTED = [
    "in-org partner, as configured",
    "external partner, as configured",
    "in-org partner with its own source identity and listed session tags",
    "external partner with its own source identity and listed session tags",
]

REFUSED = [
    "external partner without its external ID",
    "external partner with an external ID not its own",
    "another partner's role and external ID",
    "session name of another partner",
    "external partner, session name of another partner",
    "source identity of another partner",
    "external partner, source identity of another partner",
    "account outside the organization",
    "the kernel account itself",
]

#: Refused by the trust policy's ``aws:TagKeys`` allow-list (the refusal names the action IAM reports).
TAG_REFUSED = ["unlisted session tag", "external partner, unlisted session tag"]


# --------------------------------------------------------------------------------------------------
# The template as the evaluator sees it, and mutations of it
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(kernel_assembly: Path) -> StackTemplate:
    return select_kernel_stack(kernel_assembly)


def model_of(template: StackTemplate) -> IamModel:
    return model_from_template(
        template, Resolver(template), organizations=accounts_from_config(PROJECT, template)
    )


def mutated(template: StackTemplate, role_arn: str, mutation: Mutation) -> StackTemplate:
    """A copy of ``template`` whose role ``role_arn`` has its trust policy changed by ``mutation``."""
    body = copy.deepcopy(dict(template.body))
    resolver = Resolver(template)
    for logical_id, resource in body["Resources"].items():
        if resource.get("Type") == "AWS::IAM::Role" and resolver.arn(logical_id) == role_arn:
            mutation(resource["Properties"]["AssumeRolePolicyDocument"])
            return StackTemplate(template.stack_name, template.account, template.region, body, template.path)
    raise AssertionError(f"no role {role_arn} in the template")


def drop_condition_key(key: str) -> Mutation:
    """Remove condition key ``key`` (whatever its operator) from every statement."""

    def mutate(document: dict[str, Any]) -> None:
        removed = False
        for statement in statements(document):
            for operator in list(statement.get("Condition", {})):
                block = statement["Condition"][operator]
                if any(k.lower() == key.lower() for k in block):
                    statement["Condition"][operator] = {
                        k: v for k, v in block.items() if k.lower() != key.lower()
                    }
                    removed = True
                    if not statement["Condition"][operator]:
                        del statement["Condition"][operator]
        assert removed, f"the trust policy has no {key} condition to remove"

    return mutate


def bind_principal(account: str) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        for statement in statements(document):
            assert isinstance(statement, dict)
            statement["Principal"] = {"AWS": f"arn:aws:iam::{account}:root"}

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(document)

    return mutate


# --------------------------------------------------------------------------------------------------
# e2e: the emulator's STS
# --------------------------------------------------------------------------------------------------


def sts_attempt(emulator: Emulator, attempt: Attempt) -> dict[str, str]:
    workload = emulator.workload(attempt.account, attempt.workload)
    extra: dict[str, Any] = {}
    if attempt.source_identity is not None:
        extra["SourceIdentity"] = attempt.source_identity
    if attempt.tags:
        extra["Tags"] = [{"Key": k, "Value": v} for k, v in attempt.tags.items()]
    return emulator.assume(
        attempt.role_arn, attempt.session_name, external_id=attempt.external_id, caller=workload, **extra
    )


@pytest.fixture(scope="module")
def table(kernel_emulator: Emulator) -> dict[str, Attempt]:
    assert kernel_emulator.state["iam"] is True, "local IAM is on by default"
    return attempts(kernel_emulator.state)


@pytest.mark.parametrize("name", ADMITTED)
def test_partner_as_configured_is_admitted(
    kernel_emulator: Emulator, table: dict[str, Attempt], name: str
) -> None:
    attempt = table[name]
    creds = sts_attempt(kernel_emulator, attempt)
    identity = kernel_emulator.client("sts", creds).get_caller_identity()
    assert identity["Arn"].endswith(
        f":assumed-role/{attempt.role_arn.rsplit('/', 1)[1]}/{attempt.session_name}"
    )


@pytest.mark.parametrize("name", REFUSED)
def test_refused_by_sts_as_aws_refuses(
    kernel_emulator: Emulator, table: dict[str, Attempt], name: str
) -> None:
    attempt = table[name]
    with pytest.raises(ClientError) as refused:
        sts_attempt(kernel_emulator, attempt)
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "AccessDenied"
    assert error["Message"] == (
        f"User: arn:aws:sts::{attempt.account}:assumed-role/{attempt.workload}/workload is not authorized "
        f"to perform: sts:AssumeRole on resource: {attempt.role_arn}"
    )


@pytest.mark.parametrize("name", TAG_REFUSED)
def test_unlisted_session_tag_is_refused_as_the_template_says(
    kernel_emulator: Emulator, table: dict[str, Attempt], template: StackTemplate, name: str
) -> None:
    """The trust policy allow-lists the partner session tag keys (aws:TagKeys): STS refuses any other
    key, with the refusal the template's evaluation gives."""
    attempt = table[name]
    expected = model_of(template).assume_role(attempt.caller, attempt.request())
    assert not expected.allowed, "an unlisted tag key must be refused by the allow-list"
    with pytest.raises(ClientError) as refused:
        sts_attempt(kernel_emulator, attempt)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert refused.value.response["Error"]["Message"] == expected.message


def test_key_not_issued_locally_cannot_assume_a_template_role(
    kernel_emulator: Emulator, table: dict[str, Attempt]
) -> None:
    attempt = table["in-org partner, as configured"]
    with pytest.raises(ClientError) as refused:
        kernel_emulator.assume(attempt.role_arn, attempt.session_name)
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"


# --------------------------------------------------------------------------------------------------
# e2e: the gateway's execute-api:Invoke check
# --------------------------------------------------------------------------------------------------


def test_role_without_an_invoke_grant_gets_403_at_the_gateway(kernel_emulator: Emulator) -> None:
    """A target role's session (vended by /credentials) has no execute-api:Invoke grant."""
    vending = str(kernel_emulator.state["vending_url"])
    caller = kernel_emulator.partner_session("payments", "e2e-iam-invoke")
    vended = kernel_emulator.call("GET", f"{vending}/credentials?role=kernel-reader&duration=900", caller)
    assert vended.status == 200, vended.body
    body = vended.json()
    reader = {
        "AWS_ACCESS_KEY_ID": body["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": body["SecretAccessKey"],
        "AWS_SESSION_TOKEN": body["Token"],
    }
    arn = kernel_emulator.client("sts", reader).get_caller_identity()["Arn"]
    response = kernel_emulator.call("GET", f"{vending}/health", reader)
    assert response.status == 403
    assert response.headers["x-amzn-errortype"] == "AccessDeniedException"
    api = next(a for a in kernel_emulator.state["apis"] if a["url"] == vending)
    api_id = _api_id(kernel_emulator, api["logical_id"])
    account = kernel_emulator.state["account_id"]
    resource = f"arn:aws:execute-api:{kernel_emulator.region}:{account}:{api_id}/$default/GET/health"
    assert response.json() == {
        "message": f"User: {arn} is not authorized to perform: execute-api:Invoke on resource: {resource}"
    }
    # The same route, the partner's kernel role: granted.
    assert kernel_emulator.call("GET", f"{vending}/health", caller).status == 200


def test_workload_of_another_account_gets_403_at_the_gateway(kernel_emulator: Emulator) -> None:
    """HTTP APIs have no resource policies: a principal of another account cannot be granted."""
    vending = str(kernel_emulator.state["vending_url"])
    workload = kernel_emulator.workload(
        kernel_emulator.partner("payments")["account_id"], "payments-workload"
    )
    response = kernel_emulator.call("GET", f"{vending}/health", workload)
    assert response.status == 403
    assert "is not authorized to perform: execute-api:Invoke on resource: " in response.json()["message"]


def _api_id(emulator: Emulator, logical_id: str) -> str:
    template = StackTemplate(
        emulator.state["stack"],
        emulator.state["account_id"],
        emulator.region,
        json.loads(Path(emulator.state["template"]).read_text()),
    )
    return Resolver(template).api_id(logical_id)


# --------------------------------------------------------------------------------------------------
# Mutations: remove the control, and the refusal disappears
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state(kernel_emulator: Emulator) -> dict[str, Any]:
    return kernel_emulator.state


def _mutations(state: Mapping[str, Any]) -> Iterator[tuple[str, Mutation]]:
    inside, _ = _partners(state)
    yield "external partner without its external ID", drop_condition_key("sts:ExternalId")
    yield "external partner with an external ID not its own", drop_condition_key("sts:ExternalId")
    yield "another partner's role and external ID", bind_principal(inside["account_id"])
    yield "session name of another partner", drop_condition_key("sts:RoleSessionName")
    yield "external partner, session name of another partner", drop_condition_key("sts:RoleSessionName")
    yield "source identity of another partner", drop_condition_key("sts:SourceIdentity")
    yield "external partner, source identity of another partner", drop_condition_key("sts:SourceIdentity")
    yield "account outside the organization", drop_condition_key("aws:PrincipalOrgID")
    yield "the kernel account itself", drop_condition_key("aws:PrincipalAccount")
    yield "unlisted session tag", drop_condition_key("aws:TagKeys")
    yield "external partner, unlisted session tag", drop_condition_key("aws:TagKeys")


MUTATED = REFUSED + TAG_REFUSED


def test_every_refusal_has_a_mutation(state: dict[str, Any]) -> None:
    assert sorted(dict(_mutations(state))) == sorted(MUTATED)


@pytest.mark.parametrize("name", MUTATED)
def test_refusal_disappears_without_the_templates_control(
    state: dict[str, Any], template: StackTemplate, name: str
) -> None:
    attempt = attempts(state)[name]
    mutation = dict(_mutations(state))[name]
    assert not model_of(template).assume_role(attempt.caller, attempt.request()).allowed
    changed = mutated(template, attempt.role_arn, mutation)
    decision = model_of(changed).assume_role(attempt.caller, attempt.request())
    assert decision.allowed, decision.reason


def test_organization_condition_refuses_an_outside_account_on_its_own(
    state: dict[str, Any], template: StackTemplate
) -> None:
    """The in-organization statement names any principal (``*``): with every other condition removed,
    aws:PrincipalOrgID alone still refuses the stranger, whatever session name it chooses, and admits
    the partner."""
    attempt = attempts(state)["account outside the organization"]
    inside = attempts(state)["in-org partner, as configured"]
    trust = model_of(template).role(attempt.role_arn)
    assert trust is not None
    assert [s.get("Principal") for s in statements(trust.trust_policy)] == [{"AWS": "*"}]
    org_id = statements(trust.trust_policy)[0]["Condition"]["StringEquals"]["aws:PrincipalOrgID"]
    only_org = both(
        drop_condition_key("sts:RoleSessionName"),
        drop_condition_key("aws:PrincipalAccount"),
        drop_condition_key("sts:SourceIdentity"),
        drop_condition_key("aws:TagKeys"),
    )
    changed = mutated(template, attempt.role_arn, only_org)
    conditions = [
        s.get("Condition") for s in statements(model_of(changed).role(attempt.role_arn).trust_policy)
    ]  # type: ignore[union-attr]
    assert conditions == [{"StringEquals": {"aws:PrincipalOrgID": org_id}}]
    for session_name in (attempt.session_name, inside.session_name):
        stranger = replace(attempt, session_name=session_name)
        assert not model_of(changed).assume_role(stranger.caller, stranger.request()).allowed
    assert model_of(changed).assume_role(inside.caller, inside.request()).allowed


def test_session_tags_need_sts_tag_session_in_the_trust_policy(
    state: dict[str, Any], template: StackTemplate
) -> None:
    """A listed tag key is admitted only while the statement allows sts:TagSession."""
    tagged = attempts(state)["in-org partner with its own source identity and listed session tags"]
    attempt = replace(tagged, source_identity=None)
    assert model_of(template).assume_role(attempt.caller, attempt.request()).allowed

    def drop_tag_session(document: dict[str, Any]) -> None:
        for statement in statements(document):
            assert isinstance(statement, dict)
            statement["Action"] = [a for a in statement["Action"] if a != "sts:TagSession"]

    changed = mutated(template, attempt.role_arn, drop_tag_session)
    decision = model_of(changed).assume_role(attempt.caller, attempt.request())
    assert (decision.allowed, decision.action) == (False, "sts:TagSession")
    untagged = attempts(state)["in-org partner, as configured"]
    assert model_of(changed).assume_role(untagged.caller, untagged.request()).allowed


@pytest.mark.parametrize("name", TAG_REFUSED)
def test_tag_key_allow_list_refuses_an_unlisted_key(
    state: dict[str, Any], template: StackTemplate, name: str
) -> None:
    """The template allow-lists exactly the partner session tag keys: the listed keys are admitted,
    an unlisted one is refused, and removing the allow-list admits it."""
    attempt = attempts(state)[name]
    role = model_of(template).role(attempt.role_arn)
    assert role is not None
    for statement in statements(role.trust_policy):
        assert statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] == list(
            PARTNER_SESSION_TAG_KEYS
        )
    assert not model_of(template).assume_role(attempt.caller, attempt.request()).allowed
    listed = replace(attempt, tags=dict.fromkeys(PARTNER_SESSION_TAG_KEYS, "e2e"))
    assert model_of(template).assume_role(listed.caller, listed.request()).allowed
    unlisted = mutated(template, attempt.role_arn, drop_condition_key("aws:TagKeys"))
    assert model_of(unlisted).assume_role(attempt.caller, attempt.request()).allowed


def test_invoke_refusal_disappears_with_a_grant_and_appears_without_one(
    state: dict[str, Any], template: StackTemplate
) -> None:
    """kernel-reader has no execute-api:Invoke grant (refused); the partner's kernel role has one
    (admitted) and loses it when the template's grant statement is removed."""
    model = model_of(template)
    resolver = Resolver(template)
    vending = next(a for a in state["apis"] if a["url"] == state["vending_url"])
    resource = (
        f"arn:aws:execute-api:{template.region}:{template.account}:"
        f"{resolver.api_id(vending['logical_id'])}/$default/GET/credentials"
    )
    reader = Caller.from_arn(f"arn:aws:sts::{template.account}:assumed-role/kernel-reader/r")
    partner = Caller.from_arn(state["partners"][0]["session_arn"])
    assert not model.invoke(reader, resource, api_account=template.account).allowed
    assert model.invoke(partner, resource, api_account=template.account).allowed

    body = copy.deepcopy(dict(template.body))
    for resource_ in body["Resources"].values():
        if resource_["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            document = resource_["Properties"]["PolicyDocument"]
            document["Statement"] = [
                s for s in statements(document) if s.get("Action") != "execute-api:Invoke"
            ]
    without = StackTemplate(template.stack_name, template.account, template.region, body, template.path)
    assert not model_of(without).invoke(partner, resource, api_account=template.account).allowed


# --------------------------------------------------------------------------------------------------
# --no-iam
# --------------------------------------------------------------------------------------------------


def test_no_iam_switches_enforcement_off_and_says_so(tmp_path: Path) -> None:
    """With --no-iam the banner says IAM is not enforced and moto's STS admits what IAM refuses."""
    emulator = start_emulator(
        ["--template", str(FIXTURES / "echo-stack.template.json"), "--no-iam"], tmp_path / "no-iam"
    )
    try:
        assert emulator.state["iam"] is False
        payments = emulator.partner("payments")
        workload = emulator.workload(payments["account_id"], "payments-workload")
        creds = emulator.assume(payments["role_arn"], "acme-analytics.no-iam", caller=workload)
        arn = emulator.client("sts", creds).get_caller_identity()["Arn"]
        assert arn.endswith(":assumed-role/kernel-access/acme-analytics.no-iam")
    finally:
        stop_emulator(emulator)
    assert "IAM           NOT enforced (--no-iam)" in emulator.log_path.read_text()


def test_partner_outside_the_configured_organization_is_refused_at_start_up(tmp_path: Path) -> None:
    """Organization membership comes from the kernel configuration: a configuration that does not
    put the partner's account in the organization makes the template's aws:PrincipalOrgID condition
    refuse that partner; the emulator still starts and says so."""
    import subprocess
    import sys

    project = tmp_path / "project"
    project.mkdir()
    config = {"organization_id": "o-a1b2c3d4e5", "kernel_account": "123456789012", "partners": []}
    (project / "cdk.json").write_text(json.dumps({"app": "false", "context": {"kernel-access": config}}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_access",
            "local",
            "--project-dir",
            str(project),
            "--template",
            str(FIXTURES / "echo-stack.template.json"),
            "--exit-after-start",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Partner identities refused by local IAM (no session, no env file):" in result.stdout
    assert (
        "  payments (222222222222): User: arn:aws:sts::222222222222:assumed-role/payments-workload/workload "
        "is not authorized to perform: sts:AssumeRole on resource: "
        "arn:aws:iam::123456789012:role/kernel-access"
    ) in result.stdout
