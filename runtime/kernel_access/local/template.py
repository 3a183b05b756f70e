"""Read the synthesised kernel stack and give every resource a local name.

The emulator runs *the template itself*, not a second description of the stack: tables, parameters,
roles, functions and routes all come from ``cdk.out/``. CloudFormation would pick physical names and
resolve intrinsic functions at deploy time; this module does the same for a local run, deterministically,
so the names printed by ``kernel-access local`` are stable between runs.

Only the intrinsics a CDK-synthesised stack of this project uses are supported (Ref, Fn::GetAtt,
Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::If with simple conditions, Fn::GetAZs). Anything else raises
:class:`UnresolvableError` naming the path, rather than silently producing a wrong value.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kernel_access.contract import CONFIG_CONTEXT_KEY, EXAMPLE_SERVICE_FLAG
from kernel_access.local.nested_stacks import NestedStackError, merge_nested_stacks

DEFAULT_ACCOUNT: Final = "123456789012"
DEFAULT_REGION: Final = "us-east-1"
_ENV_RE: Final = re.compile(r"^aws://(?P<account>[^/]+)/(?P<region>.+)$")
_SUB_RE: Final = re.compile(r"\$\{(?!!)([^}]+)\}")

#: Files whose change makes a synthesised template stale: the app, its config, the constructs, and
#: the runtime modules the constructs read at synth time (contract, env names, validators, the policy
#: parser). Handler code is not among them: the emulator imports handlers from the installed package,
#: so editing a handler never needs a new synth (only the asset hash would differ).
_SOURCE_GLOBS: Final = (
    "app.py",
    "cdk.json",
    "infra/**/*.py",
    "runtime/kernel_access/contract.py",
    "runtime/kernel_access/settings.py",
    "runtime/kernel_access/validation.py",
    "runtime/kernel_access/policy/**/*.py",
    "runtime/kernel_access/exchange/**/*.py",
)


#: The assembly ``kernel-access local`` synthesises and runs by default (under the project
#: directory). Not ``cdk.out``: the emulator synthesises with the example service on, ``make synth``
#: (what gets deployed) with it as configured, and neither should overwrite the other.
LOCAL_CDK_OUT: Final = "cdk.local.out"


class TemplateError(RuntimeError):
    """The template could not be found, synthesised or understood."""


class UnresolvableError(TemplateError):
    """An intrinsic function the local emulator cannot evaluate."""


@dataclass(frozen=True)
class StackTemplate:
    """One CloudFormation stack as synthesised, with the environment it targets."""

    stack_name: str
    account: str
    region: str
    body: Mapping[str, Any]
    path: Path | None = None

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        resources: Mapping[str, Mapping[str, Any]] = self.body.get("Resources", {})
        return resources

    def of_type(self, *types: str) -> dict[str, Mapping[str, Any]]:
        """Resources of the given CloudFormation types, by logical id, in template order."""
        return {lid: res for lid, res in self.resources.items() if res.get("Type") in types}

    @property
    def partition(self) -> str:
        return "aws-cn" if self.region.startswith("cn-") else "aws"


# --------------------------------------------------------------------------------------------------
# Finding (and if needed synthesising) the template
# --------------------------------------------------------------------------------------------------


def _newest_source_mtime(project_dir: Path) -> float:
    newest = 0.0
    for pattern in _SOURCE_GLOBS:
        for path in project_dir.glob(pattern):
            if "__pycache__" in path.parts:
                continue
            newest = max(newest, path.stat().st_mtime)
    return newest


def is_stale(cdk_out: Path, project_dir: Path) -> bool:
    """True when ``cdk_out`` has no manifest or one older than any source of the app."""
    manifest = cdk_out / "manifest.json"
    if not manifest.is_file():
        return True
    return manifest.stat().st_mtime < _newest_source_mtime(project_dir)


def synthesize(project_dir: Path, cdk_out: Path, *, example_service: bool = True) -> None:
    """Synthesise the app in ``project_dir`` into ``cdk_out``.

    Runs the app command of ``cdk.json`` with ``CDK_OUTDIR`` and ``CDK_CONTEXT_JSON`` (the context of
    ``cdk.json`` and ``cdk.context.json``), which is what ``cdk synth`` does under the hood, with the
    configuration's ``example_service`` flag set (default): a local kernel has the example
    ``EchoService`` to call, whatever the deployed configuration says. Why not
    the CLI itself: it adds ~2.5 s of Node start-up and version/notice checks to every local start
    for the same template (checked: byte-identical ``KernelAccessKernel.template.json``), and this
    way no Node installation is needed to run a local kernel.
    """
    cdk_json = project_dir / "cdk.json"
    if not cdk_json.is_file():
        raise TemplateError(f"no cdk.json in {project_dir}: pass --template PATH to a synthesised template")
    config = json.loads(cdk_json.read_text())
    app = config.get("app")
    if not isinstance(app, str):
        raise TemplateError("cdk.json has no 'app' command")
    context: dict[str, Any] = {}
    saved = project_dir / "cdk.context.json"
    if saved.is_file():
        context.update(json.loads(saved.read_text()))
    context.update(config.get("context", {}))
    kernel_config = context.get(CONFIG_CONTEXT_KEY)
    if example_service and isinstance(kernel_config, dict):
        context[CONFIG_CONTEXT_KEY] = {**kernel_config, EXAMPLE_SERVICE_FLAG: True}
    env = dict(os.environ)
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
    env["CDK_OUTDIR"] = str(cdk_out)
    env["CDK_CONTEXT_JSON"] = json.dumps(context)
    cdk_out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(  # noqa: S603 - the project's own app command, as `cdk synth` runs it
        ["/bin/sh", "-c", app], cwd=project_dir, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise TemplateError(f"synth failed (exit {result.returncode}):\n{tail}")
    if not (cdk_out / "manifest.json").is_file():
        raise TemplateError(f"the app ran but wrote no {cdk_out}/manifest.json")


def _stack_artifacts(cdk_out: Path) -> dict[str, Mapping[str, Any]]:
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    artifacts: Mapping[str, Mapping[str, Any]] = manifest.get("artifacts", {})
    return {
        name: artifact
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack"
    }


def _template_from_artifact(cdk_out: Path, name: str, artifact: Mapping[str, Any]) -> StackTemplate:
    properties: Mapping[str, Any] = artifact.get("properties", {})
    path = cdk_out / str(properties.get("templateFile", f"{name}.template.json"))
    account, region = DEFAULT_ACCOUNT, DEFAULT_REGION
    match = _ENV_RE.match(str(artifact.get("environment", "")))
    if match:
        if match["account"].isdigit():
            account = match["account"]
        if not match["region"].startswith("unknown"):
            region = match["region"]
    stack_name = str(properties.get("stackName", name))
    return StackTemplate(stack_name, account, region, _read_with_nested_stacks(path), path)


def _route_count(template: StackTemplate) -> int:
    return len(template.of_type("AWS::ApiGatewayV2::Route"))


def select_kernel_stack(cdk_out: Path, stack: str | None = None) -> StackTemplate:
    """The kernel stack of an assembly: the named one, else the one that serves the vending API.

    The kernel stack is the one whose Lambda functions include the vending handler; failing that, the
    one with the most HTTP API routes (partner stacks have none).
    """
    artifacts = _stack_artifacts(cdk_out)
    if not artifacts:
        raise TemplateError(f"{cdk_out}/manifest.json lists no CloudFormation stack")
    if stack is not None:
        for name, artifact in artifacts.items():
            template = _template_from_artifact(cdk_out, name, artifact)
            if stack in (name, template.stack_name):
                return template
        raise TemplateError(f"stack {stack!r} not in {cdk_out} (have: {', '.join(sorted(artifacts))})")
    templates = [_template_from_artifact(cdk_out, n, a) for n, a in artifacts.items()]
    from kernel_access.contract import VENDING_HANDLER

    vending = [
        t
        for t in templates
        if any(
            f.get("Properties", {}).get("Handler") == VENDING_HANDLER
            for f in t.of_type("AWS::Lambda::Function").values()
        )
    ]
    candidates = vending or sorted(templates, key=_route_count, reverse=True)
    if not candidates or _route_count(candidates[0]) == 0:
        raise TemplateError(f"no stack in {cdk_out} declares HTTP API routes")
    return candidates[0]


def load_template_file(path: Path, *, account: str | None = None, region: str | None = None) -> StackTemplate:
    """A template given by path (``--template``); its environment comes from a neighbouring manifest."""
    if path.is_dir():
        return select_kernel_stack(path)
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        for name, artifact in _stack_artifacts(path.parent).items():
            template = _template_from_artifact(path.parent, name, artifact)
            if template.path is not None and template.path.resolve() == path.resolve():
                return template
    return StackTemplate(
        path.name.removesuffix(".template.json").removesuffix(".json"),
        account or DEFAULT_ACCOUNT,
        region or DEFAULT_REGION,
        _read_with_nested_stacks(path),
        path,
    )


def load_kernel_template(
    project_dir: Path,
    *,
    template: Path | None = None,
    cdk_out: Path | None = None,
    stack: str | None = None,
    synth: bool = True,
    progress: Callable[[str], None] | None = None,
) -> StackTemplate:
    """Find the kernel stack's template, synthesising it first when it is missing or stale."""
    if template is not None:
        return load_template_file(template)
    out = cdk_out or project_dir / LOCAL_CDK_OUT
    if synth and is_stale(out, project_dir):
        if progress is not None:
            why = "missing" if not (out / "manifest.json").is_file() else "older than the app's sources"
            progress(f"{out} is {why}: synthesising the app of cdk.json (about 10 s) ...")
        synthesize(project_dir, out)
    if not (out / "manifest.json").is_file():
        raise TemplateError(
            f"{out}/manifest.json not found: let `kernel-access local` synthesise it or pass --template PATH"
        )
    return select_kernel_stack(out, stack)


