"""Faults a test asks for: failures, dropped or truncated responses, delays, rate limits.

Faults are queued in the order they were asked for. Each has a ``count`` and an optional
method/path filter; a request uses up one count of the first fault that matches it at each
stage of handling (see ``FaultStage``).
"""

from __future__ import annotations

import collections
import enum
import fnmatch
import math
import threading
import time
from typing import Callable, Optional, Union

import attrs

#: ``Retry-After`` as seconds or as an HTTP date (or any raw header text).
RetryAfter = Union[int, float, str]


class FaultKind(str, enum.Enum):
    FAIL = "fail"
    DROP = "drop"
    TRUNCATE = "truncate"
    DELAY = "delay"


class FaultStage(str, enum.Enum):
    """When a fault strikes, in the order a request meets them."""

    #: Right after the request line and headers, before the body is read.
    ON_HEADERS = "on_headers"
    #: After the whole request was read, before Asana would look at it.
    BEFORE_HANDLING = "before_handling"
    #: After the request was handled (a create *did* create the webhook).
    AFTER_HANDLING = "after_handling"


def format_retry_after(value: RetryAfter) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"retry_after must be a non-negative number or a string, not {value!r}")
    return str(math.ceil(value))


def normalize_path(path: str) -> str:
    """Filters accept ``/webhooks`` or ``/api/1.0/webhooks``; both mean the same route."""
    if path.startswith("/api/1.0"):
        path = path[len("/api/1.0") :]
    return "/" + path.strip("/")


@attrs.define
class Fault:
    kind: FaultKind
    stage: FaultStage
    remaining: int
    method: Optional[str] = None
    path: Optional[str] = None
    status: int = 0
    body: Optional[bytes] = attrs.field(default=None, repr=False)
    content_type: Optional[str] = None
    message: Optional[str] = None
    retry_after: Optional[str] = None
    seconds: float = 0.0
    reset: bool = False
    keep_bytes: Optional[int] = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or fnmatch.fnmatchcase(
            normalize_path(path), normalize_path(self.path)
        )


@attrs.define
class _RateLimit:
    per_window: int
    window: float
    retry_after: Optional[str]
    accepted: collections.deque[float] = attrs.field(factory=collections.deque)


class FaultPlan:
    """The queue of pending faults and the rate limiter; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rate_limit: Optional[_RateLimit] = None
        self._clock = clock

    def add(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError(f"count must be at least 1, not {fault.remaining}")
        with self._lock:
            self._faults.append(fault)

    def take(
        self, stage: FaultStage, method: str, path: str, kinds: frozenset[FaultKind]
    ) -> Optional[Fault]:
        """Use one count of the first pending fault of ``kinds`` for ``stage`` matching."""
        with self._lock:
            for fault in self._faults:
                if fault.stage is stage and fault.kind in kinds and fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return [attrs.evolve(fault) for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rate_limit = None

    def set_rate_limit(
        self, per_window: Optional[int], window: float, retry_after: Optional[RetryAfter]
    ) -> None:
        if per_window is not None and per_window < 1:
            raise ValueError(f"per_minute must be at least 1 (or None to stop), not {per_window}")
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        with self._lock:
            self._rate_limit = (
                None
                if per_window is None
                else _RateLimit(
                    per_window=per_window,
                    window=window,
                    retry_after=None if retry_after is None else format_retry_after(retry_after),
                )
            )

    def check_rate_limit(self) -> Optional[str]:
        """Count one request; return the ``Retry-After`` value if it is over the limit.

        Unlike Asana, a refused request does not use up quota, so waiting ``Retry-After``
        seconds is always enough (tests stay short).
        """
        with self._lock:
            limit = self._rate_limit
            if limit is None:
                return None
            now = self._clock()
            while limit.accepted and limit.accepted[0] <= now - limit.window:
                limit.accepted.popleft()
            if len(limit.accepted) < limit.per_window:
                limit.accepted.append(now)
                return None
            if limit.retry_after is not None:
                return limit.retry_after
            wait = limit.accepted[0] + limit.window - now
            return str(max(1, math.ceil(wait)))
