"""The vending policy, loaded through the shared :class:`~kernel_access.document_store.DocumentStore`.

The store's guarantees (cache, single flight, retry backoff, bounded staleness, fail closed) are
the document store's; this module only names them for the policy: what is parsed
(:func:`parse_policy`), what a failure is called (:class:`PolicyUnavailable`, answered with
``POLICY_LOAD_FAILED``), and what ``/health`` reports (version and freshness, no content).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kernel_access.contract import ErrorCode
from kernel_access.document_store import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_MAX_STALENESS,
    DEFAULT_RETRY_SECONDS,
    DocumentStore,
    DocumentUnavailable,
    S3Reader,
    describe_exception,
    s3_fetcher,
)
from kernel_access.policy.document import Policy
from kernel_access.policy.model import PolicyValidationError
from kernel_access.policy.parser import parse_policy

__all__ = [
    "DEFAULT_CACHE_SECONDS",
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_RETRY_SECONDS",
    "LoadedPolicy",
    "PolicyStatus",
    "PolicyStore",
    "PolicyUnavailable",
]


class PolicyUnavailable(Exception):
    """No policy fresh enough to decide with: deny with ``POLICY_LOAD_FAILED``."""

    error_code = ErrorCode.POLICY_LOAD_FAILED


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and when (store clock) it was successfully loaded."""

    policy: Policy
    loaded_at: float
    version: str


@dataclass(frozen=True)
class PolicyStatus:
    """What ``/health`` reports: no policy content, just version and freshness."""

    version: str | None
    age_seconds: float | None
    #: True while a good policy is loaded and within ``max_staleness``.
    available: bool
    #: Description of the last load failure since the last success, if any.
    last_error: str | None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PolicyValidationError):
        return f"invalid policy document ({len(exc.errors)} error(s))"
    return describe_exception(exc)


class PolicyStore:
    """Thread-safe accessor for the current policy (one per Lambda container), read from the
    object ``s3://bucket/key``.

    ``s3_client`` builds the S3 client on first fetch. Default: the container's bounded client
    (``kernel_access.aws_clients.default_clients().s3``).
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        s3_client: Callable[[], S3Reader] | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        if not bucket or not key:
            raise ValueError("bucket and key must not be empty")
        self.location = f"s3://{bucket}/{key}"
        self._s3_client = s3_client
        self._documents: DocumentStore[Policy] = DocumentStore(
            self.location,
            s3_fetcher(bucket, key, self._client),
            parse_policy,
            describe_error=_describe,
            max_staleness=max_staleness,
            cache_seconds=cache_seconds,
            retry_seconds=retry_seconds,
            clock=clock,
        )
        self.max_staleness = max_staleness
        self.cache_seconds = cache_seconds
        self.retry_seconds = retry_seconds
        # One LoadedPolicy per successful load, so warm requests share one object.
        self._wrapped: tuple[object, LoadedPolicy] | None = None

    def _client(self) -> S3Reader:
        if self._s3_client is None:
            # Resolved lazily: building a boto3 client at import time would slow every cold start.
            from kernel_access.aws_clients import default_clients

            self._s3_client = default_clients().s3
        return self._s3_client()

    def get(self) -> LoadedPolicy:
        """The policy to decide with. Raises :class:`PolicyUnavailable` when the last good
        policy is older than ``max_staleness`` (or there never was one)."""
        try:
            loaded = self._documents.get()
        except DocumentUnavailable as exc:
            raise PolicyUnavailable(f"policy {self.location!r} unavailable: {exc.cause}") from None
        wrapped = self._wrapped
        if wrapped is None or wrapped[0] is not loaded:
            policy = loaded.document
            wrapped = (
                loaded,
                LoadedPolicy(policy=policy, loaded_at=loaded.loaded_at, version=policy.version),
            )
            self._wrapped = wrapped
        return wrapped[1]

    def status(self) -> PolicyStatus:
        """Version and age of the policy in use, for ``/health``; never fetches."""
        status = self._documents.status()
        good = self._documents.last_good()
        return PolicyStatus(
            version=good.document.version if good is not None else None,
            age_seconds=status.age_seconds,
            available=status.available,
            last_error=status.last_error,
        )
