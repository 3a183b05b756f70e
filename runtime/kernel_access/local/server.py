"""``LocalKernel``: the whole kernel account of a template, running on this machine.

Start-up order matters and mirrors a deployment: template → local AWS (moto) → resources →
API sockets (so ``ApiEndpoint`` attributes have values) → function environments (resource names
resolved to the local ones, credentials of each function's execution role) → partner sessions.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from kernel_access import settings
from kernel_access.client.config import ENV_VENDING_API_URL
from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE, VENDING_HANDLER
from kernel_access.local.backend import LocalAws, PartnerIdentity, SessionCredentials
from kernel_access.local.codeartifact import LocalCodeArtifact
from kernel_access.local.enforcement import (
    LAMBDA_SERVICE,
    accounts_from_config,
    load_declarations,
    model_from_template,
)
from kernel_access.local.examples import (
    ExampleDecision,
    example_decisions,
    exchange_target,
    first,
    policy_from_value,
    summary,
)
from kernel_access.local.functions import (
    DEFAULT_CONCURRENCY,
    FunctionRunner,
    LocalFunction,
    functions_from_template,
    lambda_environment,
    resolve_environment,
)
from kernel_access.local.gateway import Gateway, LocalApi, apis_from_template
from kernel_access.local.iam import IamModel
from kernel_access.local.jwt_issuer import LocalIssuer, find_issuer
from kernel_access.local.template import Resolver, StackTemplate, load_kernel_template
from kernel_access.policy.identity import KernelIdentity

#: Session-name suffix of the example partner sessions (``<account>.local``).
EXAMPLE_SESSION_SUFFIX: Final = "local"
STATE_FILE_NAME: Final = "state.json"


@dataclass
class LocalOptions:
    """What ``kernel-access local`` was asked to run."""

    project_dir: Path = field(default_factory=Path.cwd)
    template: Path | None = None
    cdk_out: Path | None = None
    stack: str | None = None
    synth: bool = True
    #: Port of the vending API (0 = any free port); other APIs take the following ports.
    port: int = 0
    #: Extra environment for every function (e.g. a higher rate limit for a load test).
    function_environment: Mapping[str, str] = field(default_factory=dict)
    #: Where env files and the state file go (default: a fresh private temporary directory).
    state_dir: Path | None = None
    #: Gateway access log sink (one JSON line per request); None = quiet.
    access_log: Callable[[str], None] | None = None
    #: Execution environments (worker processes) per function: concurrent invocations of one function.
    concurrency: int = DEFAULT_CONCURRENCY
    #: Progress notes during start-up (e.g. "synthesising ..."); None = quiet.
    progress: Callable[[str], None] | None = None
    #: Evaluate IAM (trust policies on AssumeRole, execute-api:Invoke on IAM routes); False = --no-iam.
    iam: bool = True
    #: Identity policies of roles outside the template: (role ARN, JSON file) pairs (--workload-policy).
    workload_policies: tuple[tuple[str, Path], ...] = ()
    #: Accounts of the kernel's organization that are no partner (yet), e.g. an account that has just
    #: joined an admitted OU (--organization-account): local IAM treats them as members.
    organization_accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartnerSession:
    identity: PartnerIdentity
    credentials: SessionCredentials
    env_file: Path


class LocalKernel:
    """Runs a kernel stack template locally; ``start()`` then ``stop()`` (or use as a context manager)."""

    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.template: StackTemplate | None = None
        self.resolver: Resolver | None = None
        self.aws: LocalAws | None = None
        self.iam: IamModel | None = None
        self.gateway: Gateway | None = None
        self.codeartifact: LocalCodeArtifact | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.issuers: list[LocalIssuer] = []
        self.partners: list[PartnerSession] = []
        #: Partners of the template whose example session local IAM refused (with STS's message).
        self.refused_partners: list[str] = []
        self.examples: list[ExampleDecision] = []
        self.operator_env_file: Path | None = None
        self.state_dir = options.state_dir or Path(tempfile.mkdtemp(prefix="kernel-access-local-"))
        # A temporary state directory holds session credentials of this run only: removed on stop.
        self._owns_state_dir = options.state_dir is None
        self.startup_seconds = 0.0
        self.timings: dict[str, float] = {}

    # ---- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> LocalKernel:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.perf_counter()
        mark = started
        host_environment = dict(os.environ)

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            self.timings[name] = now - mark
            mark = now

        o = self.options
        template = load_kernel_template(
            o.project_dir,
            template=o.template,
            cdk_out=o.cdk_out,
            stack=o.stack,
            synth=o.synth,
            progress=o.progress,
        )
        self.template = template
        resolver = self.resolver = Resolver(template)
        lap("template")

        iam = self.iam = self._iam_model(template, resolver)
        aws = self.aws = LocalAws(template, resolver, iam=iam, log=o.access_log)
        aws.start()
        aws.provision()
        domains = {
            resolver.physical_name(logical_id): template.account
            for logical_id in template.of_type("AWS::CodeArtifact::Domain")
        }
        service_endpoints: dict[str, str] = {}
        if domains:
            self.codeartifact = LocalCodeArtifact(
                domains, region=template.region, lookup_key=aws.lookup_access_key
            )
            service_endpoints["codeartifact"] = self.codeartifact.start()
        lap("provision")

        self.functions = functions_from_template(resolver)
        apis = apis_from_template(resolver, self.functions, self._issuer)
        apis.sort(key=lambda api: not _serves_vending(api))
        runner = FunctionRunner(concurrency=o.concurrency)
        self.gateway = Gateway(
            apis,
            account_id=template.account,
            region=template.region,
            lookup_key=aws.lookup_access_key,
            principal_org_id=aws.organization_id(),
            runner=runner,
            log=o.access_log,
            iam=iam,
            partition=template.partition,
        )
        ports = {api.logical_id: (o.port + index if o.port else 0) for index, api in enumerate(apis)}
        self.gateway.start(ports)
        resolver.api_endpoints.update({api.logical_id: api.url for api in apis})
        lap("gateway")

        for function in self.functions.values():
            function.template_environment = resolve_environment(resolver, function)
            credentials: dict[str, str] = {}
            if function.role_arn:
                session = aws.assume(
                    function.role_arn, function.name[:64], duration=43200, service=LAMBDA_SERVICE
                )
                credentials = session.environment()
            function.environment = lambda_environment(
                function,
                region=template.region,
                endpoint_url=aws.endpoint_url,
                credentials=credentials,
                base=host_environment,
                overrides=o.function_environment,
                service_endpoints=service_endpoints,
            )
        lap("functions")

        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._start_partners(aws)
        self.operator_env_file = self._write_operator_env_file(aws.admin_credentials())
        self.examples = self._example_decisions()
        lap("partners")
        self.startup_seconds = time.perf_counter() - started
        # Written last and atomically: scripts wait for this file to know the emulator is ready.
        partial = self.state_dir / f".{STATE_FILE_NAME}.tmp"
        self._write_private(partial, json.dumps(self.state(), indent=2, default=str))
        os.replace(partial, self.state_dir / STATE_FILE_NAME)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self.codeartifact is not None:
            self.codeartifact.stop()
            self.codeartifact = None
        if self.aws is not None:
            self.aws.stop()
            self.aws = None
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # ---- helpers -----------------------------------------------------------------------------------

    def _start_partners(self, aws: LocalAws) -> None:
        """An example session of each partner the trust policies name, and its env file."""
        for identity in aws.partner_identities():
            try:
                creds = aws.partner_session(identity, EXAMPLE_SESSION_SUFFIX, duration=43200)
            except ClientError as error:
                # Local IAM refused the template's own partner (e.g. a trust condition no local account
                # meets): start anyway and say so, rather than fail the whole emulator.
                message = error.response.get("Error", {}).get("Message", str(error))
                self.refused_partners.append(f"{identity.partner} ({identity.account_id}): {message}")
                continue
            self.partners.append(PartnerSession(identity, creds, self._write_env_file(identity, creds)))

    def _iam_model(self, template: StackTemplate, resolver: Resolver) -> IamModel | None:
        """What local IAM evaluates: the template's roles, declared workload policies, organization."""
        if not self.options.iam:
            return None
        organizations = accounts_from_config(self.options.project_dir, template, resolver)
        if self.options.organization_accounts:
            organization = organizations.get(template.account)
            if organization is None:
                raise ValueError(
                    "--organization-account: the kernel's organization is unknown (no organization_id "
                    "in the configuration, no aws:PrincipalOrgID in the template)"
                )
            organizations.update(dict.fromkeys(self.options.organization_accounts, organization))
        model = model_from_template(template, resolver, organizations=organizations)
        load_declarations(model, self.options.workload_policies)
        return model

    def _example_decisions(self) -> list[ExampleDecision]:
        """The template's policy evaluated for every example session and target role (see examples)."""
        vending = self.vending_function()
        if vending is None or self.resolver is None or self.template is None or self.aws is None:
            return []
        env = vending.template_environment
        policy = policy_from_value(self._config_document(env, settings.POLICY_OBJECT_KEY))
        if policy is None:
            return []
        return example_decisions(
            policy,
            [(p.identity.partner, p.credentials.arn) for p in self.partners],
            self.target_roles(),
            kernel=KernelIdentity(
                account_id=env.get(settings.KERNEL_ACCOUNT_ID),
                partition=env.get(settings.PARTITION),
                in_org_role=env.get(settings.IN_ORG_ROLE_NAME, KERNEL_ACCESS_ROLE),
                external_role=env.get(settings.EXTERNAL_ROLE_NAME, KERNEL_ACCESS_EXTERNAL_ROLE),
            ),
        )

    def _config_document(self, env: Mapping[str, str], key_variable: str) -> str | None:
        """The configuration document a function reads (its config bucket and the object key in
        ``key_variable``), as deployed in the local S3 now; None when there is none."""
        bucket, key = env.get(settings.CONFIG_BUCKET), env.get(key_variable)
        if self.aws is None or not bucket or not key:
            return None
        try:
            body: bytes = self.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            return None
        return body.decode("utf-8", errors="replace")

    def target_roles(self) -> dict[str, str]:
        """Target role name -> ARN, as the vending function's environment lists them."""
        try:
            roles = json.loads(self._target_roles_json())
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in roles.items()} if isinstance(roles, dict) else {}

    def _issuer(self, name: str, issuer: str, audiences: tuple[str, ...], source: str) -> LocalIssuer:
        local = LocalIssuer(name=name, issuer=issuer, audiences=audiences, identity_source=source)
        self.issuers.append(local)
        return local

    @staticmethod
    def _write_private(path: Path, text: str) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)

    def _session_environment(self, creds: SessionCredentials) -> dict[str, str]:
        """A shell of ``creds`` in the template's region whose SDK calls reach the local AWS."""
        assert self.template is not None
        assert self.aws is not None
        return {
            **creds.environment(),
            "AWS_REGION": self.template.region,
            "AWS_DEFAULT_REGION": self.template.region,
            # So the programs run under `kernel-access exec` reach the local STS/DynamoDB/... too.
            "AWS_ENDPOINT_URL": self.aws.endpoint_url,
        }

    def _write_env_file(self, identity: PartnerIdentity, creds: SessionCredentials) -> Path:
        lines = self._session_environment(creds)
        # What `kernel-access exec/serve/credential-process` read when --api is not given.
        lines[ENV_VENDING_API_URL] = self.vending_url
        path = self.state_dir / f"{identity.partner}.env"
        self._write_private(path, "".join(f"export {k}={v}\n" for k, v in lines.items()))
        return path

    def _write_operator_env_file(self, creds: SessionCredentials) -> Path:
        """A kernel-account operator's shell: admin session, local endpoint, the functions' table names.

        So ``kernel-access revoke``/``unrevoke``/``exchange list`` (which default their table names to
        the ``KERNEL_ACCESS_*_TABLE`` variables) work against the local tables as pasted.
        """
        lines = self._session_environment(creds)
        for function in self.functions.values():
            for name, value in sorted(function.template_environment.items()):
                if name.startswith("KERNEL_ACCESS_") and name.endswith(
                    ("_TABLE", "_PARAMETER", "_BUCKET", "_KEY")
                ):
                    lines.setdefault(name, value)
        path = self.state_dir / "operator.env"
        self._write_private(path, "".join(f"export {k}={v}\n" for k, v in lines.items()))
        return path

    # ---- what the run looks like -------------------------------------------------------------------

    @property
    def apis(self) -> list[LocalApi]:
        return self.gateway.apis if self.gateway else []

    @property
    def vending_url(self) -> str:
        return self.apis[0].url if self.apis else ""

    def vending_function(self) -> LocalFunction | None:
        return next((f for f in self.functions.values() if f.handler == VENDING_HANDLER), None)

    def audit_table(self) -> str | None:
        vending = self.vending_function()
        return vending.template_environment.get(settings.AUDIT_TABLE_NAME) if vending else None

    def state(self) -> dict[str, Any]:
        """Everything a script or test needs to use this run (written to ``state.json``, mode 0600)."""
        assert self.template is not None
        assert self.aws is not None
        return {
            "stack": self.template.stack_name,
            "template": str(self.template.path),
            "account_id": self.template.account,
            "region": self.template.region,
            "moto_endpoint": self.aws.endpoint_url,
            "codeartifact_endpoint": self.codeartifact.url if self.codeartifact else None,
            "codeartifact_domains": sorted(self.codeartifact.domains) if self.codeartifact else [],
            "vending_url": self.vending_url,
            "apis": [
                {"name": api.name, "logical_id": api.logical_id, "url": api.url, "routes": _route_list(api)}
                for api in self.apis
            ],
            "tables": self.aws.report.tables,
            "parameters": self.aws.report.parameters,
            "buckets": self.aws.report.buckets,
            "objects": self.aws.report.objects,
            "roles": self.aws.report.roles,
            "skipped": self.aws.report.skipped,
            "audit_table": self.audit_table(),
            "target_roles": self.target_roles(),
            "functions": {
                f.logical_id: {"name": f.name, "handler": f.handler, "environment": f.template_environment}
                for f in self.functions.values()
            },
            "partners": [
                {
                    "partner": p.identity.partner,
                    "account_id": p.identity.account_id,
                    "role_arn": p.identity.role_arn,
                    "session_prefix": p.identity.session_prefix,
                    "external_id": p.identity.external_id,
                    "session_arn": p.credentials.arn,
                    "env_file": str(p.env_file),
                    "credentials": p.credentials.environment(),
                }
                for p in self.partners
            ],
            "issuers": [
                {
                    "name": i.name,
                    "issuer": i.issuer,
                    "audiences": list(i.audiences),
                    "key_id": i.key_id,
                    "jwks": i.jwks(),
                    "private_key_pem": i.private_key_pem(),
                }
                for i in self.issuers
            ],
            "operator_env_file": str(self.operator_env_file) if self.operator_env_file else None,
            "examples": summary(self.examples),
            "iam": self.iam is not None,
            "refused_partners": self.refused_partners,
            "organizations": dict(self.iam.organizations) if self.iam is not None else {},
            "startup_seconds": round(self.startup_seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def banner(self) -> str:
        """What ``kernel-access local`` prints: where things are and what to paste."""
        assert self.template is not None
        assert self.aws is not None
        lines = [
            f"kernel-access local: stack {self.template.stack_name} "
            f"(account {self.template.account}, {self.template.region})",
            f"  template      {self.template.path}",
        ]
        for api in self.apis:
            # Logical ids, not names: CDK names every HttpApi after its construct id ("Resource").
            label = api.logical_id if api.name == api.logical_id else f"{api.logical_id} ({api.name})"
            lines.append(f"  API {label}: {api.url}")
            lines.extend(f"      {key:<28} {auth}" for key, auth in _route_list(api))
        lines.append(f"  local AWS     {self.aws.endpoint_url}  (moto: STS, IAM, DynamoDB, SSM, S3)")
        lines.append(f"  IAM           {self._iam_line()}")
        if self.codeartifact is not None:
            lines.append(
                f"  CodeArtifact  {self.codeartifact.url}  (GetAuthorizationToken only; domains "
                f"{', '.join(sorted(self.codeartifact.domains))}; no package repository)"
            )
        lines.append(
            f"  created       {len(self.aws.report.tables)} tables, {len(self.aws.report.parameters)} "
            f"parameters, {len(self.aws.report.roles)} roles"
        )
        lines.extend(f"  deployed      {url}" for url in self.aws.report.objects)
        lines.extend(f"  skipped       {note}" for note in self.aws.report.skipped)
        if self.partners:
            lines.append("")
            lines.append(
                "Partner identities (sessions of the kernel roles, named as the trust policies require):"
            )
            for p in self.partners:
                external = f", external id {p.identity.external_id}" if p.identity.external_id else ""
                lines.append(f"  {p.identity.partner:<16} {p.credentials.arn}{external}")
                lines.append(f"  {'':<16} credentials: source {p.env_file}")
        if self.refused_partners:
            lines.append("")
            lines.append("Partner identities refused by local IAM (no session, no env file):")
            lines.extend(f"  {line}" for line in self.refused_partners)
        lines.extend(self._try_lines())
        if self.issuers:
            lines += [
                "",
                "JWT routes (tokens checked against a local key per issuer; --issuer NAME prints one):",
            ]
        for issuer in self.issuers:
            audiences = ", ".join(issuer.audiences) or "any"
            lines.append(f"  issuer {issuer.name}: {issuer.issuer} (audiences {audiences})")
            lines.extend(f"      {url}" for url in self.jwt_route_urls(issuer))
        lines += ["", f"Started in {self.startup_seconds:.1f} s. Ctrl-C stops."]
        return "\n".join(lines)

    def _iam_line(self) -> str:
        if self.iam is None:
            return "NOT enforced (--no-iam): any caller assumes any role and calls any IAM route"
        orgs = sorted(set(self.iam.organizations.values()))
        accounts = ", ".join(sorted(self.iam.organizations))
        where = f"; organization {', '.join(orgs)}: accounts {accounts}" if orgs else ""
        return (
            "enforced: trust and identity policies on AssumeRole, execute-api:Invoke on IAM routes "
            f"(--no-iam turns it off){where}"
        )

    def jwt_route_urls(self, issuer: LocalIssuer) -> list[str]:
        """``METHOD URL`` of every route whose JWT authorizer trusts ``issuer``."""
        return [
            f"{route.method} {api.url}{route.path}"
            for api in self.apis
            for route in api.routes
            if route.issuer is issuer
        ]

    def token_lines(self, issuer: LocalIssuer, token: str, subject: str) -> list[str]:
        """A minted test token as a paste-ready ``export`` and a curl of each route of its issuer."""
        lines = [
            f"Test token of issuer {issuer.name} ({issuer.issuer}, sub={subject}, valid 10 minutes):",
            f"export TOKEN={token}",
        ]
        target = None
        for function in self.functions.values():
            config = self._config_document(function.template_environment, settings.EXCHANGE_CONFIG_OBJECT_KEY)
            target = target or exchange_target(config, issuer=issuer.issuer, subject=subject)
        body = json.dumps({"target": target or "TARGET"})
        for route in self.jwt_route_urls(issuer):
            method, url = route.split(" ", 1)
            lines.append(
                f'  curl -sS -X {method} {url} -H "Authorization: Bearer $TOKEN" '
                f"-H 'Content-Type: application/json' -d '{body}'"
            )
        return lines

    def _try_lines(self) -> list[str]:
        """Ready-to-paste commands, with a role the policy allows (and one it denies) right now."""
        if not self.partners:
            return []
        allowed = first(self.examples, allowed=True)
        denied = first(self.examples, allowed=False)
        by_partner = {p.identity.partner: p for p in self.partners}
        session = by_partner.get(allowed.partner) if allowed else None
        session = session or self.partners[0]
        role = allowed.role if allowed else (sorted(self.target_roles()) or ["ROLE"])[0]
        child = "import boto3; print(boto3.client('sts').get_caller_identity()['Arn'])"
        lines = [
            "",
            f"Try (in another shell; the policy allows {session.identity.partner} -> {role} now):",
            f"  source {session.env_file}",
            f'  kernel-access exec --api {self.vending_url} --role {role} -- python -c "{child}"',
            f"  kernel-access credential-process --api {self.vending_url} --role {role}",
        ]
        denied_session = by_partner.get(denied.partner) if denied else None
        if denied is not None and denied_session is not None:
            because = f"rule {denied.rule_id}" if denied.rule_id else denied.reason
            lines += [
                f"Denied ({denied.partner} -> {denied.role}, {because}):",
                f"  source {denied_session.env_file}",
                f"  kernel-access credential-process --api {self.vending_url} --role {denied.role}",
            ]
        if self.operator_env_file is not None and session is not None:
            lines += [
                "Operator (a kernel-account session and the table names; revoke, then retry the above):",
                f"  source {self.operator_env_file}",
                f'  kernel-access revoke --partner {session.identity.partner} --reason "local test"',
            ]
        return lines

    def _target_roles_json(self) -> str:
        vending = self.vending_function()
        return vending.template_environment.get(settings.TARGET_ROLES, "{}") if vending else "{}"

    def issuer(self, name: str) -> LocalIssuer:
        return find_issuer(self.issuers, name)


def _serves_vending(api: LocalApi) -> bool:
    return any(
        r.integration is not None
        and r.integration.function is not None
        and r.integration.function.handler == VENDING_HANDLER
        for r in api.routes
    )


def _route_list(api: LocalApi) -> list[tuple[str, str]]:
    return [(r.route_key, r.authorization) for r in api.routes]


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
