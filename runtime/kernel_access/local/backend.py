"""The AWS side of a local run: a moto server on loopback, provisioned from the template.

moto's server runs in this process (``ThreadedMotoServer``), so its account state is plain Python
objects here: the gateway looks up the secret of a calling access key directly in moto's IAM/STS
backends to verify SigV4, exactly as API Gateway asks IAM. Everything else (creating tables,
parameters, buckets and their deployed objects, roles; minting partner sessions) goes through
boto3 against the server's endpoint, the same API a deployment would use.

moto evaluates no IAM policy. With local IAM on, the server runs with
:class:`~kernel_access.local.enforcement.StsGuard` in front of it, which decides every ``AssumeRole``
of a template role before moto issues the session (see :mod:`kernel_access.local.iam`).

moto is a dev-extra dependency: this module is imported only by ``kernel-access local`` and the
end-to-end tests, never by a Lambda handler.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from kernel_access.local.template import Resolver, StackTemplate
from kernel_access.validation import PRINCIPAL_ACCOUNT_PATTERN, session_name_prefix

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

    from kernel_access.local.enforcement import StsGuard
    from kernel_access.local.iam import Caller, IamModel

#: Fake credentials used only to reach moto before any moto-issued key exists.
_BOOTSTRAP_KEY: Final = "AKIALOCALBOOTSTRAP00"
_BOOTSTRAP_SECRET: Final = "local-bootstrap-secret-not-a-real-key"  # noqa: S105 - moto-only placeholder
_ADMIN_ROLE: Final = "kernel-access-local-admin"
_SESSION_PATTERN_RE: Final = re.compile(r"^(?P<partner>[A-Za-z0-9][A-Za-z0-9-]*)\.\*$")


class ProvisioningError(RuntimeError):
    """A resource of the template could not be created on the local backend."""


@dataclass(frozen=True)
class SessionCredentials:
    """Temporary credentials issued by the local STS."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    arn: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


@dataclass(frozen=True)
class CallerKey:
    """What IAM knows about an access key: enough to verify a signature and fill the authorizer context."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    account_id: str
    user_arn: str
    user_id: str
    expiration: datetime | None


@dataclass(frozen=True)
class PartnerIdentity:
    """A partner as the kernel stack's trust policies (and the partner map beside them) describe it."""

    partner: str
    account_id: str
    role_name: str
    role_arn: str
    external_id: str | None
    session_pattern: str

    @property
    def session_prefix(self) -> str:
        """What the trust policy requires a session name to start with: ``<account>.`` where the
        pattern binds it to ``${aws:PrincipalAccount}``, ``<partner>.`` in older templates."""
        if self.session_pattern == PRINCIPAL_ACCOUNT_PATTERN:
            return session_name_prefix(self.account_id)
        return f"{self.partner}."

    def session_name(self, suffix: str) -> str:
        return f"{self.session_prefix}{suffix}"


