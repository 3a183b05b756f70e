"""Where local IAM is enforced: the model built from the template and config, and the STS guard.

* :func:`model_from_template` reads every ``AWS::IAM::Role`` of the template (trust policy, inline
  policies, ``AWS::IAM::Policy`` and template-managed policies attached to it) into an
  :class:`~kernel_access.local.iam.IamModel`.
* :func:`accounts_from_config` reads the kernel configuration (``cdk.json`` context
  ``"kernel-access"``: ``organization_id``, ``kernel_account``, ``partners[].account_id`` /
  ``in_organization``), so a partner workload in a partner account is a principal of that account,
  in that organization or not, exactly as the configuration says.
* :class:`StsGuard` is WSGI middleware in front of the in-process moto server. moto's STS hands out
  any role's session; the guard decides each ``AssumeRole`` of a template role first and answers a
  refusal the way STS does (403 ``AccessDenied``, ``User: ... is not authorized to perform:
  sts:AssumeRole on resource: ...``), so the SDKs, the client and the CLI see AWS's error.

Callers of ``AssumeRole``:

* a session or user the local STS/IAM issued: evaluated as that principal;
* a Lambda execution environment of the emulator: the emulator assumes the function's role with a
  service key, evaluated as the service principal ``lambda.amazonaws.com``;
* an access key the local STS did not issue (what scripts use to *create* an identity in some account,
  e.g. a partner's workload role): it may assume only roles the template does not declare; for a
  template role STS answers ``InvalidClientTokenId``, as AWS answers an unknown key.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from kernel_access.contract import CONFIG_CONTEXT_KEY
from kernel_access.local.iam import (
    AssumeRoleRequest,
    Caller,
    Decision,
    IamModel,
    RoleFacts,
    statements,
)
from kernel_access.local.template import Resolver, StackTemplate

#: Service principal the emulator's Lambda environments assume their execution roles as.
LAMBDA_SERVICE: Final = "lambda.amazonaws.com"
_CREDENTIAL_RE: Final = re.compile(r"Credential=([A-Za-z0-9]+)/[0-9]{8}/[^/]+/([^/]+)/aws4_request")
_STS_NAMESPACE: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
_ACCOUNT_IN_RE: Final = re.compile(r"^(?:arn:aws[a-z-]*:iam::)?([0-9]{12})(?::|$)")


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


def model_from_template(
    template: StackTemplate, resolver: Resolver, *, organizations: Mapping[str, str] | None = None
) -> IamModel:
    """Every role of ``template`` with its trust policy and the identity policies attached to it."""
    model = IamModel(organizations=dict(organizations or {}))
    by_name: dict[str, RoleFacts] = {}
    managed: dict[str, Mapping[str, Any]] = {}
    for logical_id in template.of_type("AWS::IAM::ManagedPolicy"):
        managed[resolver.arn(logical_id)] = resolver.resource_properties(logical_id).get("PolicyDocument", {})
    for logical_id in template.of_type("AWS::IAM::Role"):
        props = resolver.resource_properties(logical_id)
        facts = RoleFacts(resolver.arn(logical_id), props.get("AssumeRolePolicyDocument") or {})
        facts.identity_policies.extend(p.get("PolicyDocument", {}) for p in props.get("Policies", []))
        for arn in props.get("ManagedPolicyArns", []):
            if str(arn) in managed:
                facts.identity_policies.append(managed[str(arn)])
            else:
                facts.unreadable_policies.append(str(arn))
        by_name[resolver.physical_name(logical_id)] = facts
        model.add_role(facts)
    for logical_id in template.of_type("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        props = resolver.resource_properties(logical_id)
        for role in props.get("Roles", []):
            attached = by_name.get(str(role))
            if attached is not None:
                attached.identity_policies.append(props.get("PolicyDocument", {}))
    return model


def accounts_from_config(
    project_dir: Path | None, template: StackTemplate, resolver: Resolver | None = None
) -> dict[str, str]:
    """Account -> organization id, from the kernel configuration (``cdk.json`` context).

    The template's (kernel) account, the configured ``kernel_account`` and every partner with
    ``in_organization: true`` are in ``organization_id``; other partners and every other account are in
    no organization.

    Without a configuration (a ``--template`` run of a stack that is not this project's), the template
    is the only description there is: its account and every account a trust statement conditioned on
    ``aws:PrincipalOrgID`` names are taken to be in that organization, as the previous emulator assumed
    for every caller. Accounts nobody names stay outside, so ``aws:PrincipalOrgID`` still refuses them.
    """
    config = _config(project_dir)
    org = config.get("organization_id")
    if not isinstance(org, str) or not org:
        return organizations_from_template(template, resolver or Resolver(template))
    accounts = {template.account: org, str(config.get("kernel_account") or template.account): org}
    for partner in config.get("partners", []) or []:
        if isinstance(partner, Mapping) and partner.get("in_organization") and partner.get("account_id"):
            accounts[str(partner["account_id"])] = org
    return accounts


def organizations_from_template(template: StackTemplate, resolver: Resolver) -> dict[str, str]:
    """Organization membership as the trust policies state it (see :func:`accounts_from_config`)."""
    accounts: dict[str, str] = {}
    for logical_id in template.of_type("AWS::IAM::Role"):
        trust = resolver.resource_properties(logical_id).get("AssumeRolePolicyDocument")
        for statement in statements(trust):
            orgs = [
                str(value)
                for block in (statement.get("Condition") or {}).values()
                if isinstance(block, Mapping)
                for key, values in block.items()
                if str(key).lower() == "aws:principalorgid"
                for value in (values if isinstance(values, list) else [values])
            ]
            if not orgs:
                continue
            accounts.setdefault(template.account, orgs[0])
            principal = statement.get("Principal")
            named = principal.get("AWS", []) if isinstance(principal, Mapping) else []
            for value in named if isinstance(named, list) else [named]:
                match = _ACCOUNT_IN_RE.match(str(value))
                if match:
                    accounts.setdefault(match.group(1), orgs[0])
    return accounts


def _config(project_dir: Path | None) -> Mapping[str, Any]:
    if project_dir is None:
        return {}
    context: dict[str, Any] = {}
    for name in ("cdk.context.json", "cdk.json"):
        path = project_dir / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        context.update(data.get("context", {}) if name == "cdk.json" else data)
    value = context.get(CONFIG_CONTEXT_KEY)
    return value if isinstance(value, Mapping) else {}


def load_declarations(model: IamModel, declarations: Iterable[tuple[str, Path]]) -> None:
    """Declare the identity policies of outside roles: ``(role ARN, JSON file)`` pairs.

    The file holds one policy document or a list of them.
    """
    for role_arn, path in declarations:
        data = json.loads(path.read_text())
        model.declare(role_arn, data if isinstance(data, list) else [data])


# --------------------------------------------------------------------------------------------------
# The STS guard
# --------------------------------------------------------------------------------------------------


def assume_role_request(params: Mapping[str, str]) -> AssumeRoleRequest:
    """The parts of an ``AssumeRole`` query that authorization looks at (tags, source identity, ...)."""
    tags: dict[str, str] = {}
    index = 1
    while f"Tags.member.{index}.Key" in params:
        tags[params[f"Tags.member.{index}.Key"]] = params.get(f"Tags.member.{index}.Value", "")
        index += 1
    transitive = [v for k, v in sorted(params.items()) if k.startswith("TransitiveTagKeys.member.")]
    return AssumeRoleRequest(
        role_arn=params.get("RoleArn", ""),
        session_name=params.get("RoleSessionName", ""),
        external_id=params.get("ExternalId"),
        source_identity=params.get("SourceIdentity"),
        tags=tags,
        transitive_tag_keys=transitive,
    )


def sts_error(status: int, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """An STS error response as AWS sends it (Query protocol XML)."""
    request_id = secrets.token_hex(16)
    body = (
        f'<ErrorResponse xmlns="{_STS_NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    reason = {400: "Bad Request", 403: "Forbidden"}.get(status, "Error")
    headers = [
        ("Content-Type", "text/xml"),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id),
    ]
    return f"{status} {reason}", headers, body


#: Who holds an access key: the principal as IAM sees it, or None for a key the local IAM did not issue.
CallerLookup = Callable[[str], Caller | None]


class StsGuard:
    """WSGI middleware: evaluates ``AssumeRole`` of template roles before moto's STS answers it.

    ``refusals`` keeps the most recent refusals (for tests and debugging); it never holds a secret
    (no keys, no tokens). ``enabled`` False passes every request through (what ``--no-iam`` gives; the
    benchmark flips it to measure enforcement against the same running kernel).
    """

    def __init__(
        self, app: Any, model: IamModel, lookup: CallerLookup, *, log: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.model = model
        self.lookup = lookup
        self.log = log
        self.refusals: list[Decision] = []
        self.enabled = True

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _CREDENTIAL_RE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if match is None or match.group(2) != "sts" or not self.enabled:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        if "x-www-form-urlencoded" in str(environ.get("CONTENT_TYPE", "")):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if params.get("Action") != "AssumeRole":
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        refusal = self.refusal(match.group(1), assume_role_request(params))
        if refusal is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        status, headers, payload = refusal
        start_response(status, headers)
        return [payload]

    def refusal(
        self, access_key_id: str, request: AssumeRoleRequest
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """The STS error to answer, or None to let moto serve the request."""
        if self.model.role(request.role_arn) is None:
            return None  # not a role of the template: an identity of the outside world (see module doc)
        caller = self.lookup(access_key_id)
        if caller is None:
            return sts_error(
                403, "InvalidClientTokenId", "The security token included in the request is invalid."
            )
        decision = self.model.assume_role(caller, request)
        if decision.allowed:
            return None
        self.refusals.append(decision)
        del self.refusals[:-100]
        if self.log is not None:
            self.log(
                json.dumps(
                    {
                        "sts": "AssumeRole",
                        "decision": "deny",
                        "caller": decision.caller,
                        "action": decision.action,
                        "resource": decision.resource,
                        "reason": decision.reason,
                    },
                    separators=(",", ":"),
                )
            )
        return sts_error(403, "AccessDenied", decision.message)
