"""The one service object a Lambda container keeps between invocations, built on first use.

Both API handlers build their service (boto3 clients, policy cache, token caches) on the first
request rather than at import — the import is the cold start's init phase, which should load
nothing a request does not need yet — and reuse it on warm invocations. Tests replace it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by ``build`` on the first :meth:`get` (thread-safe, once until :meth:`reset`)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value, built now if it was not; a failed build is retried by the next call."""
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build()
        return value

    def reset(self, value: T | None = None) -> None:
        """Drop (or replace) the value so the next :meth:`get` rebuilds it."""
        with self._lock:
            self._value = value