# --------------------------------------------------------------------------------------------------
# Nested stacks: merged into their parent (kernel_access.local.nested_stacks)
# --------------------------------------------------------------------------------------------------


def _read_with_nested_stacks(path: Path) -> dict[str, Any]:
    """The template at ``path`` with its nested stacks' resources in it (external partners' roles
    live in nested stacks): the emulator creates and enforces them like the parent's own."""
    try:
        return merge_nested_stacks(json.loads(path.read_text()), path.parent)
    except NestedStackError as error:
        raise TemplateError(f"{path.name}: {error}") from error


# --------------------------------------------------------------------------------------------------
# Local physical names and intrinsic functions
# --------------------------------------------------------------------------------------------------

#: Property that carries a user-chosen physical name, per resource type.
_NAME_PROPERTY: Final[Mapping[str, str]] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::SSM::Parameter": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CodeArtifact::Domain": "DomainName",
    "AWS::CodeArtifact::Repository": "RepositoryName",
    "AWS::ApiGatewayV2::Api": "Name",
}

#: Maximum physical-name length per type (CloudFormation truncates generated names likewise).
_NAME_LIMIT: Final[Mapping[str, int]] = {
    "AWS::IAM::Role": 64,
    "AWS::Lambda::Function": 64,
    "AWS::IAM::ManagedPolicy": 128,
}


