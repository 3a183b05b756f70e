"""The one way kernel-access Lambdas build AWS clients: bounded retries, bounded timeouts, shared.

Why one factory: a client built with ``boto3.client()`` defaults to legacy retries and 60 s
timeouts, so during a throttling event or a slow endpoint a request can sit in a Lambda for minutes
and multiply load on the very service that is struggling. Every handler (vending and exchange) gets
its clients from :class:`Clients`: two attempts in total and 3 s to connect and to read, created
lazily (a cold start pays only for the clients it uses) on one process-wide botocore session (its
loader caches parsed service models, so later clients are cheap).
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_codeartifact import CodeArtifactClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

    from kernel_access.document_store import S3Reader
    from kernel_access.vending.sts import AssumedCredentials

#: Two attempts in total (the first and one retry; botocore's ``max_attempts`` would count retries
#: only), in standard mode.
CLIENT_RETRIES: Final = {"total_max_attempts": 2, "mode": "standard"}
#: Seconds to connect and to read: well inside the Lambdas' timeouts.
CLIENT_TIMEOUT_SECONDS: Final = 3

_botocore_session: Any = None
_botocore_session_lock = threading.Lock()


def shared_botocore_session() -> Any:
    """One botocore session per process (its loader caches the parsed service models)."""
    global _botocore_session  # noqa: PLW0603 - process-wide cache on purpose
    if _botocore_session is None:
        with _botocore_session_lock:
            if _botocore_session is None:
                import botocore.session

                _botocore_session = botocore.session.get_session()
    return _botocore_session


_boto3_sessions: dict[str | None, Any] = {}
_boto3_sessions_lock = threading.Lock()


def shared_boto3_session(region: str | None = None) -> Any:
    """One boto3 session per process and region, on the shared botocore session.

    boto3 registers its resource and S3 transfer hooks on the botocore session each time a boto3
    session is built over it; two boto3 sessions on one botocore session register them twice and
    the second S3 client fails ("Cannot inject class attribute"). So every ``Clients`` shares one.
    """
    session = _boto3_sessions.get(region)
    if session is None:
        with _boto3_sessions_lock:
            session = _boto3_sessions.get(region)
            if session is None:
                import boto3

                session = boto3.session.Session(
                    region_name=region, botocore_session=shared_botocore_session()
                )
                _boto3_sessions[region] = session
    return session


def client_config() -> Any:
    """The botocore ``Config`` every kernel-access client is built with."""
    from botocore.config import Config

    return Config(
        retries=dict(CLIENT_RETRIES),  # type: ignore[arg-type]
        connect_timeout=CLIENT_TIMEOUT_SECONDS,
        read_timeout=CLIENT_TIMEOUT_SECONDS,
    )


class Clients:
    """Lazily created, container-wide boto3 clients with bounded retries and timeouts."""

    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._session: Any = None

    def _boto3_session(self) -> Any:
        return shared_boto3_session(self._region)

    def client(self, service: str) -> Any:
        """The container's client for ``service`` (created on first use)."""
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    if self._session is None:
                        self._session = self._boto3_session()
                    client = self._session.client(service, config=client_config())
                    self._clients[service] = client
        return client

    def sts(self) -> STSClient:
        client: STSClient = self.client("sts")
        return client

    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self.client("dynamodb")
        return client

    def s3(self) -> S3Reader:
        client: S3Reader = self.client("s3")
        return client

    def ssm(self) -> SSMClient:
        client: SSMClient = self.client("ssm")
        return client

    def codeartifact_for(self, credentials: AssumedCredentials) -> CodeArtifactClient:
        """A CodeArtifact client signing with a minting-role session (one per mint: rare)."""
        client: CodeArtifactClient = self._boto3_session().client(
            "codeartifact",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=client_config(),
        )
        return client


@cache
def default_clients() -> Clients:
    """The process-wide :class:`Clients` (region from the Lambda environment)."""
    return Clients()


def reset_for_tests() -> None:
    """Forget the process-wide sessions and clients (they cache the credentials and endpoints of
    the environment they were first built in). A Lambda process never needs this: its environment
    does not change. Benchmarks and tests that host several functions in one process do."""
    global _botocore_session  # noqa: PLW0603 - the process-wide cache this resets
    with _botocore_session_lock, _boto3_sessions_lock:
        _botocore_session = None
        _boto3_sessions.clear()
    default_clients.cache_clear()