@dataclass
class ProvisionReport:
    """What was created locally, and what was skipped (with why)."""

    tables: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    #: s3:// URLs of the objects the template's bucket deployments put in place.
    objects: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _statements(document: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return
    statements = document.get("Statement", [])
    yield from statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _account_of(principal: str) -> str | None:
    if re.fullmatch(r"[0-9]{12}", principal):
        return principal
    match = re.match(r"^arn:aws[a-z-]*:iam::([0-9]{12}):", principal)
    return match.group(1) if match else None


class LocalAws:
    """A moto server on 127.0.0.1 holding the kernel account's tables, parameters and roles.

    ``iam``: when given, every ``AssumeRole`` of a template role is decided by it before moto answers
    (:class:`~kernel_access.local.enforcement.StsGuard`); None leaves moto's STS as it is (``--no-iam``).
    """

    def __init__(
        self,
        template: StackTemplate,
        resolver: Resolver,
        *,
        port: int = 0,
        iam: IamModel | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.template = template
        self.resolver = resolver
        self._port = port
        self.iam = iam
        self.guard: StsGuard | None = None
        self._log = log
        #: Access keys the emulator signs with on behalf of an AWS service (key id -> service principal).
        self._service_keys: dict[str, str] = {}
        self._callers: dict[str, Caller] = {}
        self._server: ThreadedMotoServer | None = None
        self.endpoint_url = ""
        self._admin: SessionCredentials | None = None
        self.report = ProvisionReport()
        self._clients: dict[tuple[str, str], Any] = {}
        self._bootstrap: Any = None

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs one line per request to stderr; the gateway keeps its own access log.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        if self.iam is None:
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        else:
            from kernel_access.local.enforcement import StsGuard

            self.guard = StsGuard(None, self.iam, self.caller, log=self._log)
            self._server = _guarded_server(self.guard, port=self._port)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # ---- clients -------------------------------------------------------------------------------

    def client(self, service: str, credentials: SessionCredentials | None = None) -> Any:
        """A boto3 client for the local endpoint; by default acting as the kernel account's admin."""
        creds = credentials or self.admin_credentials()
        key = (service, creds.access_key_id)
        if key not in self._clients:
            # Creating a client costs tens of milliseconds and start-up makes dozens of calls.
            self._clients[key] = self._new_client(service, creds)
        return self._clients[key]

    def _new_client(self, service: str, creds: SessionCredentials) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=self.template.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def _bootstrap_sts(self) -> Any:
        if self._bootstrap is None:
            self._bootstrap = self._new_bootstrap_sts()
        return self._bootstrap

    def _new_bootstrap_sts(self) -> Any:
        return boto3.client(
            "sts",
            region_name=self.template.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=_BOOTSTRAP_KEY,
            aws_secret_access_key=_BOOTSTRAP_SECRET,
        )

    def _service_sts(self, service: str) -> Any:
        """An STS client whose calls the local IAM attributes to the service principal ``service``."""
        key = next((k for k, v in self._service_keys.items() if v == service), None)
        if key is None:
            key = "AKIALOCALSVC" + secrets.token_hex(4).upper()
            self._service_keys[key] = service
        return boto3.client(
            "sts",
            region_name=self.template.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=_BOOTSTRAP_SECRET,
        )

    def caller(self, access_key_id: str) -> Caller | None:
        """The principal behind an access key, as IAM sees it (None: not issued by the local IAM/STS)."""
        from kernel_access.local.iam import Caller

        service = self._service_keys.get(access_key_id)
        if service is not None:
            return Caller.of_service(service)
        known = self._callers.get(access_key_id)
        if known is not None:
            return known
        key = self.lookup_access_key(access_key_id)
        if key is None:
            return None
        # An access key's principal never changes: remember it (the lookup scans moto's sessions).
        caller = self._callers[access_key_id] = Caller.from_arn(key.user_arn, user_id=key.user_id)
        return caller

    def admin_credentials(self) -> SessionCredentials:
        """A session in the kernel account, so moto files every resource under that account.

        moto decides the account of a request from its access key; keys of an assumed role belong to
        the role's account, which is how the local stack lands in the template's account.
        """
        if self._admin is None:
            arn = f"arn:{self.template.partition}:iam::{self.template.account}:role/{_ADMIN_ROLE}"
            self._admin = self.assume(arn, "local-provisioner", duration=43200)
        return self._admin

    def assume(
        self,
        role_arn: str,
        session_name: str,
        *,
        duration: int = 3600,
        external_id: str | None = None,
        source_identity: str | None = None,
        sts: Any = None,
        service: str | None = None,
    ) -> SessionCredentials:
        """A session of ``role_arn``: as ``sts``'s caller, as the AWS ``service`` principal, or else
        with a key the local STS did not issue (allowed only for roles outside the template)."""
        if service is not None and sts is None:
            sts = self._service_sts(service)
        kwargs: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration,
        }
        if external_id:
            kwargs["ExternalId"] = external_id
        if source_identity:
            kwargs["SourceIdentity"] = source_identity
        response = (sts or self._bootstrap_sts()).assume_role(**kwargs)
        creds = response["Credentials"]
        return SessionCredentials(
            creds["AccessKeyId"],
            creds["SecretAccessKey"],
            creds["SessionToken"],
            creds["Expiration"],
            response["AssumedRoleUser"]["Arn"],
        )

    # ---- provisioning --------------------------------------------------------------------------

    def provision(self) -> ProvisionReport:
        """Create every DynamoDB table, SSM parameter, S3 bucket (with the objects of its bucket
        deployments) and IAM role/policy the template declares."""
        for logical_id in self.template.of_type("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
            self._create_table(logical_id)
        for logical_id in self.template.of_type("AWS::SSM::Parameter"):
            self._create_parameter(logical_id)
        self._deploy_buckets()
        for logical_id in self.template.of_type("AWS::IAM::Role"):
            self._create_role(logical_id)
        for logical_id in self.template.of_type("AWS::IAM::ManagedPolicy"):
            self._create_managed_policy(logical_id)
        for logical_id in self.template.of_type("AWS::IAM::Policy"):
            self._attach_inline_policy(logical_id)
        return self.report

    def _create_table(self, logical_id: str) -> None:
        """The table with the keys, indexes, TTL, PITR, SSE, streams, deletion protection and tags
        the template gives it (what ``describe_table`` shows is what CloudFormation would create)."""
        props = self.resolver.resource_properties(logical_id)
        name = self.resolver.physical_name(logical_id)
        billing = str(props.get("BillingMode", "PROVISIONED"))
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        indexes = []
        for gsi in props.get("GlobalSecondaryIndexes", []):
            index = {
                "IndexName": gsi["IndexName"],
                "KeySchema": gsi["KeySchema"],
                "Projection": gsi.get("Projection", {"ProjectionType": "ALL"}),
            }
            if billing == "PROVISIONED":
                index["ProvisionedThroughput"] = gsi.get(
                    "ProvisionedThroughput", kwargs["ProvisionedThroughput"]
                )
            indexes.append(index)
        if indexes:
            kwargs["GlobalSecondaryIndexes"] = indexes
        local_indexes = [
            {"IndexName": lsi["IndexName"], "KeySchema": lsi["KeySchema"], "Projection": lsi["Projection"]}
            for lsi in props.get("LocalSecondaryIndexes", [])
        ]
        if local_indexes:
            kwargs["LocalSecondaryIndexes"] = local_indexes
        sse = props.get("SSESpecification")
        if isinstance(sse, Mapping):
            # The KMS key of a customer-managed SSE is not created locally: moto's default key stands in.
            kwargs["SSESpecification"] = {
                k: v for k, v in sse.items() if k in ("Enabled", "SSEEnabled", "SSEType")
            }
            if "SSEEnabled" in kwargs["SSESpecification"]:
                kwargs["SSESpecification"]["Enabled"] = kwargs["SSESpecification"].pop("SSEEnabled")
        stream = props.get("StreamSpecification")
        if isinstance(stream, Mapping) and stream.get("StreamViewType"):
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        if props.get("DeletionProtectionEnabled") is not None:
            kwargs["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
        if props.get("Tags"):
            kwargs["Tags"] = props["Tags"]
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if isinstance(ttl, Mapping) and ttl.get("Enabled") and ttl.get("AttributeName"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        pitr = props.get("PointInTimeRecoverySpecification")
        if isinstance(pitr, Mapping) and pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        self.report.tables[logical_id] = name

    def _create_parameter(self, logical_id: str) -> None:
        props = self.resolver.resource_properties(logical_id)
        name = self.resolver.physical_name(logical_id)
        value = props.get("Value")
        if not isinstance(value, str):
            value = json.dumps(value)
        kwargs: dict[str, Any] = {"Name": name, "Value": value, "Type": props.get("Type", "String")}
        if props.get("Description"):
            kwargs["Description"] = props["Description"]
        if props.get("Tier"):
            kwargs["Tier"] = props["Tier"]
        self.client("ssm").put_parameter(**kwargs, Overwrite=True)
        self.report.parameters[logical_id] = name

    def _deploy_buckets(self) -> None:
        """Buckets, then what the template's ``BucketDeployment`` resources put in them."""
        from kernel_access.local import deployments

        s3 = self.client("s3")
        for logical_id in self.template.of_type("AWS::S3::Bucket"):
            self.report.buckets[logical_id] = deployments.create_bucket(s3, self.resolver, logical_id)
        for logical_id in self.template.of_type(deployments.BUCKET_DEPLOYMENT):
            try:
                self.report.objects.extend(deployments.deploy(s3, self.template, self.resolver, logical_id))
            except FileNotFoundError as error:
                self.report.skipped.append(str(error))

    def _create_role(self, logical_id: str) -> None:
        props = self.resolver.resource_properties(logical_id)
        name = self.resolver.physical_name(logical_id)
        iam = self.client("iam")
        kwargs: dict[str, Any] = {
            "RoleName": name,
            "AssumeRolePolicyDocument": json.dumps(props.get("AssumeRolePolicyDocument", {})),
            "Path": props.get("Path", "/"),
        }
        if props.get("MaxSessionDuration"):
            kwargs["MaxSessionDuration"] = int(props["MaxSessionDuration"])
        if props.get("Description"):
            kwargs["Description"] = str(props["Description"])[:1000]
        if props.get("PermissionsBoundary"):
            kwargs["PermissionsBoundary"] = props["PermissionsBoundary"]
        if props.get("Tags"):
            kwargs["Tags"] = props["Tags"]
        try:
            iam.create_role(**kwargs)
        except ClientError as error:
            raise ProvisioningError(f"IAM role {logical_id} ({name}): {error}") from error
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        for arn in props.get("ManagedPolicyArns", []):
            self._attach_managed(name, str(arn))
        self.report.roles[logical_id] = name

    def _attach_managed(self, role_name: str, policy_arn: str) -> None:
        try:
            self.client("iam").attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
            self.report.skipped.append(
                f"managed policy {policy_arn} on role {role_name}: not known to moto (not attached)"
            )

    def _create_managed_policy(self, logical_id: str) -> None:
        props = self.resolver.resource_properties(logical_id)
        name = self.resolver.physical_name(logical_id)
        iam = self.client("iam")
        arn = iam.create_policy(
            PolicyName=name, PolicyDocument=json.dumps(props["PolicyDocument"]), Path=props.get("Path", "/")
        )["Policy"]["Arn"]
        for role in props.get("Roles", []):
            self._attach_managed(str(role), arn)

    def _attach_inline_policy(self, logical_id: str) -> None:
        props = self.resolver.resource_properties(logical_id)
        iam = self.client("iam")
        for role in props.get("Roles", []):
            iam.put_role_policy(
                RoleName=str(role),
                PolicyName=str(props["PolicyName"]),
                PolicyDocument=json.dumps(props["PolicyDocument"]),
            )
        for other in ("Users", "Groups"):
            if props.get(other):
                self.report.skipped.append(f"{logical_id}: policy on IAM {other.lower()} not emulated")

    # ---- partner identities --------------------------------------------------------------------

    def partner_identities(self) -> list[PartnerIdentity]:
        """Partners as the trust policies admit them, one identity per (partner, role).

        A statement whose ``sts:RoleSessionName`` pattern is ``${aws:PrincipalAccount}.*`` admits
        accounts: the one account it names (an external partner's role; the partner is the one the
        policy document's ``partners`` map binds to that account), or, with ``Principal: "*"`` and
        ``aws:PrincipalOrgID``, every in-organization partner of that map. A statement pinning a
        ``<partner>.*`` prefix (templates of earlier versions) names its partner directly.
        """
        partners = self._policy_partners()
        identities: list[PartnerIdentity] = []
        for logical_id in self.template.of_type("AWS::IAM::Role"):
            props = self.resolver.resource_properties(logical_id)
            role_name = self.resolver.physical_name(logical_id)
            role_arn = self.resolver.arn(logical_id)
            for statement in _statements(props.get("AssumeRolePolicyDocument")):
                if statement.get("Effect") != "Allow":
                    continue
                condition: Mapping[str, Any] = statement.get("Condition", {})
                patterns = [
                    *_as_list(condition.get("StringLike", {}).get("sts:RoleSessionName")),
                    *_as_list(condition.get("StringEquals", {}).get("sts:RoleSessionName")),
                ]
                equals = condition.get("StringEquals", {})
                external = _as_list(equals.get("sts:ExternalId"))
                principal = statement.get("Principal", {})
                principals = _as_list(principal.get("AWS") if isinstance(principal, Mapping) else principal)
                accounts = [a for a in (_account_of(str(p)) for p in principals) if a]
                for pattern in patterns:
                    admitted: list[tuple[str, str]] = []
                    if pattern == PRINCIPAL_ACCOUNT_PATTERN:
                        if accounts:
                            admitted = [(n, a) for n, (a, _org) in partners.items() if a in accounts]
                        elif "*" in principals and equals.get("aws:PrincipalOrgID"):
                            admitted = [(n, a) for n, (a, in_org) in partners.items() if in_org]
                    else:
                        match = _SESSION_PATTERN_RE.match(str(pattern))
                        if match:
                            admitted = [(match["partner"], a) for a in accounts or [self.template.account]]
                    for name, account in admitted:
                        identities.append(
                            PartnerIdentity(
                                partner=name,
                                account_id=account,
                                role_name=role_name,
                                role_arn=role_arn,
                                external_id=str(external[0]) if external else None,
                                session_pattern=str(pattern),
                            )
                        )
        return identities

    def _policy_partners(self) -> dict[str, tuple[str, bool]]:
        """partner -> (account, in organization), from the vending policy documents deployed in the
        local config bucket (the map the vending Lambda resolves accounts with)."""
        found: dict[str, tuple[str, bool]] = {}
        s3 = self.client("s3")
        for url in self.report.objects:
            bucket, _, key = url.removeprefix("s3://").partition("/")
            try:
                document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except ValueError:
                continue
            if not isinstance(document, Mapping) or "rules" not in document:
                continue
            raw = document.get("partners")
            for name, info in raw.items() if isinstance(raw, Mapping) else []:
                if isinstance(info, Mapping) and isinstance(info.get("account_id"), str):
                    found[str(name)] = (str(info["account_id"]), info.get("in_organization") is True)
        return found

    def partner_session(
        self, identity: PartnerIdentity, suffix: str = "local", *, duration: int = 3600
    ) -> SessionCredentials:
        """Credentials of a partner's session of its kernel role, as the partner would hold them.

        The partner first has credentials in its own account (a workload role there), then assumes the
        kernel role with its external id and a session name that satisfies the trust policy.
        """
        workload = self.assume(
            f"arn:{self.template.partition}:iam::{identity.account_id}:role/{identity.partner}-workload",
            "workload",
        )
        return self.assume(
            identity.role_arn,
            identity.session_name(suffix),
            duration=duration,
            external_id=identity.external_id,
            sts=self.client("sts", workload),
        )

    # ---- IAM's view of access keys (for SigV4 verification) ------------------------------------

    def lookup_access_key(self, access_key_id: str) -> CallerKey | None:
        """The secret and identity behind an access key, from moto's in-process backends."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        for account_id, partitions in list(iam_backends.items()):
            for partition, backend in list(partitions.items()):
                key = backend.access_keys.get(access_key_id)
                if key is None or key.status != "Active":
                    continue
                if key.role_arn:
                    sts_partitions: Mapping[str, Any] = sts_backends.get(account_id) or {}
                    sts_backend = sts_partitions.get(partition) if sts_partitions else None
                    for role in list(sts_backend.assumed_roles if sts_backend else []):
                        if role.access_key_id == access_key_id:
                            expiration = role.expiration
                            if expiration.tzinfo is None:
                                expiration = expiration.replace(tzinfo=UTC)
                            return CallerKey(
                                access_key_id,
                                role.secret_access_key,
                                role.session_token,
                                str(account_id),
                                role.arn,
                                role.user_id,
                                expiration,
                            )
                    return None
                user = backend.get_user_from_access_key_id(access_key_id)
                if user is None:
                    return None
                return CallerKey(
                    access_key_id, key.secret_access_key, None, str(account_id), user.arn, user.id, None
                )
        return None

    def organization_id(self) -> str | None:
        """The organization the kernel account belongs to, as its trust policies state it."""
        for logical_id in self.template.of_type("AWS::IAM::Role"):
            props = self.resolver.resource_properties(logical_id)
            for statement in _statements(props.get("AssumeRolePolicyDocument")):
                for operator in statement.get("Condition", {}).values():
                    if isinstance(operator, Mapping) and operator.get("aws:PrincipalOrgID"):
                        return str(_as_list(operator["aws:PrincipalOrgID"])[0])
        return None


def _guarded_server(guard: StsGuard, *, port: int) -> ThreadedMotoServer:
    """moto's threaded server with ``guard`` in front of its WSGI application.

    The same construction as ``ThreadedMotoServer._server_entry``, with one more layer: moto offers no
    hook for authorizing a request, and the guard must see ``AssumeRole`` before moto issues a session.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class _GuardedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            guard.app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address, self._port, guard, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return _GuardedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
