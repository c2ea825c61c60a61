"""When to try a request again, and how long to wait first.

tenacity runs the loop; this module holds the decisions. Retries are bounded by attempts and
by total time, and a wait that would overrun the time budget is not taken: the error
surfaces at once instead (a ``Retry-After: 3600`` becomes a ``RateLimitError`` now, not a
script asleep for an hour).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any, Callable, Optional, TypeVar

import attrs
import tenacity

from asana_webhooks._errors import ApiConnectionError, ApiException, AsanaError, RateLimitError

logger = logging.getLogger("asana_webhooks")

T = TypeVar("T")

#: Methods that are safe to repeat after an ambiguous failure.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@attrs.frozen(slots=True)
class RetryPolicy:
    """How the client retries. ``RetryPolicy.off()`` disables retrying.

    - 429 is retried for every method, after the ``Retry-After`` Asana sent (seconds or an
      HTTP date), or after exponential backoff with jitter when it is missing or zero.
    - ``retry_statuses`` (500, 502, 503, 504) and connection errors are retried for GET, PUT
      and DELETE. A create (POST) is retried on those only when the request provably never
      reached Asana: a retried create could otherwise make a second webhook.
    - ``max_attempts`` and ``max_time`` (seconds) bound the whole call: waits, every
      attempt, and the last attempt too, which is cut short when the budget runs out; a
      ``Retry-After`` longer than ``max_retry_after`` or than the time left is not waited for.
    - ``sleep`` is what waits; tests pass a function that records instead of sleeping.
    """

    max_attempts: int = 5
    max_time: float = 60.0
    max_retry_after: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 16.0
    retry_statuses: frozenset[int] = frozenset({500, 502, 503, 504})
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)

    @classmethod
    def off(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    @property
    def enabled(self) -> bool:
        return self.max_attempts > 1


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, inf
        return None
    return max(0.0, seconds)


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, so never zero."""
    ceiling = min(policy.backoff_max, policy.backoff_initial * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def is_retryable(policy: RetryPolicy, method: str, exc: BaseException) -> bool:
    """The pure decision: may this failure be tried again at all?"""
    if isinstance(exc, RateLimitError):
        return exc.retry_after is None or exc.retry_after <= policy.max_retry_after
    if isinstance(exc, ApiException):
        return exc.status in policy.retry_statuses and method in IDEMPOTENT_METHODS
    if isinstance(exc, ApiConnectionError):
        return method in IDEMPOTENT_METHODS or not exc.request_sent
    return False


class _Decisions:
    """tenacity's retry/wait/stop hooks for one policy and method (shared across threads)."""

    def __init__(self, policy: RetryPolicy, method: str) -> None:
        self.policy = policy
        self.method = method

    def retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return exc is not None and is_retryable(self.policy, self.method, exc)

    def wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitError) and exc.retry_after:
            return exc.retry_after
        return backoff(self.policy, state.attempt_number)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        # tenacity computes the wait before asking whether to stop, so a wait that would
        # overrun the time budget ends the call now rather than after a pointless sleep.
        if state.attempt_number >= self.policy.max_attempts:
            return True
        # The clock starts at the first attempt, which call_with_retries makes before
        # tenacity is involved and passes on as the call's argument. idle_for (the waits
        # so far) keeps the budget honest when `sleep` is replaced.
        started = state.args[0] if state.args else state.start_time
        now = state.outcome_timestamp if state.outcome_timestamp is not None else time.monotonic()
        spent = max(now - started, state.idle_for)
        return spent + state.upcoming_sleep > self.policy.max_time

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.warning(
            "asana_webhooks: retrying %s in %.2fs (attempt %d of %d failed: %s)",
            getattr(exc, "method", None) or self.method,
            state.upcoming_sleep,
            state.attempt_number,
            self.policy.max_attempts,
            _short(exc),
        )


def _short(exc: Optional[BaseException]) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason or ''}".strip()
    if isinstance(exc, ApiConnectionError):
        sent = "may have been sent" if exc.request_sent else "not sent"
        return f"{type(exc).__name__} ({sent})"
    return type(exc).__name__ if exc is not None else "?"


def make_retrying(policy: RetryPolicy, method: str) -> tenacity.Retrying:
    """A reusable ``Retrying`` (tenacity keeps its per-call state thread-local)."""
    decisions = _Decisions(policy, method)
    return tenacity.Retrying(
        retry=decisions.retry,
        wait=decisions.wait,
        stop=decisions.stop,
        sleep=policy.sleep,
        before_sleep=decisions.before_sleep,
        reraise=True,
    )


def call_with_retries(retrying: Optional[tenacity.Retrying], send: Callable[[], T]) -> T:
    """``send()``, retried as ``retrying`` decides.

    The first attempt is made directly: nearly every call succeeds at once, and tenacity's
    bookkeeping costs about 14 us a call (3% of a get_webhook). Only after a failure does
    tenacity take over, judging that first failure as if it had made the attempt itself.

    The final error is raised from here, not from inside tenacity (whose frames and
    ``concurrent.futures``' would fill the caller's traceback); when more than one attempt
    was made, its ``retry_history`` says how each ended.
    """
    if retrying is None:
        return send()
    started = time.monotonic()  # tenacity's clock
    try:
        return send()
    except Exception as exc:
        first: Optional[Exception] = exc
    history = [_short(first)]

    def attempt(_started: float) -> T:
        nonlocal first
        if first is not None:
            failed, first = first, None
            raise failed
        try:
            return send()
        except Exception as exc:
            history.append(_short(exc))
            raise

    try:
        result: Any = retrying(attempt, started)
    except AsanaError as error:
        final = error
    else:
        return result  # type: ignore[no-any-return]
    if len(history) > 1:
        final.retry_history = (
            f"{len(history)} attempts in {time.monotonic() - started:.1f}s: {', '.join(history)}"
        )
    raise final.with_traceback(None)
