"""The reconciler: recover, through the Events API, the events webhooks never delivered.

Asana delivers webhook events at most once; the Events API keeps each resource's events for
about 24 hours behind a sync token. The reconciler reads every watched resource's events on
an interval and puts them in the same inbox the receiver writes to. The inbox drops the ones
already there (by ``event_key``, built only from fields both channels carry), so the workers
hand each change to the handler once, whichever channel brought it first.

Crash safety comes from the inbox: the events of an answer and the token after them are
stored in one step (``Inbox.store_polled``). A crash before that step leaves the old token,
and the same events are read again and dropped as duplicates; never is a token stored ahead
of its events.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import Callable, Optional, Union

import attrs

from asana_webhooks._client import ApiClient
from asana_webhooks._errors import AsanaError, InvalidRequestError, RateLimitError
from asana_webhooks._events_api import EventsApi, InvalidSyncTokenError
from asana_webhooks._inbox import Inbox
from asana_webhooks._retry import RetryPolicy, backoff
from asana_webhooks._webhooks_api import _gid

logger = logging.getLogger("asana_webhooks")

#: Sync tokens always expire after 24 hours (sooner under load, Asana says).
TOKEN_LIFETIME = 24 * 3600.0
#: Five minutes: far inside the token lifetime, and one request per resource per interval
#: is a small share of even a free plan's 150 requests a minute.
DEFAULT_INTERVAL = 300.0
#: Longest interval accepted: a quarter of the token lifetime leaves room for slow passes and
#: tokens Asana expires early.
MAX_INTERVAL = TOKEN_LIFETIME / 4

#: ``on_gap(resource, since)``: events on ``resource`` since ``since`` (a UTC datetime; None
#: when unknown) may be missing and cannot be recovered through the Events API. Re-read the
#: resource. Called at least once per gap: if it raises, the gap is reported again next time.
GapHandler = Callable[[str, Optional[_dt.datetime]], None]

When = Union[_dt.datetime, float, None]


@attrs.frozen
class ReconcileResult:
    """What one pass did for one resource."""

    resource: str
    recovered: int = 0  #: Events stored that the inbox did not have (webhooks missed them).
    already_known: int = 0  #: Events the inbox had already (from a webhook or an earlier poll).
    started: bool = False  #: No token was stored: one was taken, from now on events are read.
    gap: bool = False  #: The stored token was refused: on_gap was told, a fresh one stored.
    #: When the gap began: when the last good token was stored (None if unknown).
    gap_since: Optional[_dt.datetime] = None
    rate_limited: bool = False  #: Asana answered 429; this resource waits, the others go on.
    retry_after: Optional[float] = None  #: Seconds until it is polled again, after a 429.
    error: Optional[str] = None  #: Why this resource could not be read this time.

    @property
    def ok(self) -> bool:
        """Read to the end, with nothing lost and nothing left to retry."""
        return not (self.gap or self.rate_limited or self.error)


def _utc(moment: When) -> Optional[_dt.datetime]:
    if moment is None or isinstance(moment, _dt.datetime):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequestError("since must be timezone-aware (or a Unix time)")
        return moment
    return _dt.datetime.fromtimestamp(float(moment), tz=_dt.timezone.utc)


def _unix(moment: Optional[_dt.datetime]) -> Optional[float]:
    return None if moment is None else moment.timestamp()


def _without_rate_limit_waits(api_client: ApiClient) -> ApiClient:
    """A view of ``api_client`` that raises a 429 at once instead of sleeping through it.

    The reconciler polls its resources one after another: sleeping out one resource's
    ``Retry-After`` would stall all the others, so it defers that resource itself.
    """
    view = copy.copy(api_client)
    config = api_client.configuration
    view.configuration = attrs.evolve(config, retry=attrs.evolve(config.retry, max_retry_after=0.0))
    view._owns_transport = False
    return view


class Reconciler:
    """Poll the Events API of each watched resource and put what webhooks missed in the inbox.

    ``resources`` are task, project or goal gids (events bubble up: a project's stream has its
    tasks' changes). ``interval`` is the time between two polls of one resource. ``on_gap``
    hears about events that can no longer be recovered (see ``GapHandler``); every gap is also
    counted in ``inbox.stats().gaps`` and logged (at ERROR when there is no ``on_gap``).

    Nothing runs until ``run_once()``, ``run()`` or ``recover()`` is called, and nothing starts
    a thread. Several reconcilers on one inbox are safe (the inbox deduplicates), only wasteful.
    """

    def __init__(
        self,
        api_client: ApiClient,
        inbox: Inbox,
        resources: Iterable[str],
        *,
        interval: float = DEFAULT_INTERVAL,
        on_gap: Optional[GapHandler] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        watched = [_gid("resource", resource) for resource in resources]
        if not watched:
            raise InvalidRequestError("resources: give at least one resource gid to watch")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise InvalidRequestError(f"interval must be a number of seconds, got {interval!r}")
        if not 0 < interval <= MAX_INTERVAL or math.isnan(interval):
            raise InvalidRequestError(
                f"interval must be more than 0 and at most {MAX_INTERVAL:.0f} seconds "
                f"(sync tokens last at most 24 hours), got {interval!r}"
            )
        self.api = EventsApi(_without_rate_limit_waits(api_client))
        self.inbox = inbox
        self.resources: tuple[str, ...] = tuple(dict.fromkeys(watched))
        self.interval = float(interval)
        self.on_gap = on_gap
        self._clock = clock
        # Per resource: not before this (Unix) time, after a 429.
        self._not_before: dict[str, float] = {}
        self._rate_limits: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"Reconciler(resources={list(self.resources)!r}, interval={self.interval!r}, "
            f"inbox={self.inbox!r})"
        )

    # -- one pass ---------------------------------------------------------------------------

    def run_once(self) -> dict[str, ReconcileResult]:
        """Poll every watched resource once (those waiting out a 429 are not asked again yet);
        return what happened per resource, in the order given."""
        return {resource: self._poll_unless_waiting(resource) for resource in self.resources}

    def poll(self, resource: str) -> ReconcileResult:
        """Read ``resource``'s events from its stored token to the end, storing as it goes.

        Never raises for Asana, the network or the inbox failing: the result says what went
        wrong, and the next poll starts again from the last token stored.
        """
        resource = _gid("resource", resource)
        progress = [0, 0]  # recovered, already known: kept when a later answer fails
        try:
            return self._poll(resource, progress)
        except RateLimitError as exc:
            count = self._rate_limits[resource] = self._rate_limits.get(resource, 0) + 1
            wait = exc.retry_after if exc.retry_after else _backoff(count)
            self._not_before[resource] = self._clock() + wait
            logger.warning(
                "asana_webhooks: rate limited reading events of %s; polling it again in %.0fs",
                resource,
                wait,
            )
            recovered, known = progress
            return ReconcileResult(resource, recovered, known, rate_limited=True, retry_after=wait)
        except AsanaError as exc:
            logger.error("asana_webhooks: could not read the events of %s: %s", resource, exc)
            return ReconcileResult(resource, progress[0], progress[1], error=str(exc))
        except Exception as exc:  # the inbox failed (database locked, disk full, Redis down)
            logger.exception("asana_webhooks: the inbox failed while polling %s", resource)
            error = f"the inbox failed: {_one_line(exc)}"
            return ReconcileResult(resource, progress[0], progress[1], error=error)

    def _poll_unless_waiting(self, resource: str) -> ReconcileResult:
        remaining = self._not_before.get(resource, 0.0) - self._clock()
        if remaining > 0:
            return ReconcileResult(resource, rate_limited=True, retry_after=remaining)
        return self.poll(resource)

    def _poll(self, resource: str, progress: list[int]) -> ReconcileResult:
        state = self.inbox.sync_state(resource)
        if state is None:
            token = self.api.starting_sync_token(resource)
            self.inbox.store_polled(resource, [], token, restart=True)
            self._rate_limits.pop(resource, None)
            logger.info("asana_webhooks: watching the events of %s from now on", resource)
            return ReconcileResult(resource, started=True)
        sync, since = state.token, state.stored_at
        while True:
            try:
                page, raw = self.api._get_page(resource, sync)
            except InvalidSyncTokenError as exc:
                if not exc.sync:
                    raise
                gap_since = _utc(since)
                error = self._gap(resource, gap_since, exc.sync)
                return ReconcileResult(
                    resource, progress[0], progress[1], gap=True, gap_since=gap_since, error=error
                )
            stored = self.inbox.store_polled(resource, raw, page.sync)
            progress[0] += stored.stored
            progress[1] += stored.duplicates
            if not page.has_more or page.sync == sync:
                break
            sync, since = page.sync, self._clock()
        self._rate_limits.pop(resource, None)
        recovered, known = progress
        if recovered:
            logger.info(
                "asana_webhooks: recovered %d events of %s that webhooks had not delivered "
                "(%d already known)",
                recovered,
                resource,
                known,
            )
        return ReconcileResult(resource, recovered, known)

    def _gap(self, resource: str, since: Optional[_dt.datetime], fresh: str) -> Optional[str]:
        """Report a gap, then store the fresh token; an error text if on_gap raised."""
        # on_gap first: if it raises, the old token stays and the gap is reported again.
        error = self._report_gap(resource, since, "the sync token was refused as too old")
        if error is not None:
            return f"{error}; the gap will be reported again at the next poll"
        self.inbox.store_polled(resource, [], fresh, restart=True)
        self.inbox.note_gap(resource, _unix(since))
        return None

    def _report_gap(self, resource: str, since: Optional[_dt.datetime], why: str) -> Optional[str]:
        when = since.isoformat() if since else "an unknown time"
        if self.on_gap is None:
            logger.error(
                "asana_webhooks: events of %s since %s may be missing (%s); "
                "re-read the resource to catch up",
                resource,
                when,
                why,
            )
            return None
        logger.warning(
            "asana_webhooks: events of %s since %s may be missing (%s); telling on_gap",
            resource,
            when,
            why,
        )
        try:
            self.on_gap(resource, since)
        except Exception as exc:
            logger.exception("asana_webhooks: on_gap raised for %s", resource)
            return f"on_gap raised {type(exc).__name__}: {exc}"
        return None

    # -- a window another part of the application knows to be missing ------------------------

    def recover(self, resource: str, since: When) -> ReconcileResult:
        """Recover the events of ``resource`` since ``since`` (a webhook was missing then).

        The Events API cannot go back in time: only a token stored before ``since`` reaches
        that window, and only while Asana still accepts it (at most 24 hours). So this polls
        ``resource`` now, and if the stored run of tokens does not reach back to ``since``
        (the resource was not watched yet, or a gap intervened), reports the window to
        ``on_gap``: recover it by re-reading the resource.
        """
        resource = _gid("resource", resource)
        start = _utc(since)
        state = self.inbox.sync_state(resource)
        result = self.poll(resource)
        if result.gap or result.rate_limited or result.error:
            return result
        covered = (
            state is not None and start is not None and state.covered_since <= start.timestamp()
        )
        if covered:
            return result
        error = self._report_gap(
            resource, start, "no sync token stored before then reaches back that far"
        )
        if error is None:
            self.inbox.note_gap(resource, _unix(start))
        return attrs.evolve(result, gap=True, gap_since=start, error=error)

    # -- running ------------------------------------------------------------------------------

    def run(self, stop: Optional[threading.Event] = None) -> None:
        """Poll every resource once per ``interval`` until ``stop`` is set (forever without).

        A resource answered 429 waits as ``Retry-After`` says while the others go on; a failed
        poll is tried again at the next interval. Returns promptly once ``stop`` is set.
        """
        stop = stop if stop is not None else threading.Event()
        due = {resource: 0.0 for resource in self.resources}
        while not stop.is_set():
            for resource in self.resources:
                if stop.is_set():
                    return
                now = self._clock()
                if due[resource] > now:
                    continue
                result = self._poll_unless_waiting(resource)
                due[resource] = self._clock() + self.interval
                if result.rate_limited and result.retry_after is not None:
                    due[resource] = self._clock() + result.retry_after
            wait = min(due.values()) - self._clock()
            if wait > 0:
                stop.wait(wait)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# A 429 without Retry-After: back off from 30 s, doubling, capped at 15 minutes.
_RATE_LIMIT_BACKOFF = RetryPolicy(backoff_initial=30.0, backoff_max=900.0)


def _backoff(count: int) -> float:
    return backoff(_RATE_LIMIT_BACKOFF, count)
