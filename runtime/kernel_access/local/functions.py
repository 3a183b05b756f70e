"""Run the template's Lambda functions locally, each with its own environment and credentials.

A Lambda function sees (1) the environment variables its template sets, (2) the standard variables
the Lambda service sets (``AWS_LAMBDA_FUNCTION_NAME``, region, ...), and (3) credentials of a session of
its execution role. Locally the same holds: template variables are resolved to the local resource
names, credentials come from assuming the function's role on the local STS, and
``AWS_ENDPOINT_URL`` sends every boto3 call of the handler to the local moto server.

Invocations run in execution environments as Lambda's do: worker processes
(:mod:`kernel_access.local.worker`), each started with its function's environment, each serving one
invocation at a time and kept warm for the next; concurrent requests get more environments, up to a
per-function limit (``--concurrency``, default 4), beyond which requests queue (Lambda would throttle
at the account's limit instead). Why processes and not threads: handlers keep per-invocation state in
module globals, as Lambda allows (the Powertools resolver's ``app.current_event`` is one), and
environment variables are process-wide; two invocations in one process would read each other's
requests. The e2e load test caught exactly that (an audit record carrying another request's id) in an
earlier, threaded version.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import queue
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Mapping
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
    """The function could not be loaded, failed, timed out or crashed (as Lambda would report it)."""


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
    service_endpoints: Mapping[str, str] | None = None,
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
    # Services moto lacks get their own local stand-in (botocore's per-service endpoint variables).
    for service, url in (service_endpoints or {}).items():
        env[f"AWS_ENDPOINT_URL_{service.upper()}"] = url
    env.update(overrides or {})
    return env


@dataclass
class Invocation:
    """The outcome of one invocation: the handler's return value or the error it raised."""

    result: Any
    error: BaseException | None
    duration_ms: float
    request_id: str


#: Seconds an environment may take to import its handler (Lambda's init phase allows 10 s; a cold
#: Python start on a busy laptop is slower than Lambda's, hence the margin).
INIT_TIMEOUT: Final = 60.0
#: Default number of concurrent execution environments per function.
DEFAULT_CONCURRENCY: Final = 4


class ExecutionEnvironment:
    """One worker process (``kernel_access.local.worker``) serving one function, one call at a time."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        self._replies: queue.Queue[str | None] = queue.Queue()
        #: Set once the process crashed, hung or closed its pipe: never reused, even before it is reaped.
        self._broken = False
        # This interpreter running our own worker module (fixed argv).
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernel_access.local.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=function.environment,
            text=True,
            encoding="utf-8",
        )
        threading.Thread(target=self._read, name=f"env-{function.logical_id}", daemon=True).start()
        spec = {
            "logical_id": function.logical_id,
            "name": function.name,
            "arn": function.arn,
            "handler": function.handler,
            "timeout": function.timeout,
            "memory": function.memory,
            "runtime": function.runtime,
            "inline_code": function.inline_code,
        }
        ready = self._exchange({"function": spec}, INIT_TIMEOUT)
        if "error" in ready:
            self.close()
            raise FunctionError(f"{function.logical_id}: init failed: {_describe(ready['error'])}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(None)  # EOF: the process is gone

    def _exchange(self, message: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.process.stdin.flush()
        except OSError as error:
            self._broken = True
            raise FunctionError(f"execution environment of {self.function.name} is gone") from error
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self._broken = True
            self.kill()  # Lambda stops an environment whose invocation timed out
            raise FunctionError(f"Task timed out after {timeout:.2f} seconds") from None
        if line is None:
            self._broken = True
            raise FunctionError(f"execution environment of {self.function.name} exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    @property
    def alive(self) -> bool:
        return not self._broken and self.process.poll() is None

    def invoke(self, event: Mapping[str, Any], request_id: str) -> Any:
        """The handler's result; raises FunctionError for a handler error, timeout or crash."""
        deadline = time.time() + self.function.timeout
        reply = self._exchange(
            {"event": event, "request_id": request_id, "deadline": deadline}, self.function.timeout
        )
        if "error" in reply:
            raise FunctionError(_describe(reply["error"]))
        return reply.get("result")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # EOF ends the worker's loop
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _describe(error: Any) -> str:
    if isinstance(error, Mapping):
        return f"{error.get('type', 'Error')}: {error.get('message', '')}"
    return str(error)


class FunctionPool:
    """Up to ``concurrency`` environments of one function, created on demand and reused (warm)."""

    def __init__(self, function: LocalFunction, concurrency: int) -> None:
        self.function = function
        self.concurrency = max(1, concurrency)
        self._idle: list[ExecutionEnvironment] = []
        self._count = 0
        self._closed = False
        self._available = threading.Condition()
        self.cold_starts = 0

    def _acquire(self) -> ExecutionEnvironment | None:
        """An idle environment, or None when the caller should start one (a slot is reserved)."""
        with self._available:
            while True:
                if self._closed:
                    raise FunctionError("the local kernel is stopping")
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive:
                        return environment
                    self._count -= 1
                if self._count < self.concurrency:
                    self._count += 1
                    return None
                self._available.wait()

    def _release(self, environment: ExecutionEnvironment | None) -> None:
        with self._available:
            if environment is not None and environment.alive and not self._closed:
                self._idle.append(environment)
            else:
                self._count -= 1
                if environment is not None:
                    threading.Thread(target=environment.close, daemon=True).start()
            self._available.notify()

    def invoke(self, event: Mapping[str, Any], request_id: str) -> Any:
        environment = self._acquire()
        try:
            if environment is None:
                self.cold_starts += 1
                environment = ExecutionEnvironment(self.function)
            return environment.invoke(event, request_id)
        finally:
            self._release(environment)

    def close(self) -> None:
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._available.notify_all()
        for environment in idle:
            environment.close()


class FunctionRunner:
    """Invokes local functions, each in its own pool of execution environments (worker processes)."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.concurrency = concurrency
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()

    def pool(self, function: LocalFunction) -> FunctionPool:
        with self._lock:
            if function.logical_id not in self._pools:
                self._pools[function.logical_id] = FunctionPool(function, self.concurrency)
            return self._pools[function.logical_id]

    def invoke(self, function: LocalFunction, event: dict[str, Any]) -> Invocation:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            result, error = self.pool(function).invoke(event, request_id), None
        except FunctionError as caught:
            result, error = None, caught
            print(f"[{function.name}] {request_id} {caught}", file=sys.stderr, flush=True)
        return Invocation(result, error, (time.perf_counter() - started) * 1000, request_id)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()
