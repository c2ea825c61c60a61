"""``Worker``: takes events out of an inbox and hands them to the application's handler.

A worker claims a batch of one target's events under a lease, rebuilds the typed ``Event``
objects, calls ``handler(events, target)`` and marks them handled. While a handler runs, a
thread renews the lease, so a slow handler keeps its events; a worker that dies stops
renewing, the lease runs out and another worker takes the events again. Delivery to the
handler is therefore *at least once*: exactly once while nothing crashes.

A handler that raises is retried with exponential backoff, then its events are parked with
the error. When a batch fails, its events are handled one by one, so that one poison event
is parked alone and the others go through.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import logging
import os
import random
import socket
import threading
import time
import traceback
from typing import Any, Callable, Optional, Sequence

import attrs

from asana_webhooks._events import Event, event_from_raw
from asana_webhooks._inbox import LEASE_LOST, Claim, Inbox, StoredEvent

logger = logging.getLogger("asana_webhooks")

#: ``handler(events, target)``, the same signature as the receiver's ``on_events``.
Handler = Callable[[Sequence[Event], str], None]

#: The longest lease a worker takes by default, in seconds: a dead worker's events wait at
#: most this long before another worker takes them.
DEFAULT_LEASE = 30.0
_MAX_ERROR_CHARS = 4000
# After the inbox itself fails (database locked, Redis down), wait this long, doubling.
_INBOX_FAILURE_WAIT = (0.5, 30.0)
# A drain gives up after this many failures of the inbox in a row (about 15 s of waiting):
# a database locked for a moment is not worth failing a drain for, an inbox that is down is.
_DRAIN_INBOX_FAILURES = 5


@attrs.frozen
class DrainResult:
    """What a worker did: events handled, sent back for a retry, and parked as failed."""

    handled: int = 0
    retried: int = 0
    parked: int = 0
    batches: int = 0


class Worker:
    """Hands an inbox's events to ``handler(events, target)``.

    * ``lease``: seconds a claim is held without renewal (renewed every third of it while a
      handler runs); a killed worker's events are taken again after at most this long.
    * ``max_attempts``: calls that may fail before an event is parked as failed.
    * ``concurrency``: threads handling claims at once (in ``run`` and ``drain``).
    * ``batch_size``: events per claim (a delivery is never split, so a claim may hold more).
    * ``backoff``/``max_backoff``: the retry delay is ``backoff * 2**(attempt-1)`` seconds,
      jittered, at most ``max_backoff``.
    * ``poll_interval``: seconds to wait when nothing is pending.

    Nothing starts until ``run`` or ``drain``.
    """

    def __init__(
        self,
        inbox: Inbox,
        handler: Handler,
        *,
        lease: float = DEFAULT_LEASE,
        max_attempts: int = 5,
        concurrency: int = 1,
        name: Optional[str] = None,
        batch_size: int = 100,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        poll_interval: float = 0.5,
        prune_interval: float = 600.0,
    ) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be positive seconds, got {lease!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if not backoff >= 0 or not max_backoff >= 0:
            raise ValueError("backoff and max_backoff must be seconds >= 0")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive seconds, got {poll_interval!r}")
        self.inbox = inbox
        self.handler = handler
        self.lease = float(lease)
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.batch_size = batch_size
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.poll_interval = float(poll_interval)
        self.prune_interval = float(prune_interval)
        self._counts_lock = threading.Lock()
        self._counts = [0, 0, 0, 0]  # handled, retried, parked, batches
        self._last_prune = 0.0

    def __repr__(self) -> str:
        return f"Worker({self.inbox!r}, name={self.name!r}, concurrency={self.concurrency})"

    # --- running ------------------------------------------------------------------------

    def run(self, stop: Optional[threading.Event] = None) -> DrainResult:
        """Handle events as they come until ``stop`` is set; return what was done.

        On ``stop`` each thread finishes the batch it is handling (events not yet handed to
        the handler are released to other workers) and returns. Failures of the inbox
        itself (a locked database, Redis down) are logged and retried, never fatal.
        """
        stop = stop or threading.Event()
        before = self._snapshot()
        self._in_threads(lambda: self._loop(stop, drain=False))
        return self._since(before)

    def drain(self, stop: Optional[threading.Event] = None) -> DrainResult:
        """Handle what is pending, including retries this drain schedules, and return.

        Events claimed by other live workers are left to them. A failing inbox is retried a
        few times (a locked database), then what it raises is raised.
        """
        stop = stop or threading.Event()
        before = self._snapshot()
        self._in_threads(lambda: self._loop(stop, drain=True))
        return self._since(before)

    def step(self) -> bool:
        """Claim and handle one batch; False if nothing was available."""
        claim = self.inbox.claim(self.name, lease=self.lease, limit=self.batch_size)
        if claim is None:
            return False
        self._process(claim, threading.Event())
        return True

    def _in_threads(self, loop: Callable[[], None]) -> None:
        if self.concurrency == 1:
            loop()
            return
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                loop()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=guarded, name=f"asana-webhooks worker {n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def _loop(self, stop: threading.Event, *, drain: bool) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self._maybe_prune()
                claim = self.inbox.claim(self.name, lease=self.lease, limit=self.batch_size)
                if claim is None and drain and self.inbox.stats().pending == 0:
                    return
            except Exception:
                failures += 1
                if drain and failures > _DRAIN_INBOX_FAILURES:
                    raise
                wait = min(_INBOX_FAILURE_WAIT[1], _INBOX_FAILURE_WAIT[0] * 2 ** (failures - 1))
                logger.warning(
                    "worker %s: the inbox failed; trying again in %.1f s",
                    self.name,
                    wait,
                    exc_info=True,
                )
                stop.wait(wait)
                continue
            failures = 0
            if claim is None:
                # Idle, or (draining) only retries waiting out their delay remain.
                stop.wait(self.poll_interval)
                continue
            self._process(claim, stop)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if self._last_prune and now - self._last_prune < self.prune_interval:
            return
        self._last_prune = now
        pruned = self.inbox.prune()
        if pruned:
            logger.info(
                "worker %s: pruned %d handled events past the dedupe window", self.name, pruned
            )

    # --- one claim ----------------------------------------------------------------------

    def _process(self, claim: Claim, stop: threading.Event) -> None:
        started = time.monotonic()
        renewer = _Renewer(self, claim)
        renewer.start()
        try:
            handled, retried, parked = self._settle(claim, renewer, stop)
        except BaseException:
            # KeyboardInterrupt or SystemExit inside the handler: give the events back.
            renewer.stop()
            try:
                self.inbox.release(claim.only(renewer.remaining()))
            except Exception:
                logger.warning("worker %s: could not release a claim", self.name, exc_info=True)
            raise
        finally:
            renewer.stop()
        with self._counts_lock:
            for index, value in enumerate((handled, retried, parked, 1)):
                self._counts[index] += value
        logger.info(
            "worker %s: %s: %d events: %d handled, %d retried, %d parked in %.3f s",
            self.name,
            claim.target,
            len(claim.events),
            handled,
            retried,
            parked,
            time.monotonic() - started,
        )

    def _settle(self, claim: Claim, renewer: _Renewer, stop: threading.Event) -> tuple[int, ...]:
        handled = retried = parked = 0
        if len(claim.events) > 1 and any(_lost(stored) for stored in claim.events):
            # A worker died with some of these: one event per claim until they are through,
            # so that only the event that kills its worker keeps counting lost leases.
            rest = list(claim.events[1:])
            self.inbox.release(claim.only(rest))
            renewer.settled(rest)
            claim = claim.only(claim.events[:1])
        pairs: list[tuple[StoredEvent, Event]] = []
        for stored in claim.events:
            if _lost(stored) and stored.attempts >= self.max_attempts:
                self.inbox.park(claim.only([stored]), stored.error or LEASE_LOST)
                renewer.settled([stored])
                parked += 1
                logger.error(
                    "worker %s: parked an event to %s after %d attempts: %s",
                    self.name,
                    claim.target,
                    stored.attempts,
                    LEASE_LOST,
                )
                continue
            try:
                pairs.append((stored, event_from_raw(json.loads(stored.raw))))
            except Exception as exc:
                # Nothing a retry could change: park it at once.
                self.inbox.park(claim.only([stored]), f"could not rebuild the event: {exc}")
                renewer.settled([stored])
                parked += 1
        pairs = in_created_order(pairs)
        if not pairs:
            return handled, retried, parked
        try:
            self.handler([event for _, event in pairs], claim.target)
        except Exception as exc:
            if len(pairs) == 1:
                retried, parked = self._failed(claim, [pairs[0][0]], exc, renewer)
                return handled, retried, parked
            logger.warning(
                "worker %s: the handler raised for a batch of %d events to %s (%s); "
                "handling them one by one",
                self.name,
                len(pairs),
                claim.target,
                _one_line(exc),
            )
        else:
            stored_events = [stored for stored, _ in pairs]
            self.inbox.complete(claim.only(stored_events))
            renewer.settled(stored_events)
            return handled + len(pairs), retried, parked
        # Isolate the poison event: one call per event, in order.
        for index, (stored, event) in enumerate(pairs):
            if stop.is_set():
                rest = [s for s, _ in pairs[index:]]
                self.inbox.release(claim.only(rest))
                renewer.settled(rest)
                break
            try:
                self.handler([event], claim.target)
            except Exception as exc:
                r, p = self._failed(claim, [stored], exc, renewer)
                retried, parked = retried + r, parked + p
            else:
                self.inbox.complete(claim.only([stored]))
                renewer.settled([stored])
                handled += 1
        return handled, retried, parked

    def _failed(
        self, claim: Claim, events: list[StoredEvent], exc: BaseException, renewer: _Renewer
    ) -> tuple[int, int]:
        attempt = max(event.attempts for event in events) + 1
        error = _error_text(exc)
        part = claim.only(events)
        renewer.settled(events)
        if attempt >= self.max_attempts:
            self.inbox.park(part, error)
            logger.error(
                "worker %s: parked %d events to %s after %d attempts: %s",
                self.name,
                len(events),
                claim.target,
                attempt,
                _one_line(exc),
            )
            return 0, len(events)
        delay = self.retry_delay(attempt)
        self.inbox.retry(part, error, delay=delay)
        logger.warning(
            "worker %s: the handler raised for %d events to %s (attempt %d of %d), "
            "retrying in %.1f s: %s",
            self.name,
            len(events),
            claim.target,
            attempt,
            self.max_attempts,
            delay,
            _one_line(exc),
        )
        return len(events), 0

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``: exponential, jittered, capped."""
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return float(delay * random.uniform(0.5, 1.0))  # noqa: S311  (jitter, not security)

    # --- counts -------------------------------------------------------------------------

    def _snapshot(self) -> list[int]:
        with self._counts_lock:
            return list(self._counts)

    def _since(self, before: list[int]) -> DrainResult:
        now = self._snapshot()
        handled, retried, parked, batches = (a - b for a, b in zip(now, before))
        return DrainResult(handled=handled, retried=retried, parked=parked, batches=batches)


