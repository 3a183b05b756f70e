"""The vending service: authorize → act → audit → respond, for each route.

One :class:`VendingService` lives per Lambda container (the handler builds it lazily from the
environment and reuses it on warm invocations). It owns the long-lived pieces — boto3 clients,
the policy store, the CodeArtifact token cache — and serves one
:class:`~kernel_access.vending.context.VendingRequestContext` (the event, parsed once by the
handler) per call: a grant returns the response body; a refusal is raised as the
:class:`~kernel_access.errors.KernelAccessError` the caller gets, which the handler's one exception
handler turns into the HTTP response. Every decision (allow, deny, error) is counted and audited
*before* the method returns or raises; if that audit write fails, the caller gets INTERNAL_ERROR
and no credential (fail closed). Nothing else escapes: an unexpected exception is INTERNAL_ERROR.

Order of checks for the credential and token routes, and why:

1. caller identity from the IAM authorizer context (nothing is done for an unauthenticated caller);
2. policy load (POLICY_LOAD_FAILED past the staleness bound; cached, so S3 sees one read per
   cache period whatever the request rate) and partner resolution;
3. rate limit per partner, then per session (:mod:`kernel_access.ratelimit`) — keyed on the
   partner, which the caller cannot choose, so renaming sessions does not reset it, and before
   validation, so malformed requests spend the budget too. Refusals past the limit are counted;
   only sampled ones are audited (:func:`~kernel_access.ratelimit.is_sampled_refusal`);
4. revocation of the caller, the partner or the partner's account (SESSION_REVOKED);
5. query validation (bad input is rejected before any AWS call but the audit write);
6. policy evaluation (POLICY_DENY) — an unknown role is only reported (ROLE_NOT_FOUND) to a
   caller the policy allows it for, so denied callers learn nothing about which roles exist;
7. STS / CodeArtifact, then the audit write, then the response.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

from kernel_access import __version__
from kernel_access.audit import (
    AuditLog,
    AuditRecord,
    AuditWriteError,
    FingerprintKeyUnavailable,
    TokenFingerprinter,
    ssm_key_loader,
)
from kernel_access.aws_clients import Clients
from kernel_access.contract import ErrorCode
from kernel_access.errors import KernelAccessError
from kernel_access.ratelimit import (
    RateLimiter,
    RateLimiterUnavailable,
    is_sampled_refusal,
    principal_subject,
    session_subject,
)
from kernel_access.revocation import RevocationStore, RevocationStoreUnavailable
from kernel_access.telemetry import (
    ALLOWED,
    BREAKER_STATE,
    BREAKER_VALUES,
    DECISION_MESSAGE,
    DENIED,
    LATENCY,
    decision_log_keys,
)
from kernel_access.vending.codeartifact import (
    BREAKER_PREFIX,
    MINT_RATE_LIMIT,
    MINT_RATE_WINDOW_SECONDS,
    MintRateGate,
    TokenCache,
    token_owner,
)
from kernel_access.vending.config import VendingConfig
from kernel_access.vending.context import VendingRequestContext
from kernel_access.vending.identity import CallerIdentity
from kernel_access.vending.request import DEFAULT_DURATION, parse_credentials_request, parse_token_request
from kernel_access.vending.sts import (
    assume_role,
    format_expiration,
    session_name,
    session_tags,
    source_identity,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

    from kernel_access.policy import LoadedPolicy, PolicyStore


class RateLimitedError(KernelAccessError):
    """RATE_LIMITED; ``audited`` is False for refusals the audit table does not sample."""

    def __init__(
        self, message: str, details: Mapping[str, Any], retry_after: float, *, audited: bool
    ) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, message, details, retry_after=retry_after)
        self.audited = audited


@dataclass(frozen=True)
class Admission:
    """What the checks before validation established: the policy in force and the partner."""

    loaded: LoadedPolicy
    partner: str | None


def utc_now() -> datetime:
    return datetime.now(UTC)


class Telemetry:
    """Metrics (EMF through Powertools), logs and trace subsegments, created on first use."""

    def __init__(self) -> None:
        self._logger: Logger | None = None
        self._tracer: Tracer | None = None
        self._metrics_instance: Metrics | None = None

    @property
    def logger(self) -> Logger:
        if self._logger is None:
            from aws_lambda_powertools import Logger

            self._logger = Logger(child=True)
        return self._logger

    @contextmanager
    def subsegment(self, name: str) -> Iterator[None]:
        """An X-Ray subsegment around one AWS call (no-op when tracing is disabled)."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        if self._tracer.disabled:
            yield
            return
        with self._tracer.provider.in_subsegment(name=f"## {name}"):
            yield

    def _metrics(self) -> Metrics:
        """Powertools ``Metrics`` instances share one metric set per process (the handler's
        ``log_metrics`` flushes it); one instance is kept because building it re-reads the
        environment, which showed up in the per-request profile."""
        if self._metrics_instance is None:
            from aws_lambda_powertools import Metrics

            self._metrics_instance = Metrics()
        return self._metrics_instance

    def allowed(self, route: str, milliseconds: float) -> None:
        """Allowed and Latency go into the invocation's metric set (flushed by ``log_metrics``)."""
        from aws_lambda_powertools.metrics import MetricUnit

        metrics = self._metrics()
        metrics.add_dimension(name="route", value=route)
        metrics.add_metric(name=ALLOWED.name, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=LATENCY.name, unit=MetricUnit.Milliseconds, value=milliseconds)
        self.logger.info(
            DECISION_MESSAGE, extra={"route": route, "decision": "allow", "latency_ms": milliseconds}
        )

    def denied(self, route: str, error_code: str, milliseconds: float) -> None:
        """Denied carries the error code as a dimension, so it is its own EMF document."""
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        metrics = self._metrics()
        metrics.add_dimension(name="route", value=route)
        metrics.add_metric(name=LATENCY.name, unit=MetricUnit.Milliseconds, value=milliseconds)
        with single_metric(name=DENIED.name, unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="route", value=route)
            metric.add_dimension(name="error_code", value=error_code)
        known = ErrorCode.__members__.get(error_code)
        decision = "deny" if known is not None and known.status < 500 else "error"
        self.logger.info(
            DECISION_MESSAGE,
            extra={
                "route": route,
                "decision": decision,
                "error_code": error_code,
                "latency_ms": milliseconds,
            },
        )

    def breaker(self, name: str, state: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(
            name=BREAKER_STATE.name, unit=MetricUnit.Count, value=BREAKER_VALUES.get(state, 2.0)
        ) as m:
            m.add_dimension(name="breaker", value=name[:200])

    def refresh_event(self, event: str, data: Mapping[str, object]) -> None:
        """Refresh-engine callback: log with scalar facts only (never the value) and report breaker
        state changes as the BreakerState metric."""
        facts = {k: v for k, v in data.items() if isinstance(v, bool | int | float) or k in {"name", "error"}}
        self.logger.info("codeartifact token cache event", extra={"cache_event": event, "facts": facts})
        state = _BREAKER_EVENTS.get(event)
        name = data.get("name")
        if state is not None and isinstance(name, str):
            self.breaker(name, state)


_BREAKER_EVENTS: Final = {
    "breaker_opened": "open",
    "breaker_half_open": "half-open",
    "breaker_closed": "closed",
}


class VendingService:
    """Everything one container needs to serve the vending routes; see the module docstring."""

    def __init__(
        self,
        config: VendingConfig,
        *,
        clients: Clients | None = None,
        policy_store: PolicyStore | None = None,
        audit: AuditLog | None = None,
        limiter: RateLimiter | None = None,
        revocations: RevocationStore | None = None,
        tokens: TokenCache | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], datetime] = utc_now,
        hmac_key: Callable[[], bytes | None] | None = None,
    ) -> None:
        self.config = config
        self.clients = clients or Clients()
        self.telemetry = telemetry or Telemetry()
        if policy_store is None:
            from kernel_access.policy import PolicyStore

            policy_store = PolicyStore(
                config.config_bucket,
                config.policy_key,
                max_staleness=float(config.policy_max_staleness),
                s3_client=self.clients.s3,
            )
        self.policy_store = policy_store
        self.audit = audit or AuditLog(
            config.audit_table, self.clients.dynamodb, retention_days=config.audit_retention_days
        )
        self.limiter = limiter or RateLimiter(
            config.rate_limit_table,
            self.clients.dynamodb,
            limit=config.rate_limit_requests,
            session_limit=config.rate_limit_session_requests,
            window_seconds=config.rate_limit_window_seconds,
        )
        self.revocations = revocations or RevocationStore(config.revocation_table, self.clients.dynamodb)
        self.tokens = tokens or TokenCache(
            reader_role_arn=config.codeartifact_reader_role_arn,
            publisher_role_arn=config.codeartifact_publisher_role_arn,
            domain_owner=config.codeartifact_domain_owner,
            sts_client=self.clients.sts,
            codeartifact_client=self.clients.codeartifact_for,
            on_event=self.telemetry.refresh_event,
            trace=self.telemetry.subsegment,
            mint_gate=MintRateGate(
                RateLimiter(
                    config.rate_limit_table,
                    self.clients.dynamodb,
                    limit=MINT_RATE_LIMIT,
                    window_seconds=MINT_RATE_WINDOW_SECONDS,
                )
            ),
        )
        self._clock = clock
        self._fingerprinter = TokenFingerprinter(hmac_key or self._load_hmac_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VendingService:
        return cls(VendingConfig.from_env(os.environ if environ is None else environ))

    # --- shared steps ---

    def _load_hmac_key(self) -> bytes | None:
        if not self.config.audit_hmac_key_parameter:
            return None
        with self.telemetry.subsegment("ssm.GetParameter"):
            return ssm_key_loader(self.config.audit_hmac_key_parameter, self.clients.ssm)()

    def _fingerprint(self, token: str) -> str:
        try:
            return self._fingerprinter(token)
        except FingerprintKeyUnavailable:
            # Configured but unreadable: refuse rather than silently weaken the fingerprint.
            self.telemetry.logger.error("audit HMAC key unavailable")
            raise KernelAccessError.internal() from None

    def _rate_limit(self, caller: CallerIdentity, partner: str | None, record: AuditRecord) -> None:
        try:
            with self.telemetry.subsegment("dynamodb.UpdateItem rate-limit"):
                decision = self.limiter.hit(
                    principal_subject(partner, caller.user_arn), session=session_subject(caller.user_arn)
                )
        except RateLimiterUnavailable:
            self.telemetry.logger.error("rate limiter unavailable; request refused")
            raise KernelAccessError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "rate limiter unavailable; try again later",
                {"upstream": "rate-limit", "retryable": True},
            ) from None
        if not decision.allowed:
            record.refusals = decision.refusals
            raise RateLimitedError(
                f"rate limit of {decision.limit} requests per {self.limiter.window_seconds}s "
                f"per {decision.scope} exceeded",
                {
                    "limit": decision.limit,
                    "window_seconds": self.limiter.window_seconds,
                    "scope": decision.scope,
                },
                decision.retry_after,
                audited=is_sampled_refusal(decision.refusals),
            )

    def _policy(self, record: AuditRecord) -> LoadedPolicy:
        from kernel_access.policy import PolicyUnavailable

        try:
            with self.telemetry.subsegment("s3.GetObject policy"):
                loaded = self.policy_store.get()
        except PolicyUnavailable as exc:
            self.telemetry.logger.error("policy unavailable", extra={"cause": str(exc)[:300]})
            raise KernelAccessError(
                ErrorCode.POLICY_LOAD_FAILED, "the access policy could not be loaded; every request is denied"
            ) from None
        record.policy_version = loaded.version
        return loaded

    def _check_revoked(self, caller: CallerIdentity, loaded: LoadedPolicy, partner: str | None) -> None:
        info = loaded.policy.partners.get(partner) if partner else None
        try:
            with self.telemetry.subsegment("dynamodb.BatchGetItem revocation"):
                revocation = self.revocations.check(
                    caller.user_arn, partner, info.account_id if info is not None else None
                )
        except RevocationStoreUnavailable:
            self.telemetry.logger.error("revocation store unavailable; request refused")
            raise KernelAccessError(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "revocation store unavailable; try again later",
                {"upstream": "revocation", "retryable": True},
            ) from None
        if revocation is not None:
            if partner is not None and revocation.kind == "partner":
                self.tokens.drop_partner(partner)  # never serve its cached tokens again
            raise KernelAccessError(
                ErrorCode.SESSION_REVOKED,
                f"access revoked for this {revocation.kind}",
                {"revoked_at": revocation.revoked_at, "subject": revocation.kind},
            )

    def _partner(self, caller: CallerIdentity, loaded: LoadedPolicy, record: AuditRecord) -> str | None:
        partner = loaded.policy.partner_for(caller.user_arn, self.config.kernel)
        record.partner = partner
        return partner

    def _admit(self, caller: CallerIdentity, record: AuditRecord) -> Admission:
        """Steps 2-4 of the module docstring: everything that must hold before the request is
        even read, so that neither renamed sessions nor malformed requests escape the budget."""
        try:
            loaded = self._policy(record)
        except KernelAccessError:
            # No policy, no partner: the request is still counted (on its principal), so a policy
            # outage is no way around the limit and a flood of refusals is still sampled.
            self._rate_limit(caller, None, record)
            raise
        partner = self._partner(caller, loaded, record)
        self._rate_limit(caller, partner, record)
        self._check_revoked(caller, loaded, partner)
        return Admission(loaded=loaded, partner=partner)

    def _authorize(
        self,
        caller: CallerIdentity,
        record: AuditRecord,
        admission: Admission,
        *,
        role: str | None = None,
        domain: str | None = None,
        repository: str | None = None,
        duration: int | None,
    ) -> Any:
        from kernel_access.policy import access_request_for

        loaded = admission.loaded
        # The partner and its bound account/organization, derived exactly as `policy explain` does
        # (the same derivation `_admit` used to key the rate limit and the revocation check).
        request = access_request_for(
            loaded.policy,
            caller_arn=caller.user_arn,
            source_ip=caller.source_ip,
            at=self._clock(),
            kernel=self.config.kernel,
            role=role,
            codeartifact_domain=domain,
            codeartifact_repository=repository,
            duration=duration,
        )
        decision = loaded.policy.evaluate(request)
        record.rule_id = decision.rule_id
        record.reason = decision.reason
        if not decision.allowed:
            details: dict[str, Any] = {"reason": decision.reason}
            if decision.rule_id:
                details["rule_id"] = decision.rule_id
            raise KernelAccessError(ErrorCode.POLICY_DENY, "denied by the access policy", details)
        return decision

    def _audit(self, record: AuditRecord) -> None:
        self.telemetry.logger.append_keys(**decision_log_keys(record))
        with self.telemetry.subsegment("dynamodb.PutItem audit"):
            self.audit.write(record)

    def _run(
        self, request: VendingRequestContext, act: Callable[[AuditRecord], dict[str, Any]]
    ) -> dict[str, Any]:
        """``act``'s body, counted and audited; or its refusal, counted, audited and raised."""
        started = time.perf_counter()
        route = request.route
        record = AuditRecord(
            request_id=request.request_id,
            route=route,
            decision="error",
            recorded_at=self._clock(),
            source_ip=request.source_ip,
            user_agent=request.user_agent,
        )
        error: KernelAccessError
        audit_failed = False
        try:
            body = act(record)
            record.decision = "allow"
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._audit(record)
        except KernelAccessError as exc:
            error = exc
        except AuditWriteError:
            # The session/token exists upstream but is withheld: nobody receives it, and it expires.
            self.telemetry.logger.error(
                "audit write failed; credential withheld",
                extra={"access_key_id": record.access_key_id, "token_fingerprint": record.token_fingerprint},
            )
            error = KernelAccessError.internal()
            audit_failed = True
        except Exception:
            self.telemetry.logger.exception("unexpected error while serving the request")
            error = KernelAccessError.internal()
        else:
            self.telemetry.allowed(route, (time.perf_counter() - started) * 1000)
            return body

        record.decision = "deny" if error.status < 500 else "error"
        record.error_code = error.code.value
        record.reason = record.reason if error.code is ErrorCode.POLICY_DENY else error.message
        # An error record never claims a vended key: that index lists sessions callers received.
        record.access_key_id = None
        record.token_fingerprint = None
        record.expiration = None
        # A refusal past the rate limit that is not sampled is counted (the rate-limit item and the
        # Denied metric) but not written: a flood must not turn into one audit item per request.
        unsampled = isinstance(error, RateLimitedError) and not error.audited
        if not audit_failed and not unsampled:
            record.latency_ms = (time.perf_counter() - started) * 1000
            try:
                self._audit(record)
            except AuditWriteError:
                self.telemetry.logger.error("audit write failed; refusing to answer")
                error = KernelAccessError.internal()
        self.telemetry.denied(route, error.code.value, (time.perf_counter() - started) * 1000)
        raise error

    @staticmethod
    def _fill_caller(record: AuditRecord, caller: CallerIdentity) -> None:
        record.caller_arn = caller.user_arn
        record.caller_account = caller.account_id
        record.caller_org = caller.org_id

    # --- routes ---

    def credentials(self, context: VendingRequestContext) -> dict[str, Any]:
        """``GET /credentials?role=NAME&duration=S`` → container-credentials JSON."""

        def act(record: AuditRecord) -> dict[str, Any]:
            caller = context.authenticated_caller()
            self._fill_caller(record, caller)
            admission = self._admit(caller, record)
            request = parse_credentials_request(context)
            record.target_role = request.role
            record.duration = request.duration
            decision = self._authorize(
                caller, record, admission, role=request.role, duration=request.duration
            )
            role_arn = self.config.target_roles.get(request.role)
            if role_arn is None:
                raise KernelAccessError(
                    ErrorCode.ROLE_NOT_FOUND, "the requested role is not configured", {"role": request.role}
                )
            duration = decision.duration or request.duration or DEFAULT_DURATION
            record.duration = duration
            record.session_name = session_name(
                caller_arn=caller.user_arn,
                caller_account=caller.account_id,
                request_id=record.request_id,
                partner=record.partner,
            )
            record.source_identity = source_identity(caller_arn=caller.user_arn, request_id=record.request_id)
            with self.telemetry.subsegment("sts.AssumeRole"):
                credentials = assume_role(
                    self.clients.sts(),
                    role_arn=role_arn,
                    role_session_name=record.session_name,
                    source_identity_value=record.source_identity,
                    tags=session_tags(
                        partner=record.partner, caller_account=caller.account_id, request_id=record.request_id
                    ),
                    duration=duration,
                    session_policy=decision.session_policy,
                )
            record.access_key_id = credentials.access_key_id
            record.expiration = format_expiration(credentials.expiration)
            return credentials.container_credentials()

        return self._run(context, act)

    def codeartifact_token(self, context: VendingRequestContext) -> dict[str, Any]:
        """``GET /codeartifact/token?domain=D&duration=S[&repository=R]``.

        Returns ``{authorizationToken, expiration}``.
        """

        def act(record: AuditRecord) -> dict[str, Any]:
            caller = context.authenticated_caller()
            self._fill_caller(record, caller)
            admission = self._admit(caller, record)
            request = parse_token_request(context)
            record.codeartifact_domain = request.domain
            record.codeartifact_repository = request.repository
            record.duration = request.duration
            decision = self._authorize(
                caller,
                record,
                admission,
                domain=request.domain,
                repository=request.repository,
                duration=request.duration,
            )
            access = decision.codeartifact_access
            if access not in ("read", "publish"):
                # An allow rule without a CodeArtifact access level grants no token: default deny.
                raise KernelAccessError(
                    ErrorCode.POLICY_DENY,
                    "denied by the access policy",
                    {
                        "reason": "the matching rule grants no CodeArtifact access level",
                        "rule_id": decision.rule_id,
                    },
                )
            lifetime = decision.duration or request.duration or DEFAULT_DURATION
            record.duration = lifetime
            record.codeartifact_access = access
            owner = token_owner(record.partner, caller.account_id)
            if owner is None:
                # A token is minted per partner (or account) so it can be attributed; without
                # either there is nobody to mint for: default deny.
                raise KernelAccessError(
                    ErrorCode.POLICY_DENY,
                    "denied by the access policy",
                    {
                        "reason": "no partner or account to attribute the token to",
                        "rule_id": decision.rule_id,
                    },
                )
            token = self.tokens.get(domain=request.domain, access=access, lifetime=lifetime, partner=owner)
            record.token_fingerprint = self._fingerprint(token.token)
            record.expiration = format_expiration(token.expiration)
            return {"authorizationToken": token.token, "expiration": record.expiration}

        return self._run(context, act)

    def unknown_route(self, context: VendingRequestContext) -> NoReturn:
        """A route this API does not serve: INVALID_REQUEST, audited like every refusal."""
        self._refuse_unserved(context, "unknown route")

    def malformed_event(self, context: VendingRequestContext) -> NoReturn:
        """An event API Gateway never sends (not a payload-2.0 request): INVALID_REQUEST, audited.

        The context was read defensively, so the record keeps what can be known (request id,
        connection facts, caller); a non-object event is audited as an empty one.
        """
        self._refuse_unserved(context, "not an API Gateway HTTP API (payload format 2.0) request")

    def _refuse_unserved(self, context: VendingRequestContext, message: str) -> NoReturn:
        def act(record: AuditRecord) -> NoReturn:
            if context.caller is not None:
                self._fill_caller(record, context.caller)
            raise KernelAccessError(ErrorCode.INVALID_REQUEST, message)

        self._run(context, act)
        raise AssertionError("not reached: the refusal is raised by _run")  # pragma: no cover

    def health(self, context: VendingRequestContext) -> dict[str, Any]:
        """``GET /health``: version, policy version and age, breaker states; no secrets.

        Handled like the other routes — IAM caller required, counted by the rate limiter, audited
        (decision ``allow`` or the refusal) — so every decision leaves a record and a caller cannot
        use it to write unlimited audit items. That also makes it a real dependency check: a 200
        means the policy is loaded, the rate-limit table answered and the audit table took a write.
        A policy that cannot be loaded is reported as POLICY_LOAD_FAILED (503) with the same report
        in ``details``.
        """

        def act(record: AuditRecord) -> dict[str, Any]:
            from kernel_access.policy import PolicyUnavailable

            caller = context.authenticated_caller()
            self._fill_caller(record, caller)
            loaded = None
            with suppress(PolicyUnavailable), self.telemetry.subsegment("s3.GetObject policy"):
                loaded = self.policy_store.get()
            # Counted against the partner's budget like every other route (the principal's when the
            # policy, and so the partner, is unavailable).
            self._rate_limit(caller, self._partner(caller, loaded, record) if loaded else None, record)
            status = self.policy_store.status()
            record.policy_version = status.version
            breakers = self.tokens.breaker_states()
            for name, state in breakers.items():
                self.telemetry.breaker(BREAKER_PREFIX + name, state)
            report: dict[str, Any] = {
                "status": "ok" if status.available else "degraded",
                "version": __version__,
                "policy": {
                    "version": status.version,
                    "age_seconds": None if status.age_seconds is None else round(status.age_seconds, 3),
                    "available": status.available,
                },
                "breakers": breakers,
                "request_id": record.request_id,
            }
            if not status.available:
                raise KernelAccessError(
                    ErrorCode.POLICY_LOAD_FAILED, "the access policy is unavailable", report
                )
            record.reason = "health check"
            return report

        return self._run(context, act)
