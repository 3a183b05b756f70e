"""``KernelClient``: call kernel-account APIs from a partner account.

What it guarantees:

* the kernel role is assumed **once** and the credentials reused until the refresh engine says they
  are due (never re-assumed per call); many threads share one client and one AssumeRole;
* both timeouts are applied, connections are pooled and kept alive, and transient failures are
  retried with backoff — only where a retry cannot duplicate a side effect (see ``transport``).

Credentials are minted **lazily** by default, on the first call: constructing a client at Lambda
init then costs no STS round trip and an unrelated route still works if the kernel is unreachable.
Configuration *format* errors (account id, external id, names) always fail at construction. Pass
``eager=True`` to also assume the role at construction, so a wrong role, trust policy or external
id fails fast at start-up.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import boto3

from kernel_access.client.response import (
    KernelCallError,
    KernelConfigError,
    KernelCredentialsError,
    KernelResponse,
)
from kernel_access.client.signing import StaticCredentials
from kernel_access.client.transport import SignedTransport
from kernel_access.contract import KERNEL_ACCESS_EXTERNAL_ROLE, KERNEL_ACCESS_ROLE
from kernel_access.refresh import Minted, RefreshError, RefreshingValue
from kernel_access.validation import (
    STS_NAME_RE,
    ValidationError,
    external_role_name,
    require_account_id,
    require_external_id,
    require_partner_name,
    require_role_name,
    session_name_prefix,
    sts_safe_name,
)

if TYPE_CHECKING:
    import logging

    from aws_lambda_powertools import Logger, Metrics, Tracer
    from mypy_boto3_sts import STSClient

    from kernel_access.client.config import KernelClientConfig

#: Role chaining (e.g. from a Lambda) caps sessions at one hour; that is also our default.
DEFAULT_SESSION_SECONDS: Final = 3600
_ROLE_ARN_RE: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]{1,64})$"
)


#: What API Gateway answers (403, ``{"message": ...}``) when the signing session is no longer valid.
_REJECTED_TOKEN_MESSAGES: Final = (
    "the security token included in the request is expired",
    "the security token included in the request is invalid",
)


def _rejected_credentials(exc: KernelCallError) -> bool:
    if exc.status != 403 or exc.error_code is not None:
        return False  # our own refusals always carry an error_code
    body = exc.json()
    message = body.get("message") if isinstance(body, dict) else None
    return isinstance(message, str) and message.strip().rstrip(".").lower() in _REJECTED_TOKEN_MESSAGES


def partition_for(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def default_session_name(account_id: str) -> str:
    """``<account>.<workload>.<random>``: the account prefix the trust policy requires (IAM checks it
    against the account actually calling), then who is calling (the Lambda function name or host
    name, for CloudTrail) and 8 random hex digits so two processes never share a session name."""
    prefix = session_name_prefix(account_id)
    workload = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or socket.gethostname() or "client"
    suffix = f".{secrets.token_hex(4)}"
    middle = sts_safe_name(workload, max_length=64 - len(prefix) - len(suffix))
    return f"{prefix}{middle}{suffix}"


def account_source_identity(account_id: str, source_identity: str) -> str:
    """``<account>.<source_identity>`` (unchanged when it already has the prefix): the only
    SourceIdentity the kernel-access trust policies admit."""
    prefix = session_name_prefix(account_id)
    if source_identity.startswith(prefix):
        return source_identity[:64]
    return sts_safe_name(prefix + source_identity, max_length=64)


class KernelClient:
    """Signed, retried, credential-caching calls to kernel APIs (API Gateway, IAM auth).

    Positional args keep their published order. The kernel roles' trust policies accept only RoleSessionNames
    (and SourceIdentities) that start with ``<the calling account>.``: by default the client asks
    STS who it is (``GetCallerIdentity``, once, before the first AssumeRole) and builds
    ``<account>.<workload>.<random>``. A ``source_identity`` is sent as ``<account>.<value>`` and
    then also used as the session name, so the kernel — which sees only the session name — records
    the same value. ``partner`` (keyword) is this partner's name as configured in the kernel; an
    external partner (``external_id``) needs it to name its own role ``kernel-access-external-<partner>``.
    """

    def __init__(  # noqa: PLR0917 - positional order is part of the public signature
        self,
        account_id: str,
        region: str = "us-east-1",
        external_id: str | None = None,
        role_name: str | None = None,
        connect_timeout: float = 30,
        read_timeout: float = 30,
        max_attempts: int = 3,
        session_name: str | None = None,
        source_identity: str | None = None,
        logger: Logger | logging.Logger | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        *,
        partner: str | None = None,
        role_arn: str | None = None,
        session_duration: int = DEFAULT_SESSION_SECONDS,
        eager: bool = False,
        boto3_session: boto3.Session | None = None,
        sts_client: STSClient | None = None,
    ) -> None:
        try:
            self.account_id = require_account_id(account_id)
            self.external_id = require_external_id(external_id) if external_id is not None else None
            self.partner = require_partner_name(partner, "partner") if partner is not None else None
            self.role_name = (
                require_role_name(role_name) if role_name is not None else self._default_role(role_arn)
            )
            if not isinstance(region, str) or not re.match(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", region):
                raise ValidationError("region", f"must be an AWS region name, got {region!r}")
            self.region = region
            self.role_arn = self._resolve_role_arn(role_arn)
            if session_name is not None and not STS_NAME_RE.fullmatch(session_name):
                raise ValidationError("session_name", "must be 2-64 characters of [\\w+=,.@-]")
            #: None until the first AssumeRole when not given (it needs the calling account).
            self.session_name: str | None = session_name
            if source_identity is not None and (
                not STS_NAME_RE.fullmatch(source_identity) or source_identity.startswith("aws:")
            ):
                raise ValidationError("source_identity", "must be 2-64 characters of [\\w+=,.@-]")
            self.source_identity = source_identity
            if not 900 <= session_duration <= 43200:
                raise ValidationError("session_duration", "must be 900-43200 seconds")
            self.session_duration = session_duration
            if max_attempts < 1:
                raise ValidationError("max_attempts", "must be at least 1")
            if connect_timeout <= 0 or read_timeout <= 0:
                raise ValidationError("connect_timeout/read_timeout", "must be positive")
        except ValidationError as exc:
            raise KernelConfigError(str(exc)) from None

        self._logger = logger
        self._account: str | None = None
        # boto3 sessions are not thread-safe to create clients from; build the client here, once.
        self._sts: STSClient = sts_client or (boto3_session or boto3.Session()).client(
            "sts", region_name=region
        )
        self._credentials = RefreshingValue(
            self._assume_role,
            eager=False,
            # Containers started together would otherwise all re-assume at the same second.
            jitter=60.0,
            name="kernel-credentials",
            on_event=self._on_refresh_event if logger is not None else None,
        )
        self._transport = SignedTransport(
            self._current_credentials,
            region=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            logger=logger,
            metrics=metrics,
            tracer=tracer,
        )
        if eager:
            self._current_credentials()

    # --- construction helpers -------------------------------------------------------------------

    def _resolve_role_arn(self, role_arn: str | None) -> str:
        if role_arn is None:
            return f"arn:{partition_for(self.region)}:iam::{self.account_id}:role/{self.role_name}"
        match = _ROLE_ARN_RE.fullmatch(role_arn)
        if not match:
            raise ValidationError("role_arn", f"must be an IAM role ARN, got {role_arn!r}")
        if match.group("account") != self.account_id:
            raise ValidationError("role_arn", "account differs from account_id")
        self.role_name = match.group("name")
        return role_arn

    def _default_role(self, role_arn: str | None) -> str:
        if self.external_id is None:
            return KERNEL_ACCESS_ROLE
        if role_arn is not None:
            return KERNEL_ACCESS_EXTERNAL_ROLE  # replaced by the ARN's role name
        if self.partner is None:
            raise ValidationError(
                "partner",
                "required with external_id (or pass role_name/role_arn): each external partner has "
                "its own role kernel-access-external-<partner>",
            )
        return external_role_name(KERNEL_ACCESS_EXTERNAL_ROLE, self.partner)

    def _caller_account(self) -> str:
        """The account this client's own credentials belong to (what IAM substitutes for
        ``${aws:PrincipalAccount}``), asked of STS once."""
        account = self._sts.get_caller_identity()["Account"]
        return require_account_id(account, "GetCallerIdentity.Account")

    @classmethod
    def from_config(cls, config: KernelClientConfig, **overrides: Any) -> KernelClient:
        """Build from a :class:`~kernel_access.client.config.KernelClientConfig`."""
        kwargs: dict[str, Any] = {
            "account_id": config.account_id,
            "region": config.region,
            "external_id": config.external_id,
            "role_name": config.role_name,
            "role_arn": config.role_arn,
            "partner": config.partner,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        boto3_session: boto3.Session | None = None,
        **overrides: Any,
    ) -> KernelClient:
        """Build from the environment and/or the SSM parameters ``PartnerAccountStack`` publishes
        (see :func:`kernel_access.client.config.load_config` for names and precedence)."""
        from kernel_access.client.config import load_config

        config = load_config(environ, boto3_session=boto3_session)
        if boto3_session is not None:
            overrides.setdefault("boto3_session", boto3_session)
        return cls.from_config(config, **overrides)

    # --- credentials ----------------------------------------------------------------------------

    def _assume_role(self) -> Minted[StaticCredentials]:
        source_identity = self.source_identity
        if self.session_name is None or (source_identity is not None and self._account is None):
            self._account = self._caller_account()
            if source_identity is not None:
                source_identity = self.source_identity = account_source_identity(
                    self._account, source_identity
                )
            if self.session_name is None:
                self.session_name = source_identity or default_session_name(self._account)
        params: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.session_name,
            "DurationSeconds": self.session_duration,
        }
        if self.external_id is not None:
            params["ExternalId"] = self.external_id
        if self.source_identity is not None:
            params["SourceIdentity"] = self.source_identity
        issued_at = datetime.now(UTC)
        response = self._sts.assume_role(**params)
        creds = response["Credentials"]
        expiration = creds["Expiration"]
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=UTC)
        return Minted(
            value=StaticCredentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
            expires_at=expiration,
            issued_at=issued_at,
        )

    def _current_credentials(self) -> StaticCredentials:
        try:
            return self._credentials.get()
        except RefreshError as exc:
            # RefreshError's message is secret-free by contract (type name and AWS error code).
            raise KernelCredentialsError(
                f"could not assume {self.role_arn} as session {self.session_name}: {exc}"
            ) from exc

    def current_credentials(self) -> StaticCredentials:
        """The kernel-role credentials this client signs with (assumed or refreshed if due).

        For tools that sign requests themselves (the CLI signs vending calls with them); raises
        ``KernelCredentialsError`` when the role cannot be assumed.
        """
        return self._current_credentials()

    def _on_refresh_event(self, event: str, fields: Mapping[str, object]) -> None:
        if self._logger is not None:
            self._logger.info("kernel credentials", extra={"event": event, **dict(fields)})

    @property
    def credentials_expire_at(self) -> datetime | None:
        """Expiry of the cached credentials (``None`` before the first mint)."""
        current = self._credentials.current()
        return current.expires_at if current is not None else None

    # --- calls ----------------------------------------------------------------------------------

    def call(  # noqa: PLR0917 - positional order is part of the public signature
        self,
        base_url: str,
        endpoint: str,
        method: str = "POST",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> KernelResponse:
        """Call ``base_url`` + ``endpoint`` signed for ``execute-api``.

        ``body`` is JSON-encoded unless it is ``bytes``/``str``. Raises ``KernelCallError`` for
        status >= 400, ``KernelConnectionError`` when no response came, ``KernelCredentialsError``
        when the kernel role cannot be assumed.
        """
        send = functools.partial(
            self._transport.request,
            base_url,
            endpoint,
            method,
            body,
            headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        try:
            return send()
        except KernelCallError as exc:
            if not _rejected_credentials(exc):
                raise
            # API Gateway's IAM authorizer refused the session itself (expired or revoked before
            # its time): the request never reached the kernel, so re-assuming and sending it once
            # more is safe for any method.
            self._credentials.invalidate()
            return send()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> KernelClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KernelClient(role_arn={self.role_arn!r}, session_name={self.session_name!r})"
