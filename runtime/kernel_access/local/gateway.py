"""An HTTP API (API Gateway v2) front-end on 127.0.0.1, built from the template's routes.

Each ``AWS::ApiGatewayV2::Api`` gets its own loopback port (a real API has its own host name). Each
``AWS::ApiGatewayV2::Route`` is served with the authorizer it declares:

* ``AWS_IAM`` - the SigV4 signature is verified with :mod:`kernel_access.local.sigv4` against the
  secret IAM (the in-process moto backend) holds for the calling access key; refusals are 403 with
  API Gateway's messages. With local IAM on (the default, :mod:`kernel_access.local.iam`), the
  caller's identity policies must also allow ``execute-api:Invoke`` on the request's ARN, else 403
  ``AccessDeniedException`` with AWS's "User: ... is not authorized to perform" message. A request
  that passes becomes ``requestContext.authorizer.iam``.
* ``JWT`` - the bearer token is validated against the local key of the issuer the authorizer names
  (:mod:`kernel_access.local.jwt_issuer`), issuer and audiences exactly as in the template; refusals
  are 401 ``Unauthorized``. A good token becomes ``requestContext.authorizer.jwt``.
* ``NONE`` - passed through.

``AWS_PROXY`` integrations invoke the function in-process with a payload-2.0 event and map its
payload-2.0 response back to HTTP; ``HTTP_PROXY`` integrations forward the request with the
integration's parameter mappings applied (``overwrite:header.x-...`` from ``$context.identity.*``).

Not emulated (documented in docs/local.md): stage throttling, CORS, custom domains, mutual TLS,
Lambda authorizers (``CUSTOM`` routes answer 500 with a message saying so).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from kernel_access.local.backend import CallerKey
from kernel_access.local.functions import FunctionRunner, LocalFunction
from kernel_access.local.iam import Caller, IamModel
from kernel_access.local.jwt_issuer import LocalIssuer, TokenRejected, claims_as_authorizer_context
from kernel_access.local.sigv4 import KnownCredential, SigV4Failure, SigV4Verifier
from kernel_access.local.template import Resolver

#: Lambda's synchronous invocation payload limit.
MAX_BODY_BYTES: Final = 6 * 1024 * 1024
_PARAM_RE: Final = re.compile(r"^\{([^}+]+)(\+?)\}$")
_ARN_IN_URI_RE: Final = re.compile(r"arn:aws[a-z-]*:lambda:[^/]+?:function:[^/:]+")

#: API Gateway's answers to authentication failures (status, x-amzn-ErrorType, message).
_SIGV4_REFUSALS: Final[Mapping[SigV4Failure, tuple[str, str]]] = {
    SigV4Failure.MISSING_AUTHORIZATION: ("ForbiddenException", "Forbidden"),
    SigV4Failure.MALFORMED_AUTHORIZATION: (
        "IncompleteSignatureException",
        "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
    ),
    SigV4Failure.MISSING_DATE: (
        "IncompleteSignatureException",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ),
    SigV4Failure.STALE_REQUEST: ("InvalidSignatureException", "Signature expired."),
    SigV4Failure.WRONG_SCOPE: (
        "InvalidSignatureException",
        "Credential should be scoped to a valid region and to the correct service: 'execute-api'.",
    ),
    SigV4Failure.UNKNOWN_ACCESS_KEY: (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    SigV4Failure.TOKEN_MISMATCH: (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
    SigV4Failure.BODY_HASH_MISMATCH: (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    ),
    SigV4Failure.SIGNATURE_MISMATCH: (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. Consult the service documentation for details.",
    ),
}


@dataclass(frozen=True)
class Integration:
    kind: str
    function: LocalFunction | None
    uri: str | None
    payload_version: str
    request_parameters: Mapping[str, str]
    timeout_ms: int


@dataclass(frozen=True)
class LocalRoute:
    route_key: str
    method: str
    path: str
    authorization: str
    issuer: LocalIssuer | None
    scopes: tuple[str, ...]
    integration: Integration | None

    def match(self, method: str, path: str) -> dict[str, str] | None:  # noqa: PLR0911 - one exit per rule
        """Path parameters when this route serves ``method path``, else None."""
        if self.route_key == "$default":
            return {}
        if self.method not in ("ANY", method):
            return None
        pattern_parts = [p for p in self.path.split("/") if p]
        parts = [p for p in path.split("/") if p]
        params: dict[str, str] = {}
        for index, pattern in enumerate(pattern_parts):
            param = _PARAM_RE.match(pattern)
            if param and param.group(2):  # greedy {proxy+}: the rest of the path, at least one segment
                if index >= len(parts):
                    return None
                params[param.group(1)] = "/".join(parts[index:])
                return params
            if index >= len(parts):
                return None
            if param:
                params[param.group(1)] = unquote(parts[index])
            elif pattern != parts[index]:
                return None
        return params if len(parts) == len(pattern_parts) else None

    @property
    def specificity(self) -> tuple[int, int, int]:
        """API Gateway prefers the most specific match: literal segments, then method, then greedy last."""
        parts = [p for p in self.path.split("/") if p]
        literals = sum(1 for p in parts if not _PARAM_RE.match(p))
        greedy = any(p.endswith("+}") for p in parts)
        return (0 if self.route_key == "$default" else 1, literals * 2 - greedy, self.method != "ANY")


@dataclass
class LocalApi:
    logical_id: str
    name: str
    api_id: str
    stage: str
    routes: list[LocalRoute]
    port: int = 0
    server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return base if self.stage == "$default" else f"{base}/{self.stage}"

    def find(self, method: str, path: str) -> tuple[LocalRoute, dict[str, str]] | None:
        best: tuple[LocalRoute, dict[str, str]] | None = None
        for route in self.routes:
            params = route.match(method, path)
            if params is not None and (best is None or route.specificity > best[0].specificity):
                best = (route, params)
        return best


def apis_from_template(
    resolver: Resolver,
    functions: Mapping[str, LocalFunction],
    issuer_factory: Callable[[str, str, tuple[str, ...], str], LocalIssuer],
) -> list[LocalApi]:
    """Every HTTP API of the template with its routes, authorizers and integrations."""
    template = resolver.template
    function_by_arn = {f.arn: f for f in functions.values()}
    issuers: dict[str, LocalIssuer] = {}
    apis: dict[str, LocalApi] = {}
    for logical_id, resource in template.of_type("AWS::ApiGatewayV2::Api").items():
        if resource.get("Properties", {}).get("ProtocolType", "HTTP") != "HTTP":
            continue
        apis[logical_id] = LocalApi(
            logical_id=logical_id,
            name=str(resolver.physical_name(logical_id)),
            api_id=resolver.api_id(logical_id),
            stage="$default",
            routes=[],
        )
    for stage_id, stage in template.of_type("AWS::ApiGatewayV2::Stage").items():
        props = stage.get("Properties", {})
        api_ref = props.get("ApiId", {}).get("Ref") if isinstance(props.get("ApiId"), Mapping) else None
        if api_ref in apis:
            name = str(resolver.resolve(props.get("StageName", "$default"), path=f"{stage_id}.StageName"))
            if apis[api_ref].stage == "$default" or name == "$default":
                apis[api_ref].stage = name if apis[api_ref].stage == "$default" else apis[api_ref].stage
    for route_id, resource in template.of_type("AWS::ApiGatewayV2::Route").items():
        raw = resource.get("Properties", {})
        api_ref = raw.get("ApiId", {}).get("Ref") if isinstance(raw.get("ApiId"), Mapping) else None
        if api_ref not in apis:
            continue
        route_key = str(resolver.resolve(raw["RouteKey"], path=f"{route_id}.RouteKey"))
        method, _, path = route_key.partition(" ")
        authorization = str(raw.get("AuthorizationType", "NONE"))
        issuer: LocalIssuer | None = None
        authorizer_ref = raw.get("AuthorizerId", {})
        if authorization == "JWT" and isinstance(authorizer_ref, Mapping) and "Ref" in authorizer_ref:
            authorizer_id = str(authorizer_ref["Ref"])
            if authorizer_id not in issuers:
                auth_props = resolver.resource_properties(authorizer_id)
                jwt_config = auth_props.get("JwtConfiguration", {})
                sources = auth_props.get("IdentitySource", ["$request.header.Authorization"])
                issuers[authorizer_id] = issuer_factory(
                    str(auth_props.get("Name", authorizer_id)),
                    str(jwt_config.get("Issuer", "")),
                    tuple(str(a) for a in jwt_config.get("Audience", [])),
                    str(sources[0]),
                )
            issuer = issuers[authorizer_id]
        integration = _integration(resolver, raw.get("Target"), function_by_arn, route_id)
        apis[api_ref].routes.append(
            LocalRoute(
                route_key=route_key,
                method=method.upper() if route_key != "$default" else "ANY",
                path=path,
                authorization=authorization,
                issuer=issuer,
                scopes=tuple(str(s) for s in raw.get("AuthorizationScopes", [])),
                integration=integration,
            )
        )
    return [api for api in apis.values() if api.routes]


def _integration(
    resolver: Resolver, target: Any, function_by_arn: Mapping[str, LocalFunction], route_id: str
) -> Integration | None:
    if target is None:
        return None
    ref: str | None = None
    if isinstance(target, Mapping) and "Fn::Join" in target:
        for part in target["Fn::Join"][1]:
            if isinstance(part, Mapping) and "Ref" in part:
                ref = str(part["Ref"])
    elif isinstance(target, str) and target.startswith("integrations/"):
        ref = target.split("/", 1)[1]
    if ref is None or ref not in resolver.template.resources:
        return None
    props = resolver.resource_properties(ref)
    kind = str(props.get("IntegrationType", "AWS_PROXY"))
    uri = str(props.get("IntegrationUri", ""))
    function: LocalFunction | None = None
    if kind == "AWS_PROXY":
        match = _ARN_IN_URI_RE.search(uri)
        function = function_by_arn.get(match.group(0)) if match else None
        if function is None:
            print(
                f"kernel-access local: route {route_id}: integration target {uri!r} is not a function "
                "of this template; the route will answer 500",
                file=sys.stderr,
            )
    if kind == "AWS_PROXY" and str(props.get("PayloadFormatVersion", "2.0")) != "2.0":
        print(
            f"kernel-access local: route {route_id}: payload format {props.get('PayloadFormatVersion')} "
            "is not emulated (only 2.0); the route will answer 500",
            file=sys.stderr,
        )
    return Integration(
        kind=kind,
        function=function,
        uri=uri,
        payload_version=str(props.get("PayloadFormatVersion", "2.0")),
        request_parameters={str(k): str(v) for k, v in props.get("RequestParameters", {}).items()},
        timeout_ms=int(props.get("TimeoutInMillis", 30000)),
    )


# --------------------------------------------------------------------------------------------------
# The request pipeline
# --------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _message(status: int, message: str, *, error_type: str | None = None, **extra: str) -> Reply:
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    headers.extend(extra.items())
    return Reply(status, headers, json.dumps({"message": message}).encode())


def new_request_id() -> str:
    # API Gateway request ids look like "Hp3o3gGKIAMEV9Q=": 14 url-safe characters and "=".
    return base64.b64encode(secrets.token_bytes(10)).decode()[:14].replace("/", "_").replace("+", "-") + "="


class Gateway:
    """Serves a set of local APIs; one ThreadingHTTPServer per API."""

    def __init__(
        self,
        apis: list[LocalApi],
        *,
        account_id: str,
        region: str,
        lookup_key: Callable[[str], CallerKey | None],
        principal_org_id: str | None,
        runner: FunctionRunner,
        log: Callable[[str], None] | None = None,
        iam: IamModel | None = None,
        partition: str = "aws",
    ) -> None:
        self.apis = apis
        #: When set, IAM routes also need ``execute-api:Invoke`` in the caller's identity policies.
        self.iam = iam
        self.partition = partition
        self.account_id = account_id
        self.region = region
        self._lookup_key = lookup_key
        self._principal_org_id = principal_org_id
        self.runner = runner
        self._log = log
        self._callers: dict[str, CallerKey] = {}
        self._verifier = SigV4Verifier(self._known_credential, region=region)
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self, ports: Mapping[str, int] | None = None) -> None:
        for api in self.apis:
            server = _Server(("127.0.0.1", (ports or {}).get(api.logical_id, 0)), _Handler)
            server.gateway = self
            server.api = api
            api.server = server
            api.port = int(server.server_address[1])
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"local-{api.api_id}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for api in self.apis:
            if api.server is not None:
                api.server.shutdown()
                api.server.server_close()
                api.server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self.runner.close()

    # ---- authorizers -------------------------------------------------------------------------------

    def _known_credential(self, access_key_id: str) -> KnownCredential | None:
        key = self._lookup_key(access_key_id)
        if key is None:
            return None
        if key.expiration is not None and key.expiration <= datetime.now(UTC):
            return None
        self._callers[access_key_id] = key
        return KnownCredential(key.secret_access_key, key.session_token, key.user_arn, key.account_id)

    def iam_context(self, access_key_id: str, source: CallerKey) -> dict[str, Any]:
        """``requestContext.authorizer`` as the IAM authorizer fills it for this access key."""
        org_id = self.iam.org_of(source.account_id) if self.iam is not None else self._principal_org_id
        return {
            "iam": {
                "accessKey": access_key_id,
                "accountId": source.account_id,
                "callerId": source.user_id,
                "cognitoIdentity": None,
                "principalOrgId": org_id,
                "userArn": source.user_arn,
                "userId": source.user_id,
            }
        }

    def execute_api_arn(self, api: LocalApi, method: str, path: str) -> str:
        """The ARN ``execute-api:Invoke`` is authorized on: ``arn:...:{api-id}/{stage}/{METHOD}{path}``."""
        return (
            f"arn:{self.partition}:execute-api:{self.region}:{self.account_id}:"
            f"{api.api_id}/{api.stage}/{method}{path}"
        )

    def authorize(  # noqa: PLR0911 - one exit per refusal API Gateway can send
        self,
        route: LocalRoute,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        resource: str | None = None,
        source_ip: str | None = None,
    ) -> tuple[dict[str, Any] | None, Reply | None]:
        """The authorizer context for the event, or the refusal API Gateway would send.

        ``resource``: the request's execute-api ARN; with local IAM on, an ``AWS_IAM`` route also
        needs the caller's identity policies to allow ``execute-api:Invoke`` on it.
        """
        if route.authorization == "AWS_IAM":
            result = self._verifier.verify(method=method, path=target, headers=headers, body=body)
            if not result.ok or result.access_key_id is None:
                assert result.failure is not None
                error_type, message = _SIGV4_REFUSALS[result.failure]
                return None, _message(403, message, error_type=error_type)
            caller = self._callers.get(result.access_key_id) or self._lookup_key(result.access_key_id)
            if caller is None:  # pragma: no cover - the verifier just found it
                return None, _message(403, "Forbidden", error_type="ForbiddenException")
            if self.iam is not None:
                decision = self.iam.invoke(
                    Caller.from_arn(caller.user_arn, user_id=caller.user_id),
                    resource or "",
                    api_account=self.account_id,
                    source_ip=source_ip,
                )
                if not decision.allowed:
                    return None, _message(403, decision.message, error_type="AccessDeniedException")
            return self.iam_context(result.access_key_id, caller), None
        if route.authorization == "JWT":
            if route.issuer is None:
                return None, _message(500, "Internal Server Error")
            source = route.issuer.identity_source.removeprefix("$request.header.").lower()
            token = next((v for k, v in headers if k.lower() == source), "").strip()
            if token.lower().startswith("bearer "):
                token = token[7:].strip()
            if not token:
                return None, _message(401, "Unauthorized")
            try:
                claims = route.issuer.validate(token)
            except TokenRejected as error:
                description = str(error).replace('"', "'")
                return None, _message(
                    401,
                    "Unauthorized",
                    **{"www-authenticate": f'Bearer error="invalid_token" error_description="{description}"'},
                )
            granted = str(claims.get("scope", claims.get("scp", ""))).split()
            if route.scopes and not set(route.scopes) & set(granted):
                return None, _message(403, "Forbidden")
            return {"jwt": {"claims": claims_as_authorizer_context(claims), "scopes": granted or None}}, None
        if route.authorization == "NONE":
            return None, None
        return None, _message(500, f"authorization type {route.authorization} is not emulated locally")

    # ---- dispatch ---------------------------------------------------------------------------------

    def handle(
        self,
        *,
        api: LocalApi,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> Reply:
        request_id = new_request_id()
        started = time.perf_counter()
        reply, route_key = self._handle(
            api=api,
            method=method,
            target=target,
            headers=headers,
            body=body,
            source_ip=source_ip,
            request_id=request_id,
        )
        reply.headers.append(("apigw-requestid", request_id))
        if self._log is not None:
            self._log(
                json.dumps(
                    {
                        "requestId": request_id,
                        "api": api.name,
                        "routeKey": route_key,
                        "status": reply.status,
                        "responseLatency": round((time.perf_counter() - started) * 1000, 1),
                    },
                    separators=(",", ":"),
                )
            )
        return reply

    def _handle(  # noqa: PLR0911 - one exit per API Gateway outcome
        self,
        *,
        api: LocalApi,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
    ) -> tuple[Reply, str]:
        split = urlsplit(target)
        path = split.path or "/"
        if api.stage != "$default":
            prefix = f"/{api.stage}"
            if path != prefix and not path.startswith(prefix + "/"):
                return _message(404, "Not Found"), "-"
            path = path[len(prefix) :] or "/"
        found = api.find(method, path)
        if found is None:
            return _message(404, "Not Found"), "-"
        route, path_params = found
        if len(body) > MAX_BODY_BYTES:
            return _message(413, "Request Entity Too Large"), route.route_key
        authorizer, refusal = self.authorize(
            route,
            method,
            target,
            headers,
            body,
            resource=self.execute_api_arn(api, method, path),
            source_ip=source_ip,
        )
        if refusal is not None:
            return refusal, route.route_key
        integration = route.integration
        if integration is None:
            return _message(500, "Internal Server Error"), route.route_key
        event = self.build_event(
            api=api,
            route=route,
            method=method,
            raw_path=split.path or "/",
            raw_query=split.query,
            headers=headers,
            body=body,
            source_ip=source_ip,
            request_id=request_id,
        )
        event["pathParameters"] = path_params or None
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        if integration.kind == "HTTP_PROXY":
            reply = self._proxy(
                integration=integration,
                method=method,
                raw_query=split.query,
                path_params=path_params,
                headers=headers,
                body=body,
                event=event,
            )
            return reply, route.route_key
        if integration.function is None or integration.payload_version != "2.0":
            return _message(500, "Internal Server Error"), route.route_key
        if not event.get("pathParameters"):
            event.pop("pathParameters")
        invocation = self.runner.invoke(integration.function, event)
        if invocation.error is not None:
            return _message(500, "Internal Server Error"), route.route_key
        return map_response(invocation.result), route.route_key

    def build_event(
        self,
        *,
        api: LocalApi,
        route: LocalRoute,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
    ) -> dict[str, Any]:
        """A payload-2.0 event as HTTP APIs send it to a Lambda proxy integration."""
        merged: dict[str, str] = {}
        cookies: list[str] = []
        user_agent = ""
        host = f"127.0.0.1:{api.port}"
        for name, value in headers:
            key = name.lower()
            if key == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            if key == "host":
                host = value
            if key == "user-agent":
                user_agent = value
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        merged.setdefault("x-forwarded-for", source_ip)
        merged.setdefault("x-forwarded-proto", "http")
        merged.setdefault("x-forwarded-port", str(api.port))
        merged["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = datetime.now(UTC)
        try:
            text_body: str | None = body.decode() if body else None
            encoded = False
        except UnicodeDecodeError:
            text_body, encoded = base64.b64encode(body).decode(), True
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": merged,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": api.api_id,
                "domainName": host,
                "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
                "http": {
                    "method": method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": user_agent,
                },
                "requestId": request_id,
                "routeKey": route.route_key,
                "stage": api.stage,
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": encoded,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if text_body is not None:
            event["body"] = text_body
        return event

    def _proxy(
        self,
        *,
        integration: Integration,
        method: str,
        raw_query: str,
        path_params: Mapping[str, str],
        headers: list[tuple[str, str]],
        body: bytes,
        event: Mapping[str, Any],
    ) -> Reply:
        """HTTP_PROXY: forward with the integration's parameter mappings applied."""
        url = integration.uri or ""
        for name, value in path_params.items():
            url = url.replace("{" + name + "}", value).replace("{" + name + "+}", value)
        if raw_query:
            url += ("&" if "?" in url else "?") + raw_query
        outgoing = {k.lower(): v for k, v in headers if k.lower() not in ("host", "content-length")}
        identity = event["requestContext"].get("authorizer", {}).get("iam", {})
        context = {
            "$context.identity.userArn": identity.get("userArn") or "",
            "$context.identity.accountId": identity.get("accountId") or "",
            "$context.identity.caller": identity.get("callerId") or "",
            "$context.identity.user": identity.get("userId") or "",
            "$context.identity.sourceIp": event["requestContext"]["http"]["sourceIp"],
            "$context.requestId": event["requestContext"]["requestId"],
        }
        for mapping, value in integration.request_parameters.items():
            action, _, target = mapping.partition(":")
            if not target.startswith("header."):
                continue
            header = target.removeprefix("header.").lower()
            resolved = context.get(value, value)
            if action == "overwrite":
                outgoing[header] = resolved
            elif action == "append":
                outgoing[header] = f"{outgoing[header]},{resolved}" if header in outgoing else resolved
            elif action == "remove":
                outgoing.pop(header, None)
        request = urllib.request.Request(url, data=body or None, method=method, headers=outgoing)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=integration.timeout_ms / 1000) as response:  # noqa: S310
                return Reply(response.status, list(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, list(error.headers.items()), error.read())
        except (urllib.error.URLError, TimeoutError, OSError):
            return _message(503, "Service Unavailable")


def map_response(result: Any) -> Reply:
    """A payload-2.0 Lambda response as HTTP, following API Gateway's rules.

    A dict with ``statusCode`` is a full response; anything else that serialises is a 200 JSON body.
    A malformed response is a 500, as API Gateway answers it.
    """
    if isinstance(result, Mapping) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            return _message(500, "Internal Server Error")
        headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(name), str(v)) for v in values)
        headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or [])
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(str(raw))
        else:
            body = str(raw).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return Reply(status, headers, body)
    try:
        body = (result if isinstance(result, str) else json.dumps(result)).encode()
    except (TypeError, ValueError):
        return _message(500, "Internal Server Error")
    return Reply(200, [("Content-Type", "application/json")], body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    gateway: Gateway
    api: LocalApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per response (flushed by the base class after each request) and no Nagle:
    # otherwise headers and body leave in two segments and the client's delayed ACK adds ~40 ms to
    # every kept-alive request (measured: single-client p50 84 ms -> 48 ms on /credentials).
    wbufsize = 65536
    disable_nagle_algorithm = True
    server: _Server
    server_version = "kernel-access-local"
    sys_version = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.gateway.handle(
            api=self.server.api,
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        self.send_response(reply.status)
        sent = {k.lower() for k, _ in reply.headers}
        for name, value in reply.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "server"):
                self.send_header(name, value)
        if "date" not in sent:
            self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def send_response(self, code: int, message: str | None = None) -> None:
        # Skip BaseHTTPRequestHandler's Server/Date headers: _serve sets Date itself.
        self.log_request(code)
        self.send_response_only(code, message)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line; the gateway writes its own access log."""
