"""The inbox: where verified events wait, durably, between the receiver and the handler.

A receiver given an inbox stores a delivery's events *before* it answers Asana 200, and
workers hand them to the application afterwards. Events carry no id, so each gets a *key*
derived from its content (``event_key``): a redelivery, or the same event recovered through
the Events API, has the same key and is stored once.

This module holds what every backend shares: the key, the records, and the ``Inbox``
protocol. Backends: ``SQLiteInbox`` here, ``RedisInbox`` in ``asana_webhooks.contrib.redis``,
``DjangoInbox`` in ``asana_webhooks.contrib.django``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any, Mapping, Optional, Protocol, Sequence, Union, runtime_checkable

import attrs

from asana_webhooks._errors import AsanaError

#: How long the keys of handled events are kept to drop redeliveries, in seconds. Asana retries
#: a failing delivery for 24 hours; 48 covers that with a margin.
DEFAULT_DEDUPE_WINDOW = 48 * 3600.0

#: The error a backend records when it takes events back from a claim whose lease ran out:
#: the worker died (or froze) while handling them. Counted as an attempt, so an event that
#: kills every worker that handles it is parked after ``max_attempts`` like one that raises.
LEASE_LOST = "its worker stopped while handling it (the lease ran out)"

# The fields both channels (webhook deliveries and GET /events) carry; a key built from
# anything else would tell the same event apart by the channel it came through.
# See docs/guides/never-miss-an-event for the comparison.
_VALUE_FIELDS = ("new_value", "added_value", "removed_value")


def _gid_of(value: Any) -> Any:
    # Webhooks send only gid and resource_type of a resource value; /events may send more.
    if isinstance(value, Mapping):
        return value.get("gid")
    return value


def _instant(value: Any) -> Any:
    # "2026-01-01T00:00:00.000Z" and "2026-01-01T00:00:00+00:00" are one moment.
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, str):
        text = value[:-1] + "+00:00" if value[-1:] in "Zz" else value
        try:
            moment = _dt.datetime.fromisoformat(text)
        except ValueError:
            return value
    else:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


def _canonical(event: Mapping[str, Any]) -> list[Any]:
    user = event.get("user")
    resource = event.get("resource")
    parent = event.get("parent")
    change = event.get("change")
    canonical: list[Any] = [
        _gid_of(user),
        _gid_of(resource),
        resource.get("resource_type") if isinstance(resource, Mapping) else None,
        event.get("action"),
        _gid_of(parent),
        _instant(event.get("created_at")),
    ]
    if isinstance(change, Mapping):
        canonical += [change.get("field"), change.get("action")]
        canonical += [_gid_of(change.get(name)) for name in _VALUE_FIELDS]
    return canonical


def event_key(event: Union[Mapping[str, Any], Any]) -> str:
    """The content key of one event: a raw event dict, or a typed ``Event``.

    The same event gives the same key whatever the key order or whitespace of the body it came
    in, and whether it came by webhook or through the Events API; a different event gives a
    different key. Use it to make a handler idempotent: remember the keys you have handled.
    """
    if not isinstance(event, Mapping):
        event = attrs.asdict(event, recurse=True)
    text = json.dumps(_canonical(event), separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def polled_target(resource: str) -> str:
    """The target recorded for events recovered through the Events API for ``resource``."""
    return f"events:{resource}"


class InboxError(AsanaError):
    """The inbox's database or server failed, or could not be reached in time.

    Nothing is half-done: a ``store`` that raises it stored none of the delivery's events, so
    a receiver answers 5xx and Asana delivers again.
    """


@attrs.frozen
class StoredEvent:
    """One event in an inbox, as stored: the raw JSON, its key, where and when it came in."""

    id: str  #: The backend's id for this stored event (a string on every backend).
    key: str  #: ``event_key`` of the event.
    target: str  #: The target key the delivery came to (``events:<resource gid>`` if polled).
    received_at: float  #: Unix time it was stored.
    raw: str  #: The event's JSON text.
    attempts: int = 0  #: How many times a handler was called with it and failed.
    error: Optional[str] = None  #: The last handler error, for parked (failed) events.


@attrs.frozen
class StoreResult:
    """What ``Inbox.store`` did with a delivery's events."""

    stored: int  #: New events written.
    duplicates: int  #: Events whose key was already in the inbox.
    ids: tuple[str, ...] = ()  #: The ids of the new events, for a hand-off to a task queue.


@attrs.frozen
class Claim:
    """Events leased to one worker: no other worker gets them until the lease runs out.

    ``complete``, ``retry``, ``park``, ``release`` and ``renew`` act on ``events`` only, so a
    worker that isolates a poison event settles each part on its own with ``claim.only(...)``.
    """

    token: str  #: Identifies this claim to renew, complete, retry, park or release it.
    target: str
    events: tuple[StoredEvent, ...]
    expires_at: float

    def only(self, events: Sequence[StoredEvent]) -> Claim:
        """The same claim narrowed to ``events`` (which must be some of its own)."""
        return attrs.evolve(self, events=tuple(events))