class _Renewer:
    """Renews the unsettled part of a claim every third of the lease, in its own thread."""

    def __init__(self, worker: Worker, claim: Claim) -> None:
        self._worker = worker
        self._claim = claim
        self._remaining = {event.id: event for event in claim.events}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="asana-webhooks lease renewal", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def settled(self, events: Sequence[StoredEvent]) -> None:
        with self._lock:
            for event in events:
                self._remaining.pop(event.id, None)

    def remaining(self) -> list[StoredEvent]:
        with self._lock:
            return list(self._remaining.values())

    def _run(self) -> None:
        worker = self._worker
        while not self._done.wait(worker.lease / 3):
            events = self.remaining()
            if not events:
                return
            try:
                kept = worker.inbox.renew(self._claim.only(events), lease=worker.lease)
            except Exception:
                logger.warning("worker %s: could not renew a lease", worker.name, exc_info=True)
                continue
            if not kept:
                logger.warning(
                    "worker %s: lost the lease on events to %s (the handler ran past it "
                    "while renewal failed); another worker may handle them too",
                    worker.name,
                    self._claim.target,
                )
                return


def in_created_order(pairs: list[tuple[StoredEvent, Event]]) -> list[tuple[StoredEvent, Event]]:
    """Put each resource's events in the order Asana created them, leaving other slots be."""
    by_resource: dict[Any, list[int]] = {}
    for index, (_, event) in enumerate(pairs):
        if event.created_at is not None and event.resource is not None:
            by_resource.setdefault(event.resource.gid, []).append(index)
    ordered = list(pairs)
    for slots in by_resource.values():
        if len(slots) < 2:
            continue
        items = sorted((pairs[i] for i in slots), key=_created_at)
        for slot, item in zip(slots, items):
            ordered[slot] = item
    return ordered


