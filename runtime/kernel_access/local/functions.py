"""Run the template's Lambda functions in this process, with their own environment and credentials.

A Lambda function sees (1) the environment variables its template sets, (2) the standard variables
the Lambda service sets (``AWS_LAMBDA_FUNCTION_NAME``, region, ...), and (3) credentials of a session of
its execution role. Locally the same holds: template variables are resolved to the local resource
names, credentials come from assuming the function's role on the local STS, and
``AWS_ENDPOINT_URL`` sends every boto3 call of the handler to the local moto server.

Invocations are serial, one at a time, as in a single Lambda execution environment. Two reasons:
environment variables are process-wide, so two functions with different environments cannot run at
the same instant; and handlers keep per-invocation state in module globals, as Lambda allows (the
Powertools resolver's ``app.current_event`` is one), so two concurrent invocations of the *same*
handler in one process would read each other's requests. The e2e load test caught exactly that (an
audit record carrying another request's id) before invocations were serialised.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from kernel_access.local.template import Resolver

#: Variables of the host environment a function must not inherit (it gets its own credentials).
_HOST_ONLY: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
)

Handler = Callable[[dict[str, Any], Any], Any]


class FunctionError(RuntimeError):
    """The function could not be loaded (bad handler, unsupported code)."""


@dataclass
class LambdaContext:
    """The context object a Python Lambda handler receives (same attribute names)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    """One ``AWS::Lambda::Function`` of the template, ready to invoke locally."""

    logical_id: str
    name: str
    arn: str
    handler: str
    role_arn: str | None
    timeout: int
    memory: int
    runtime: str
    raw_environment: Mapping[str, Any]
    template_environment: dict[str, str] = field(default_factory=dict)
    inline_code: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    _callable: Handler | None = field(default=None, repr=False)

    def context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            function_version="$LATEST",
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{self.name}",
            log_stream_name=f"local/[$LATEST]{uuid.uuid4().hex}",
            deadline=time.monotonic() + self.timeout,
        )

    def load(self) -> Handler:
        """Import the handler (or exec inline ZipFile code) once; must run inside the environment gate."""
        if self._callable is not None:
            return self._callable
        module_name, _, attribute = self.handler.rpartition(".")
        if not module_name:
            raise FunctionError(f"{self.logical_id}: handler {self.handler!r} is not module.function")
        if self.inline_code is not None:
            module = types.ModuleType(f"kernel_access_local_inline_{self.logical_id}")
            try:
                code = compile(self.inline_code, f"<inline {self.logical_id}/{module_name}.py>", "exec")
                exec(code, module.__dict__)  # noqa: S102 - the template's own inline Lambda source
            except Exception as error:
                raise FunctionError(f"{self.logical_id}: inline code failed to load: {error}") from error
        else:
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise FunctionError(
                    f"{self.logical_id}: cannot import {module_name!r} ({error}); is it installed here?"
                ) from error
        handler: Handler | None = getattr(module, attribute, None)
        if not callable(handler):
            raise FunctionError(f"{self.logical_id}: {self.handler!r} is not a callable")
        self._callable = handler
        return self._callable


def functions_from_template(resolver: Resolver) -> dict[str, LocalFunction]:
    """Every Lambda function of the template (handlers are imported lazily, on first invocation)."""
    out: dict[str, LocalFunction] = {}
    for logical_id in resolver.template.of_type("AWS::Lambda::Function"):
        raw = resolver.template.resources[logical_id].get("Properties", {})
        props = resolver.resolve({k: v for k, v in raw.items() if k != "Environment"}, path=logical_id)
        code = props.get("Code", {})
        out[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=resolver.physical_name(logical_id),
            arn=resolver.arn(logical_id),
            handler=str(props.get("Handler", "index.handler")),
            role_arn=str(props["Role"]) if props.get("Role") else None,
            timeout=int(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
            runtime=str(props.get("Runtime", "python3.13")),
            raw_environment=raw.get("Environment", {}).get("Variables", {}),
            inline_code=str(code["ZipFile"]) if isinstance(code, Mapping) and "ZipFile" in code else None,
        )
    return out


def resolve_environment(resolver: Resolver, function: LocalFunction) -> dict[str, str]:
    """The function's template variables with local names (call after API ports are known)."""
    variables = resolver.resolve(function.raw_environment, path=f"{function.logical_id}.Environment")
    return {str(k): _env_text(v) for k, v in variables.items()}


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lambda_environment(
    function: LocalFunction,
    *,
    region: str,
    endpoint_url: str,
    credentials: Mapping[str, str],
    base: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment of one function: host basics + Lambda's standard variables + template's."""
    env = {k: v for k, v in base.items() if k not in _HOST_ONLY}
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            # No X-Ray daemon runs locally: Powertools' Tracer must not try to reach one.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    env.update(function.template_environment)
    env.update(credentials)
    env["AWS_ENDPOINT_URL"] = endpoint_url
    env.update(overrides or {})
    return env


class EnvironmentGate:
    """One invocation at a time, each inside its own function's environment (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: str | None = None

    @contextmanager
    def enter(self, function: LocalFunction) -> Iterator[None]:
        with self._lock:
            if self._current != function.logical_id:
                os.environ.clear()
                os.environ.update(function.environment)
                self._current = function.logical_id
            yield


@dataclass
class Invocation:
    """The outcome of one invocation: the handler's return value or the exception it raised."""

    result: Any
    error: BaseException | None
    duration_ms: float
    request_id: str


class FunctionRunner:
    """Invokes local functions under the environment gate."""

    def __init__(self) -> None:
        self.gate = EnvironmentGate()

    def invoke(self, function: LocalFunction, event: dict[str, Any]) -> Invocation:
        context = function.context()
        started = time.perf_counter()
        with self.gate.enter(function):
            try:
                handler = function.load()
                result = handler(event, context)
                error: BaseException | None = None
            except Exception as caught:  # the Lambda service reports any handler error the same way
                result, error = None, caught
                print(
                    f"[{function.name}] {context.aws_request_id} handler raised "
                    f"{type(caught).__name__}: {caught}",
                    file=sys.stderr,
                )
        return Invocation(result, error, (time.perf_counter() - started) * 1000, context.aws_request_id)