@attrs.frozen
class InboxStats:
    """Counters a site can graph. Counts are since the inbox was created (or purged)."""

    pending: int = 0  #: Waiting for a worker (including those waiting out a retry delay).
    in_progress: int = 0  #: Claimed by a worker whose lease has not run out.
    failed: int = 0  #: Parked now, waiting for inspection, replay or purge.
    handled: int = 0  #: Events a handler completed, in total.
    duplicates: int = 0  #: Events dropped because their key was already in the inbox.
    retried: int = 0  #: Times an event went back to pending after its handler raised.
    #: Seconds since the oldest event not yet handled (pending or in progress) was stored;
    #: None when there is none. The one number to alert on: workers are behind or stopped.
    oldest_pending_age: Optional[float] = None
    gaps: int = 0  #: Sync-token gaps reported by the reconciler.
    stored: int = 0  #: Events stored, in total (webhook deliveries and polls).
    parked: int = 0  #: Events parked as failed, in total (``failed`` is how many are now).


@attrs.frozen
class SyncState:
    """The Events API position kept for one watched resource.

    ``token`` is the sync token to send next. ``stored_at`` is when it was stored (Unix time):
    if Asana later refuses it as too old, events since then may be missing. ``covered_since``
    is when the unbroken run of tokens began (the first token, or the fresh one after a
    refusal): every event after that moment has been read, or will be with ``token``.
    """

    token: str
    stored_at: float
    covered_since: float


@runtime_checkable
class Inbox(Protocol):
    """What receivers, workers and the reconciler need from an inbox backend.

    Every method is safe to call from several threads and processes at once. ``store`` is one
    transaction: all of a delivery's new events are written, or none and it raises.
    """

    def store(self, target: str, events: Sequence[Mapping[str, Any]]) -> StoreResult:
        """Store a delivery's raw events, skipping those whose key is already known."""
        ...

    def claim(self, worker: str, *, lease: float, limit: int = 100) -> Optional[Claim]:
        """Lease the oldest available events of one target; None if there are none.

        Up to ``limit`` events, in the order they were stored, and more only to keep one
        delivery's events together. Available: pending and past any retry delay, or claimed
        by a worker whose lease ran out (it died).
        """
        ...

    def renew(self, claim: Claim, *, lease: float) -> bool:
        """Extend a live claim; False if another worker has claimed its events since."""
        ...

    def complete(self, claim: Claim) -> None:
        """The handler succeeded: mark the claim's events handled.

        Events another worker has claimed since (the lease ran out) are left to that worker.
        """
        ...

    def retry(self, claim: Claim, error: str, *, delay: float) -> None:
        """The handler raised: pending again after ``delay`` seconds, one attempt more."""
        ...

    def park(self, claim: Claim, error: str) -> None:
        """Give up on the claim's events: keep them as failed, with the error, for replay.

        Their keys stay, so a redelivery of a parked event is still a duplicate.
        """
        ...

    def release(self, claim: Claim) -> None:
        """Hand the claim back untouched (a worker stopping): pending again at once."""
        ...

    def failed(self, limit: int = 100) -> list[StoredEvent]:
        """Parked events, oldest first."""
        ...

    def replay(self, ids: Sequence[str]) -> int:
        """Make parked events pending again, attempts reset; return how many were found.

        An id that is not a parked event (unknown, malformed, handled) is skipped.
        """
        ...

    def purge(self) -> int:
        """Drop parked events; return how many. Their keys are kept for the dedupe window."""
        ...

    def prune(self, *, older_than: Optional[float] = None) -> int:
        """Forget handled (and purged) events finished more than ``older_than`` seconds ago.

        None means the inbox's own dedupe window (``DEFAULT_DEDUPE_WINDOW`` unless set).
        Pending and parked events are never pruned. Workers call this now and then.
        """
        ...

    def stats(self) -> InboxStats:
        """The inbox's counters and gauges (see ``InboxStats``)."""
        ...

    def note_gap(self, resource: str, since: Optional[float]) -> None:
        """Count a sync-token gap for ``resource`` (events since ``since`` may be missing)."""
        ...

    def sync_token(self, resource: str) -> Optional[str]:
        """The Events API sync token stored for ``resource``, or None."""
        ...

    def sync_state(self, resource: str) -> Optional[SyncState]:
        """The token stored for ``resource`` with when it was stored, or None."""
        ...

    def store_polled(
        self,
        resource: str,
        events: Sequence[Mapping[str, Any]],
        sync: str,
        *,
        restart: bool = False,
    ) -> StoreResult:
        """Store events read from the Events API and ``resource``'s next sync token, atomically.

        The events go in as ``store(polled_target(resource), events)`` would put them (same
        dedupe); the token is replaced in the same transaction, with ``stored_at`` = now.
        ``restart=True`` says the token is a fresh one (the first, or one Asana handed out with
        a 412): ``covered_since`` becomes now. Otherwise ``covered_since`` is kept (now if no
        token was stored yet).
        """
        ...

    def close(self) -> None:
        """Release connections. The inbox may be used again afterwards (it reconnects)."""
        ...