def _created_at(pair: tuple[StoredEvent, Event]) -> _dt.datetime:
    created_at = pair[1].created_at
    assert created_at is not None  # only events with a created_at are sorted
    return created_at


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= _MAX_ERROR_CHARS else "..." + text[-_MAX_ERROR_CHARS:]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def resolve_handler(spec: str, *, dotted: bool = False) -> Handler:
    """The function ``"package.module:function"`` names; ``ValueError`` saying what is wrong.

    How a process that did not build the receiver (a worker command, a Celery or RQ worker,
    Django settings) finds the application's handler. ``dotted`` also takes
    ``"package.module.function"``.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon and dotted:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"handler {spec!r} is not of the form MODULE:FUNCTION")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing to import
        detail = " ".join(str(exc).split())
        raise ValueError(
            f"cannot import {module_name!r} for handler {spec!r} ({type(exc).__name__}: {detail})"
        ) from None
    handler: Any = module
    for part in attribute.split("."):
        handler = getattr(handler, part, None)
        if handler is None:
            raise ValueError(f"module {module_name!r} has no {attribute!r} (handler {spec!r})")
    if not callable(handler):
        raise ValueError(f"handler {spec!r} is not callable")
    return handler  # type: ignore[no-any-return]


def _lost(stored: StoredEvent) -> bool:
    """Its last attempt ended with its worker gone (a lease that ran out)."""
    return stored.error == LEASE_LOST