@dataclass
class Resolver:
    """Evaluates intrinsic functions of one template against local names.

    ``api_endpoints`` maps an ``AWS::ApiGatewayV2::Api`` logical id to its local base URL; the gateway
    fills it in once its sockets are bound so ``ApiEndpoint`` attributes resolve to something callable.
    """

    template: StackTemplate
    api_endpoints: dict[str, str] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict, init=False)
    _resolving: set[str] = field(default_factory=set, init=False)

    # ---- names -------------------------------------------------------------------------------

    def generated_name(self, logical_id: str, resource_type: str) -> str:
        limit = _NAME_LIMIT.get(resource_type, 255)
        if resource_type == "AWS::SSM::Parameter":
            return f"/{self.template.stack_name}/{logical_id}"
        if resource_type == "AWS::S3::Bucket":  # S3 bucket names are lower case, at most 63 characters
            return f"{self.template.stack_name}-{logical_id}".lower()[:63].rstrip("-.")
        return f"{self.template.stack_name}-{logical_id}"[:limit]

    def physical_name(self, logical_id: str) -> str:
        """The local physical name (what ``Ref`` returns for named resources)."""
        if logical_id in self._names:
            return self._names[logical_id]
        resource = self.template.resources.get(logical_id)
        if resource is None:
            raise UnresolvableError(f"Ref to unknown resource {logical_id!r}")
        resource_type = str(resource.get("Type"))
        prop = _NAME_PROPERTY.get(resource_type)
        declared = resource.get("Properties", {}).get(prop) if prop else None
        if logical_id in self._resolving:
            raise UnresolvableError(f"circular reference through {logical_id}")
        if declared is not None:
            self._resolving.add(logical_id)
            try:
                name = str(self.resolve(declared, path=f"{logical_id}.{prop}"))
            finally:
                self._resolving.discard(logical_id)
        else:
            name = self.generated_name(logical_id, resource_type)
        self._names[logical_id] = name
        return name

    def arn(self, logical_id: str) -> str:  # noqa: PLR0911, PLR0912 - one ARN format per service
        """The local ARN of a resource, in the format its service uses."""
        resource_type = str(self.template.resources[logical_id].get("Type"))
        t, name = self.template, self.physical_name(logical_id)
        p, r, a = t.partition, t.region, t.account
        match resource_type:
            case "AWS::IAM::Role":
                return f"arn:{p}:iam::{a}:role/{name}"
            case "AWS::IAM::ManagedPolicy":
                return f"arn:{p}:iam::{a}:policy/{name}"
            case "AWS::DynamoDB::Table" | "AWS::DynamoDB::GlobalTable":
                return f"arn:{p}:dynamodb:{r}:{a}:table/{name}"
            case "AWS::SSM::Parameter":
                return f"arn:{p}:ssm:{r}:{a}:parameter/{name.lstrip('/')}"
            case "AWS::Lambda::Function":
                return f"arn:{p}:lambda:{r}:{a}:function:{name}"
            case "AWS::Logs::LogGroup":
                return f"arn:{p}:logs:{r}:{a}:log-group:{name}:*"
            case "AWS::KMS::Key":
                return f"arn:{p}:kms:{r}:{a}:key/{name}"
            case "AWS::CodeArtifact::Domain":
                return f"arn:{p}:codeartifact:{r}:{a}:domain/{name}"
            case "AWS::CodeArtifact::Repository":
                props = self.template.resources[logical_id].get("Properties", {})
                domain = self.resolve(props.get("DomainName", "domain"), path=f"{logical_id}.DomainName")
                return f"arn:{p}:codeartifact:{r}:{a}:repository/{domain}/{name}"
            case "AWS::ApiGatewayV2::Api":
                return f"arn:{p}:apigateway:{r}::/apis/{self.api_id(logical_id)}"
            case "AWS::S3::Bucket":
                return f"arn:{p}:s3:::{name}"
            case "AWS::SQS::Queue":
                return f"arn:{p}:sqs:{r}:{a}:{name}"
            case _:
                service = resource_type.split("::")[1].lower() if "::" in resource_type else "local"
                return f"arn:{p}:{service}:{r}:{a}:{logical_id.lower()}/{name}"

    def api_id(self, logical_id: str) -> str:
        """A stable 10-character API id (HTTP API ids are 10 lower-case alphanumerics)."""
        digits = "".join(ch for ch in logical_id.lower() if ch.isalnum())
        return (digits + "0000000000")[:10]

    def ref(self, logical_id: str) -> Any:
        t = self.template
        pseudo: dict[str, Any] = {
            "AWS::AccountId": t.account,
            "AWS::Region": t.region,
            "AWS::Partition": t.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if t.partition == "aws-cn" else "amazonaws.com",
            "AWS::StackName": t.stack_name,
            "AWS::StackId": (
                f"arn:{t.partition}:cloudformation:{t.region}:{t.account}:stack/{t.stack_name}/local"
            ),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": None,
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        parameters: Mapping[str, Any] = t.body.get("Parameters", {})
        if logical_id in parameters:
            default = parameters[logical_id].get("Default")
            if default is None:
                raise UnresolvableError(f"template parameter {logical_id!r} has no default")
            return default
        resource = t.resources.get(logical_id)
        if resource is None:
            raise UnresolvableError(f"Ref to unknown {logical_id!r}")
        resource_type = resource.get("Type")
        if resource_type in ("AWS::IAM::ManagedPolicy",):
            return self.arn(logical_id)
        if resource_type == "AWS::ApiGatewayV2::Api":
            return self.api_id(logical_id)
        return self.physical_name(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> Any:  # noqa: PLR0911 - one exit per attribute
        resource = self.template.resources.get(logical_id)
        if resource is None:
            raise UnresolvableError(f"Fn::GetAtt of unknown resource {logical_id!r}")
        resource_type = resource.get("Type")
        if attribute == "Arn":
            return self.arn(logical_id)
        if resource_type == "AWS::IAM::Role" and attribute == "RoleId":
            return "AROA" + self.api_id(logical_id).upper()
        if resource_type == "AWS::ApiGatewayV2::Api" and attribute == "ApiEndpoint":
            return self.api_endpoints.get(logical_id, f"http://127.0.0.1/{self.api_id(logical_id)}")
        if resource_type == "AWS::ApiGatewayV2::Api" and attribute == "ApiId":
            return self.api_id(logical_id)
        if resource_type in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable") and attribute == (
            "StreamArn"
        ):
            return f"{self.arn(logical_id)}/stream/local"
        if resource_type == "AWS::KMS::Key" and attribute == "KeyId":
            return self.physical_name(logical_id)
        if attribute in ("Name", "Id"):
            return self.physical_name(logical_id)
        raise UnresolvableError(f"Fn::GetAtt {logical_id}.{attribute} is not emulated")

    # ---- conditions ----------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        conditions: Mapping[str, Any] = self.template.body.get("Conditions", {})
        if name not in conditions:
            raise UnresolvableError(f"unknown condition {name!r}")
        return self._truth(conditions[name], f"Conditions.{name}")

    def _truth(self, value: Any, path: str) -> bool:
        if isinstance(value, Mapping) and len(value) == 1:
            (fn, args), *_ = value.items()
            if fn == "Condition":
                return self.condition(str(args))
            if fn == "Fn::Equals":
                left, right = (self.resolve(a, path=path) for a in args)
                return bool(left == right)
            if fn == "Fn::Not":
                return not self._truth(args[0], path)
            if fn == "Fn::And":
                return all(self._truth(a, path) for a in args)
            if fn == "Fn::Or":
                return any(self._truth(a, path) for a in args)
        raise UnresolvableError(f"{path}: unsupported condition {value!r}")

    # ---- intrinsics ------------------------------------------------------------------------------

    def resolve(self, value: Any, *, path: str = "") -> Any:
        """Evaluate every intrinsic function inside ``value`` (recursively)."""
        if isinstance(value, list):
            items = [self.resolve(v, path=f"{path}[{i}]") for i, v in enumerate(value)]
            return [i for i in items if i is not _NO_VALUE]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            (key, args), *_ = value.items()
            if key == "Ref":
                result = self.ref(str(args))
                return _NO_VALUE if result is None else result
            if key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, args, path)
        resolved = {k: self.resolve(v, path=f"{path}.{k}") for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _intrinsic(self, fn: str, args: Any, path: str) -> Any:  # noqa: PLR0911 - one exit per function
        match fn:
            case "Fn::GetAtt":
                logical_id, attribute = args if isinstance(args, list) else str(args).split(".", 1)
                return self.get_att(str(logical_id), str(self.resolve(attribute, path=path)))
            case "Fn::Join":
                separator, items = args
                parts = self.resolve(items, path=path)
                return str(separator).join(_as_text(p) for p in parts)
            case "Fn::Sub":
                return self._sub(args, path)
            case "Fn::Select":
                index, items = args
                return self.resolve(items, path=path)[int(self.resolve(index, path=path))]
            case "Fn::Split":
                separator, text = args
                return str(self.resolve(text, path=path)).split(str(separator))
            case "Fn::If":
                name, when_true, when_false = args
                return self.resolve(when_true if self.condition(str(name)) else when_false, path=path)
            case "Fn::GetAZs":
                region = self.resolve(args, path=path) or self.template.region
                return [f"{region}a", f"{region}b", f"{region}c"]
            case "Fn::ToJsonString":
                return json.dumps(self.resolve(args, path=path), separators=(",", ":"))
            case "Fn::Base64":
                import base64

                return base64.b64encode(str(self.resolve(args, path=path)).encode()).decode()
        raise UnresolvableError(f"{path}: {fn} is not emulated locally")

    def _sub(self, args: Any, path: str) -> str:
        if isinstance(args, list):
            text, variables = str(args[0]), {k: self.resolve(v, path=path) for k, v in args[1].items()}
        else:
            text, variables = str(args), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _as_text(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return _as_text(self.get_att(logical_id, attribute))
            return _as_text(self.ref(name))

        return _SUB_RE.sub(replace, text).replace("${!", "${")

    def resource_properties(self, logical_id: str) -> dict[str, Any]:
        """A resource's properties with every intrinsic resolved."""
        props = self.template.resources[logical_id].get("Properties", {})
        resolved: dict[str, Any] = self.resolve(props, path=logical_id)
        return resolved

    def logical_ids_in(self, value: Any) -> Iterable[str]:
        """Logical ids referenced (by Ref or GetAtt) anywhere inside ``value``."""
        if isinstance(value, list):
            for item in value:
                yield from self.logical_ids_in(item)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if key == "Ref" and isinstance(item, str) and item in self.template.resources:
                    yield item
                elif key == "Fn::GetAtt":
                    target = item[0] if isinstance(item, list) else str(item).split(".", 1)[0]
                    if target in self.template.resources:
                        yield str(target)
                else:
                    yield from self.logical_ids_in(item)


class _NoValue:
    """Marker for ``Ref: AWS::NoValue`` (the property is removed)."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE: Final = _NoValue()


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise UnresolvableError(f"cannot use {type(value).__name__} {value!r} inside a string")
