"""A configuration document read from a versioned S3 object: cached, single-flight, fail closed.

Both Lambdas decide with a JSON document an operator deploys (the vending policy, the exchange
configuration), each one object of the kernel's config bucket. Both need exactly the same
guarantees, so one store provides them:

- a fresh copy is fetched at most every ``cache_seconds`` (30 s by default), by one thread at a
  time (the lock: concurrent requests on a warm container share one fetch);
- the refresh is a conditional GET (``If-None-Match`` with the ETag of the last good document): an
  unchanged object answers 304 without a body and the parsed document is kept;
- what is cached is the *parsed and validated* document (parsing on every request would cost more
  than the fetch it replaces); a document that fails to parse counts exactly like a failed fetch;
- an object larger than :data:`kernel_access.contract.MAX_DOCUMENT_BYTES` is refused by the S3
  fetch before its body is read (:class:`DocumentTooLarge`), another failed load: no upload, however
  it was made, bounds the Lambda's memory and parse time by anything but that limit;
- after a failed attempt the next one waits ``retry_seconds`` (5 s), so an S3 outage does not turn
  every request into another S3 call — a retry storm against a throttled API;
- the last good document keeps serving for at most ``max_staleness`` seconds after it was
  *successfully* loaded (or confirmed unchanged); after that (or when nothing good was ever loaded)
  :meth:`get` raises :class:`DocumentUnavailable`, which each service turns into
  ``POLICY_LOAD_FAILED``. There is no built-in default document: no document, no access.

Why our own cache and not a library's: the staleness rule needs the time of the last *successful*
load on an injectable clock, the cached value is the parsed document, and the ETag sent must be the
one of the last *good* document (never of a newer invalid one, whose 304 would otherwise pass for
"still valid").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from kernel_access import contract

T = TypeVar("T")

DEFAULT_MAX_STALENESS = 300.0
DEFAULT_CACHE_SECONDS = 30.0
DEFAULT_RETRY_SECONDS = 5.0


class DocumentTooLarge(Exception):
    """The object is over the document size limit; it was refused without being read or parsed.

    ``size`` is the size S3 declared (``ContentLength``), or ``None`` when the body turned out
    longer than declared (only the first ``limit + 1`` bytes are ever read).
    """

    def __init__(self, size: int | None, limit: int) -> None:
        what = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"the object is {what}, over the document size limit of {limit} bytes")
        self.size = size
        self.limit = limit


class DocumentUnavailable(Exception):
    """No document fresh enough to decide with; ``cause`` says why (no content, no secrets)."""

    def __init__(self, name: str, cause: str) -> None:
        super().__init__(f"{name!r} unavailable: {cause}")
        self.name = name
        self.cause = cause


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """A validated document and when (store clock) it was successfully loaded."""

    document: T
    loaded_at: float
    #: The source's version tag of the document (S3 ETag), sent back on the next refresh.
    etag: str | None = None


@dataclass(frozen=True)
class DocumentStatus:
    """What ``/health`` reports: freshness, never content."""

    age_seconds: float | None
    #: True while a good document is loaded and within ``max_staleness``.
    available: bool
    #: Short description of the last load failure since the last success, if any.
    last_error: str | None


class S3Reader(Protocol):
    """What the store needs of a boto3 S3 client (no S3 type stubs are installed)."""

    def get_object(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Fetched:
    """A document as fetched: its bytes and the version tag the source gave them (an S3 ETag)."""

    body: str | bytes
    etag: str | None = None


#: A fetch: given the version tag of the last *good* document (``None`` when there is none or the
#: source has no tags), the current document, or ``None`` for "not modified since that version".
Fetch = Callable[[str | None], Fetched | None]


def s3_fetcher(bucket: str, key: str, s3_client: Callable[[], S3Reader]) -> Fetch:
    """Fetch ``s3://bucket/key`` with ``GetObject``; every call is a real request.

    With the ETag of the last good document the request is conditional (``If-None-Match``): an
    unchanged object answers 304 with no body, which is returned as ``None`` so the store keeps the
    document it has already parsed. Any other error (missing object or bucket, access denied,
    throttling, timeout) propagates and counts as a failed load.

    The size is bounded by :data:`kernel_access.contract.MAX_DOCUMENT_BYTES` (read at each fetch):
    an object whose ``ContentLength`` is larger is refused before a byte of its body is read, and
    at most one byte more than the limit is ever read, so a missing or wrong length cannot make the
    Lambda read more. Either refusal raises :class:`DocumentTooLarge`, a failed load like any other.
    """

    def fetch(etag: str | None) -> Fetched | None:
        from botocore.exceptions import ClientError

        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            request["IfNoneMatch"] = etag
        try:
            response = s3_client().get_object(**request)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if etag and (status == NOT_MODIFIED or error.response.get("Error", {}).get("Code") == "304"):
                return None
            raise
        limit = contract.MAX_DOCUMENT_BYTES
        stream = response["Body"]
        try:
            declared = response.get("ContentLength")
            if isinstance(declared, int) and declared > limit:
                raise DocumentTooLarge(declared, limit)
            body: bytes = stream.read(limit + 1)
            if len(body) > limit:
                raise DocumentTooLarge(None, limit)
        finally:
            stream.close()  # whatever is left of an over-limit body is never downloaded
        return Fetched(body, response.get("ETag"))

    return fetch


#: HTTP status of a conditional GET whose ``If-None-Match`` ETag is still current.
NOT_MODIFIED: Final = 304


class DocumentStore(Generic[T]):
    """Thread-safe accessor for the current parsed document (one per Lambda container)."""

    def __init__(
        self,
        name: str,
        fetch: Fetch,
        parse: Callable[[str | bytes], T],
        *,
        describe_error: Callable[[BaseException], str] | None = None,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not name:
            raise ValueError("name must not be empty")
        if max_staleness < 0 or cache_seconds < 0 or retry_seconds < 0:
            raise ValueError("max_staleness, cache_seconds and retry_seconds must not be negative")
        self.name = name
        self.max_staleness = max_staleness
        self.cache_seconds = cache_seconds
        self.retry_seconds = retry_seconds
        self._fetch = fetch
        self._parse = parse
        self._describe = describe_error or describe_exception
        self._clock = clock
        self._lock = threading.Lock()
        self._good: Loaded[T] | None = None
        self._raw: str | bytes | None = None
        self._last_attempt: float | None = None
        self._last_error: str | None = None

    def _attempt_due(self, now: float) -> bool:
        if self._last_attempt is None:
            return True
        wait = self.cache_seconds if self._last_error is None else min(self.retry_seconds, self.cache_seconds)
        return now - self._last_attempt >= wait

    def _load(self, now: float) -> None:
        self._last_attempt = now
        good = self._good
        try:
            # The ETag of the last *good* document: a 304 then means "the good one is still current".
            fetched = self._fetch(good.etag if good is not None else None)
            if fetched is None:
                if good is None:
                    raise RuntimeError("source answered 'not modified' but no document is loaded")
                document, raw, etag = good.document, self._raw, good.etag
            else:
                raw, etag = fetched.body, fetched.etag
                unchanged = good is not None and raw == self._raw
                document = good.document if unchanged and good is not None else self._parse(raw)
        except Exception as exc:  # any failure is a failed load, never an allow
            self._last_error = self._describe(exc)
        else:
            self._good, self._raw, self._last_error = Loaded(document, now, etag), raw, None

    def get(self) -> Loaded[T]:
        """The document to decide with; raises :class:`DocumentUnavailable` when the last good one
        is older than ``max_staleness`` (or there never was one)."""
        with self._lock:
            now = self._clock()
            if self._attempt_due(now):
                self._load(now)
            good = self._good
            if good is not None and now - good.loaded_at <= self.max_staleness:
                return good
            raise DocumentUnavailable(self.name, self._last_error or "nothing loaded")

    def last_good(self) -> Loaded[T] | None:
        """The last successfully loaded document, however old; never fetches (for ``/health``)."""
        with self._lock:
            return self._good

    def status(self) -> DocumentStatus:
        """Age and availability of the document in use; never fetches."""
        with self._lock:
            good = self._good
            if good is None:
                return DocumentStatus(age_seconds=None, available=False, last_error=self._last_error)
            age = self._clock() - good.loaded_at
            return DocumentStatus(
                age_seconds=age, available=age <= self.max_staleness, last_error=self._last_error
            )


def describe_exception(exc: BaseException) -> str:
    """A one-line description for logs and ``/health``: type and first line (AWS error messages
    name the operation and the error code; never the document)."""
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
