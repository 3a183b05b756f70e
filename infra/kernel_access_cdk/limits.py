"""Synth-time check of AWS size and count limits: what CloudFormation would refuse at deploy time.

``make synth`` and ``cdk synth`` succeed on templates that AWS refuses later: a trust policy over
IAM's size quota, a Lambda environment over 4 KB, a template over 500 resources. CloudFormation
finds out halfway through an update and rolls the stack back. This module finds out at synth: it is
a CDK policy-validation plugin (the mechanism cdk-nag v3 uses), registered beside the cdk-nag packs
by :func:`register_limits`, so a template over any limit fails synth with a report that names the
resource, the figure and the limit.

Every limit is in :class:`Limits` (defaults = AWS's defaults) and :data:`QUOTA_MAXIMA` (the most
AWS grants on request). The quota-raisable ones are configured in cdk.json's ``"limits"`` section
(see ``docs/limits.md``); any limit may be configured lower.

How sizes are measured, and why:

- IAM policies (trust, inline, managed): IAM does not count white space, so the size is the length
  of the minified JSON document (``separators=(",", ":")``), in characters.
- CloudFormation intrinsics are not resolved at synth. Each is replaced by a string as long as the
  longest value it can resolve to (:data:`PSEUDO_PARAMETER_LENGTHS`, :data:`REF_LENGTH`,
  :data:`GETATT_LENGTH`), so the figure errs on the large side: a policy that passes here is not
  larger once deployed.
- SSM parameter values and Lambda environments are measured in UTF-8 bytes; the environment as the
  minified JSON of its ``Variables`` map (keys and values count; the quoting makes it slightly
  conservative).
- A configuration document (an object a ``BucketDeployment`` puts in the config bucket) is measured
  in bytes as staged in the cloud assembly, each deploy-time value in it (a role ARN) counted as
  :data:`GETATT_LENGTH`.
- A template's size is the size of the file the CDK wrote (what the CLI uploads); its resources are
  counted from its ``Resources`` section, its outputs from ``Outputs``. A template passed inline
  (a StackSet's ``TemplateBody``) is measured in UTF-8 bytes against CloudFormation's 51,200-byte
  request limit.
- Nested stacks (``AWS::CloudFormation::Stack``, e.g. the external partners' roles) are templates of
  their own, with their own 500 resources and 1 MB: CDK hands a validation plugin only the top-level
  templates, so each nested template is found in the assembly (:mod:`kernel_access.local.nested_stacks`)
  and checked too, its roles counted for the parent's account. A nested stack whose template is not
  in the assembly is a finding (``NestedStackTemplate``): what cannot be checked does not pass.
- IAM roles per account: the ``AWS::IAM::Role`` resources of every stack that deploys to the same
  account (from the cloud assembly manifest) are added up. Roles that already exist in the account
  are invisible to synth: configure ``roles_per_account`` as the quota minus those.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Protocol

import jsii
from aws_cdk import (
    App,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
    Validations,
)
from kernel_access.contract import MAX_DOCUMENT_BYTES
from kernel_access.local.deployments import BUCKET_DEPLOYMENT, deployed_files
from kernel_access.local.nested_stacks import NestedTemplates

PLUGIN_NAME: Final = "KernelAccessLimits"


@dataclass(frozen=True)
class Limits:
    """The limits checked, with AWS's defaults. Units are in each field's name."""

    #: IAM role trust policy (quota "Role trust policy length"; default 2,048, at most 4,096).
    trust_policy_characters: int = 2_048
    #: All inline policies of one role together (not raisable).
    inline_policy_characters_per_role: int = 10_240
    #: One customer managed policy (not raisable).
    managed_policy_characters: int = 6_144
    #: SSM parameter value, Standard tier / Advanced (and Intelligent-Tiering, which may pick it).
    ssm_standard_bytes: int = 4_096
    ssm_advanced_bytes: int = 8_192
    #: One configuration document in the config bucket (S3 objects hold terabytes; this is our own
    #: limit: a Lambda downloads and parses the whole document each time it changes). The default is
    #: the runtime's own limit, which the Lambdas enforce on every load: configured lower, synth is
    #: stricter than the runtime; it can never be configured higher.
    config_document_bytes: int = MAX_DOCUMENT_BYTES
    #: All environment variables of one Lambda function.
    lambda_environment_bytes: int = 4_096
    #: Resources in one CloudFormation template.
    template_resources: int = 500
    #: Outputs in one CloudFormation template.
    template_outputs: int = 200
    #: One CloudFormation template uploaded through S3 ("1 MB"; read as 10^6 bytes to stay on the
    #: safe side of either reading).
    template_bytes: int = 1_000_000
    #: IAM roles in one account (quota "Roles per account"; default 1,000, at most 5,000).
    roles_per_account: int = 1_000
    #: A template passed inline (``TemplateBody``) rather than from S3, e.g. a StackSet's.
    template_body_bytes: int = 51_200


#: The most AWS grants for each limit (Service Quotas); a configured value above it is an error.
QUOTA_MAXIMA: Final[Mapping[str, int]] = {
    **{f.name: f.default for f in fields(Limits)},  # type: ignore[misc]
    "trust_policy_characters": 4_096,
    "roles_per_account": 5_000,
}

#: Organizational units one CreateStackInstances operation accepts (a StackSet's deployment targets).
STACKSET_ORGANIZATIONAL_UNITS: Final = 50

#: Longest value of each pseudo parameter (partition ``aws-iso-b``/``aws-us-gov``, a 12-digit
#: account, the longest region names, ``amazonaws.com.cn``); other pseudo parameters (stack ids,
#: notification ARNs) get :data:`GETATT_LENGTH`.
PSEUDO_PARAMETER_LENGTHS: Final[Mapping[str, int]] = {
    "AWS::Partition": 10,
    "AWS::AccountId": 12,
    "AWS::Region": 14,
    "AWS::URLSuffix": 16,
    "AWS::StackName": 128,
    "AWS::NoValue": 0,
}
#: A ``Ref`` to a resource or parameter: names CloudFormation generates are at most 64 characters
#: for roles and functions; 128 covers the other names this library creates.
REF_LENGTH: Final = 128
#: An ``Fn::GetAtt`` (usually an ARN) or an ``Fn::ImportValue``.
GETATT_LENGTH: Final = 256


# ----------------------------------------------------------------------------- measuring


def _ref(argument: Any) -> str:
    name = str(argument)
    default = GETATT_LENGTH if name.startswith("AWS::") else REF_LENGTH
    return "x" * PSEUDO_PARAMETER_LENGTHS.get(name, default)


def _join(argument: Any) -> Any:
    if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], list)):
        return "x" * GETATT_LENGTH
    separator, parts = argument
    return str(separator).join(_text(_estimate(part)) for part in parts)


def _longest(options: list[Any]) -> Any:
    return max((_estimate(o) for o in options), key=lambda o: len(_minified(o)), default="")


def _if(argument: Any) -> Any:
    return (
        _longest(argument[1:]) if isinstance(argument, list) and len(argument) == 3 else "x" * GETATT_LENGTH
    )


def _select(argument: Any) -> Any:
    if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], list):
        return _longest(argument[1])
    return "x" * GETATT_LENGTH


#: How each intrinsic is estimated; any other ``Fn::`` (GetAtt, ImportValue, GetAZs, ...) resolves
#: to at most :data:`GETATT_LENGTH` characters.
_INTRINSICS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "Ref": _ref,
    "Fn::Join": _join,
    "Fn::Sub": lambda argument: _sub(argument),  # noqa: PLW0108 - _sub is defined below
    "Fn::If": _if,
    "Fn::Select": _select,
}


def _estimate(value: Any) -> Any:
    """``value`` with every intrinsic replaced by a placeholder as long as its longest result."""
    if isinstance(value, list):
        return [_estimate(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key in _INTRINSICS:
            return _INTRINSICS[key](argument)
        if key.startswith("Fn::"):
            return "x" * GETATT_LENGTH
    return {k: _estimate(v) for k, v in value.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _minified(value)


def _sub(argument: Any) -> str:
    template, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
    out, rest = [], str(template)
    while "${" in rest:
        before, _, after = rest.partition("${")
        name, _, rest = after.partition("}")
        out.append(before)
        if name.startswith("!"):  # ${!Literal}
            out.append("${" + name[1:] + "}")
        elif name in variables:
            out.append(_text(_estimate(variables[name])))
        elif name in PSEUDO_PARAMETER_LENGTHS:
            out.append("x" * PSEUDO_PARAMETER_LENGTHS[name])
        else:
            out.append("x" * (GETATT_LENGTH if "." in name else REF_LENGTH))
    out.append(rest)
    return "".join(out)


def _minified(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)


def policy_characters(document: Any) -> int:
    """Size of an IAM policy document the way IAM counts it: minified JSON (white space is not
    counted), intrinsics at their longest."""
    return len(_minified(_estimate(document)))


def utf8_bytes(value: Any) -> int:
    estimated = _estimate(value)
    return len((estimated if isinstance(estimated, str) else _minified(estimated)).encode("utf-8"))


# ----------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Rule:
    """One limit as the report shows it: rule name, unit, what is measured, what to do past it."""

    name: str
    unit: str
    what: str
    fix: str


_RAISE = "raise the quota '{quota}' with AWS (at most {maximum:,}) and set limits.{field} in cdk.json"
TRUST_POLICY: Final = Rule(
    "TrustPolicySize",
    "characters",
    "the trust policy (minified)",
    _RAISE.format(quota="Role trust policy length", maximum=4_096, field="trust_policy_characters")
    + ", or trust fewer principals per role",
)
INLINE_POLICIES: Final = Rule(
    "InlinePoliciesPerRole",
    "characters",
    "the role's inline policies together (minified)",
    "move statements to customer managed policies (up to 10 per role)",
)
MANAGED_POLICY: Final = Rule(
    "ManagedPolicySize",
    "characters",
    "the managed policy (minified)",
    "split it into several managed policies",
)
SSM_PARAMETER: Final = Rule(
    "SsmParameterSize",
    "bytes",
    "the parameter value",
    "use the Advanced tier (8 KB), or keep the document elsewhere (S3, AppConfig)",
)
CONFIG_DOCUMENT: Final = Rule(
    "ConfigDocumentSize",
    "bytes",
    "the configuration document",
    "split the document (e.g. fewer, attribute-based rules instead of one rule per partner), or "
    "configure limits.config_document_bytes lower, never higher: Lambda memory and parse time bound it",
)
LAMBDA_ENVIRONMENT: Final = Rule(
    "LambdaEnvironmentSize",
    "bytes",
    "the environment variables",
    "move large values to SSM parameters and pass their names",
)
TEMPLATE_RESOURCES: Final = Rule(
    "TemplateResources",
    "resources",
    "the number of resources",
    "split the stack (e.g. spread partners across several stacks)",
)
TEMPLATE_OUTPUTS: Final = Rule(
    "TemplateOutputs",
    "outputs",
    "the number of outputs",
    "output a shared value once (a prefix, a parameter path), not one output per partner",
)
NESTED_TEMPLATE: Final = Rule(
    "NestedStackTemplate",
    "templates",
    "the number of nested templates missing from the cloud assembly (they cannot be checked)",
    "build nested stacks with aws_cdk.NestedStack so their templates are assets of the assembly",
)
TEMPLATE_SIZE: Final = Rule(
    "TemplateSize", "bytes", "the template", "split the stack; move large documents to S3 or SSM"
)
TEMPLATE_BODY: Final = Rule(
    "TemplateBodySize",
    "bytes",
    "the inline TemplateBody",
    "pass the template by TemplateURL from S3 (up to 460,800 bytes), or make it smaller",
)
ROLES_PER_ACCOUNT: Final = Rule(
    "RolesPerAccount",
    "roles",
    "the number of IAM roles these stacks create in one account",
    _RAISE.format(quota="Roles per account", maximum=5_000, field="roles_per_account"),
)
RULES: Final = (
    TRUST_POLICY,
    INLINE_POLICIES,
    MANAGED_POLICY,
    SSM_PARAMETER,
    CONFIG_DOCUMENT,
    LAMBDA_ENVIRONMENT,
    TEMPLATE_RESOURCES,
    TEMPLATE_OUTPUTS,
    TEMPLATE_SIZE,
    TEMPLATE_BODY,
    ROLES_PER_ACCOUNT,
    NESTED_TEMPLATE,
)


@dataclass(frozen=True)
class Finding:
    """One limit broken by one resource (``resource`` is the logical id, or ``"template"``)."""

    rule: Rule
    template_path: str
    resource: str
    figure: int
    limit: int
    location: str
    #: Replaces ``rule.what`` when the finding knows more (the SSM tier, the account).
    what: str | None = None

    @property
    def description(self) -> str:
        unit = self.rule.unit
        return (
            f"{self.resource}: {self.what or self.rule.what} is {self.figure:,} {unit}; "
            f"the limit is {self.limit:,} {unit} ({self.rule.name})"
        )


@dataclass(frozen=True)
class _Template:
    path: str
    account: str
    body: dict[str, Any]
    size: int
    #: Logical ids of this template's nested stacks whose templates are not in the assembly.
    missing_nested: tuple[str, ...] = ()

    @property
    def resources(self) -> Mapping[str, Any]:
        resources = self.body.get("Resources")
        return resources if isinstance(resources, dict) else {}


def _of_type(template: _Template, *types: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for logical_id, resource in template.resources.items():
        if isinstance(resource, dict) and resource.get("Type") in types:
            properties = resource.get("Properties")
            yield logical_id, properties if isinstance(properties, dict) else {}


def _role_refs(properties: Mapping[str, Any]) -> Iterator[str]:
    """Logical ids of the roles an ``AWS::IAM::Policy`` / ``RolePolicy`` attaches to."""
    roles = properties.get("Roles", [])
    if "RoleName" in properties:
        roles = [properties["RoleName"]]
    for role in roles if isinstance(roles, list) else []:
        if isinstance(role, dict) and isinstance(role.get("Ref"), str):
            yield role["Ref"]


class _Add(Protocol):
    def __call__(
        self, rule: Rule, resource: str, figure: int, limit: int, location: str, *, what: str | None = None
    ) -> None: ...


def check_template(template: _Template, limits: Limits) -> list[Finding]:
    """Every per-template limit (all but roles per account)."""
    found: list[Finding] = []

    def add(
        rule: Rule, resource: str, figure: int, limit: int, location: str, *, what: str | None = None
    ) -> None:
        if figure > limit:
            found.append(Finding(rule, template.path, resource, figure, limit, location, what))

    _check_template_shape(template, limits, add)
    _check_iam_policies(template, limits, add)
    _check_resource_properties(template, limits, add)
    return found


def _check_template_shape(template: _Template, limits: Limits, add: _Add) -> None:
    """Resources, outputs and size of the template itself, and nested templates it lacks."""
    add(TEMPLATE_RESOURCES, "template", len(template.resources), limits.template_resources, "/Resources")
    add(TEMPLATE_SIZE, "template", template.size, limits.template_bytes, "/")
    outputs = template.body.get("Outputs")
    add(
        TEMPLATE_OUTPUTS,
        "template",
        len(outputs) if isinstance(outputs, dict) else 0,
        limits.template_outputs,
        "/Outputs",
    )
    for logical_id in template.missing_nested:
        add(NESTED_TEMPLATE, logical_id, 1, 0, f"/Resources/{logical_id}")


def _check_iam_policies(template: _Template, limits: Limits, add: _Add) -> None:
    """Trust policies, inline policies per role and managed policies."""
    inline: dict[str, int] = defaultdict(int)
    for logical_id, props in _of_type(template, "AWS::IAM::Role"):
        document = props.get("AssumeRolePolicyDocument", {})
        location = f"/Resources/{logical_id}/Properties/AssumeRolePolicyDocument"
        add(TRUST_POLICY, logical_id, policy_characters(document), limits.trust_policy_characters, location)
        for policy in props.get("Policies", []) or []:
            if isinstance(policy, dict):
                inline[logical_id] += policy_characters(policy.get("PolicyDocument", {}))
    for _logical_id, props in _of_type(template, "AWS::IAM::Policy", "AWS::IAM::RolePolicy"):
        size = policy_characters(props.get("PolicyDocument", {}))
        for role in _role_refs(props):
            inline[role] += size
    for role, size in sorted(inline.items()):
        add(INLINE_POLICIES, role, size, limits.inline_policy_characters_per_role, f"/Resources/{role}")
    for logical_id, props in _of_type(template, "AWS::IAM::ManagedPolicy"):
        size = policy_characters(props.get("PolicyDocument", {}))
        location = f"/Resources/{logical_id}/Properties/PolicyDocument"
        add(MANAGED_POLICY, logical_id, size, limits.managed_policy_characters, location)


def _check_resource_properties(template: _Template, limits: Limits, add: _Add) -> None:
    """Sized properties of other resources: SSM values, Lambda environments, StackSet bodies."""
    for logical_id, props in _of_type(template, "AWS::SSM::Parameter"):
        # Intelligent-Tiering switches to Advanced when the value needs it.
        tier = props.get("Tier") if isinstance(props.get("Tier"), str) else "Standard"
        limit = limits.ssm_standard_bytes if tier == "Standard" else limits.ssm_advanced_bytes
        size = utf8_bytes(props.get("Value", ""))
        location = f"/Resources/{logical_id}/Properties/Value"
        add(SSM_PARAMETER, logical_id, size, limit, location, what=f"the parameter value ({tier} tier)")
    for logical_id, props in _of_type(template, BUCKET_DEPLOYMENT):
        location = f"/Resources/{logical_id}/Properties/SourceObjectKeys"
        for key, size in deployed_document_sizes(Path(template.path).parent, props):
            what = f"the configuration document {key}"
            add(CONFIG_DOCUMENT, logical_id, size, limits.config_document_bytes, location, what=what)
    for logical_id, props in _of_type(template, "AWS::Lambda::Function"):
        environment = props.get("Environment")
        variables = environment.get("Variables") if isinstance(environment, dict) else None
        if variables is not None:
            location = f"/Resources/{logical_id}/Properties/Environment"
            add(
                LAMBDA_ENVIRONMENT,
                logical_id,
                utf8_bytes(variables),
                limits.lambda_environment_bytes,
                location,
            )
    for logical_id, props in _of_type(template, "AWS::CloudFormation::StackSet"):
        if "TemplateBody" in props:
            location = f"/Resources/{logical_id}/Properties/TemplateBody"
            size = utf8_bytes(props["TemplateBody"])
            add(TEMPLATE_BODY, logical_id, size, limits.template_body_bytes, location)


def deployed_document_sizes(outdir: Path, properties: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """(object key, bytes) of every file a ``BucketDeployment`` puts in place, from its staged assets;
    each deploy-time value in a file counts as :data:`GETATT_LENGTH` bytes."""
    longest = "x" * GETATT_LENGTH
    try:
        for key, content in deployed_files(outdir, properties, lambda _value: longest):
            yield key, len(content)
    except FileNotFoundError:  # assets not staged (e.g. a template checked without its assembly)
        return


def check_roles_per_account(templates: list[_Template], limits: Limits) -> list[Finding]:
    """IAM roles of every template that deploys to one account, added up; the finding names the
    first role over the limit."""
    by_account: dict[str, list[tuple[_Template, str]]] = defaultdict(list)
    for template in templates:
        for logical_id, _props in _of_type(template, "AWS::IAM::Role"):
            by_account[template.account].append((template, logical_id))
    found = []
    for account, roles in sorted(by_account.items()):
        if len(roles) > limits.roles_per_account:
            template, logical_id = roles[limits.roles_per_account]
            what = f"the number of IAM roles these stacks create in account {account}"
            found.append(
                Finding(
                    ROLES_PER_ACCOUNT,
                    template.path,
                    logical_id,
                    len(roles),
                    limits.roles_per_account,
                    f"/Resources/{logical_id}",
                    what,
                )
            )
    return found


def _accounts_by_template(outdir: Path) -> dict[str, str]:
    """Template file -> account, from the cloud assembly manifest (``unknown`` when agnostic)."""
    try:
        manifest = json.loads((outdir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    accounts: dict[str, str] = {}
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        environment = str(artifact.get("environment", "aws://unknown-account/unknown-region"))
        account = environment.removeprefix("aws://").split("/", 1)[0]
        template_file = artifact.get("properties", {}).get("templateFile")
        if template_file:
            accounts[str((outdir / template_file).resolve())] = account
    return accounts


def _load(
    path: str, account: str, locators: dict[Path, NestedTemplates], seen: set[Path]
) -> Iterator[_Template]:
    """The template at ``path`` and, after it, every nested template under it (same account);
    none twice (``seen``: resolved paths already loaded)."""
    file = Path(path)
    if file.resolve() in seen:
        return
    seen.add(file.resolve())
    raw = file.read_bytes()
    body = json.loads(raw)
    locator = locators.setdefault(file.resolve().parent, NestedTemplates(file.resolve().parent))
    nested = list(locator.of(body))
    missing = tuple(logical_id for logical_id, _resource, nested_file in nested if nested_file is None)
    yield _Template(path=path, account=account, body=body, size=len(raw), missing_nested=missing)
    for _logical_id, _resource, nested_file in nested:
        if nested_file is not None:
            # Same directory as the parent, so the same absolute/relative form as ``path``.
            yield from _load(str(file.parent / nested_file.name), account, locators, seen)


def load_templates(paths: list[str]) -> list[_Template]:
    """The templates at ``paths`` (top-level stacks) and the nested templates they deploy, each
    once: a nested template listed in ``paths`` too is loaded through its parent (whose account it
    deploys to), so top-level paths go first."""
    manifests: dict[Path, dict[str, str]] = {}
    locators: dict[Path, NestedTemplates] = {}
    seen: set[Path] = set()
    templates: list[_Template] = []
    for path in sorted(paths, key=lambda p: p.endswith(".nested.template.json")):
        file = Path(path).resolve()
        accounts = manifests.setdefault(file.parent, _accounts_by_template(file.parent))
        templates.extend(_load(path, accounts.get(str(file), "unknown-account"), locators, seen))
    return templates


def check(paths: list[str], limits: Limits) -> list[Finding]:
    templates = load_templates(paths)
    found = [finding for template in templates for finding in check_template(template, limits)]
    return found + check_roles_per_account(templates, limits)


# ----------------------------------------------------------------------------- the plugin


@jsii.implements(IPolicyValidationPlugin)
class LimitsChecks:
    """CDK policy-validation plugin: one violation per limit broken, naming resource, figure, limit."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def version(self) -> str:
        return "1.0.0"

    @property
    def rule_ids(self) -> list[str]:
        return [rule.name for rule in RULES]

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        findings = check(list(context.template_paths), self.limits)
        return PolicyValidationPluginReport(
            success=not findings,
            violations=[
                PolicyViolation(
                    rule_name=f"{finding.rule.name}[{finding.resource}]",
                    description=finding.description,
                    fix=finding.rule.fix,
                    severity="error",
                    violating_resources=[
                        PolicyViolatingResource(
                            resource_logical_id=finding.resource,
                            template_path=finding.template_path,
                            locations=[finding.location],
                        )
                    ],
                )
                for finding in findings
            ],
            plugin_version=self.version,
        )


def register_limits(app: App, limits: Limits | None = None) -> LimitsChecks:
    """Run the limits check over every stack of ``app`` at synth (beside the cdk-nag packs)."""
    plugin = LimitsChecks(limits)
    Validations.of(app).add_plugins(plugin)
    return plugin
