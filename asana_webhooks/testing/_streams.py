"""Event streams behind ``GET /events``: what happened to each resource, read with sync tokens.

As Asana describes the Events API (OAS tag ``Events``, ``getEvents``): a call without a sync token,
or with one that is invalid or too old, is answered 412 with a fresh token; a valid token gives
the events recorded after it was made, at most ``limit`` per call, a new token and ``has_more``.
Tokens live ``token_lifetime`` on the stand-in's clock (Asana: "always expire after 24 hours").
Events are kept ``retention`` (Asana: "retrievable from the event stream for 24 hours"); a
token from before events that were since forgotten is stale, so a reader never misses events
without being told.

Tokens are 32 hex characters, like Asana's; the stand-in remembers what each one points at.
"""

from __future__ import annotations

import datetime
import secrets
import threading
from typing import Any, Callable, Iterable, Optional

import attrs

#: Asana's 412 message, from the OAS example of ``getEvents``.
SYNC_MESSAGE = (
    "Sync token invalid or too old. If you are attempting to keep resources in sync, you must "
    "fetch the full dataset for this query now and use the new sync token for the next sync."
)
#: "Asana limits a single sync token to 100 events" (``getEvents``); 1000 for a workspace
#: (``getWorkspaceEvents``).
EVENTS_PER_PAGE = 100
WORKSPACE_EVENTS_PER_PAGE = 1000
DEFAULT_TOKEN_LIFETIME = datetime.timedelta(hours=24)
DEFAULT_RETENTION = datetime.timedelta(hours=24)

_PRUNE_EVERY = 256


@attrs.frozen
class StreamEvent:
    """One event as a stream keeps it: a global sequence number, when it was recorded."""

    seq: int
    recorded_at: datetime.datetime
    event: dict[str, Any] = attrs.field(repr=False)


@attrs.frozen
class _Token:
    stream: str
    after_seq: int
    issued_at: datetime.datetime


class SyncTokenError(Exception):
    """No token, or an invalid or too old one: Asana's 412, with a fresh token to start from."""

    def __init__(self, fresh: str, reason: str) -> None:
        super().__init__(reason)
        self.fresh = fresh
        self.reason = reason


@attrs.frozen
class EventPage:
    events: list[dict[str, Any]]
    sync: str
    has_more: bool


class EventStreams:
    """Every resource's events, and the sync tokens handed out; thread-safe."""

    def __init__(
        self,
        clock: Callable[[], datetime.datetime],
        *,
        token_lifetime: datetime.timedelta = DEFAULT_TOKEN_LIFETIME,
        retention: datetime.timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._clock = clock
        self.token_lifetime = token_lifetime
        self.retention = retention
        self._lock = threading.Lock()
        self._seq = 0
        self._streams: dict[str, list[StreamEvent]] = {}
        self._forgotten_through: dict[str, int] = {}  # stream -> last seq dropped by retention
        self._tokens: dict[str, _Token] = {}
        self._issued = 0

    def record(self, streams: Iterable[str], event: dict[str, Any]) -> int:
        """Append ``event`` to each of ``streams`` (one sequence number); return it."""
        now = self._clock()
        with self._lock:
            self._seq += 1
            entry = StreamEvent(self._seq, now, event)
            for stream in dict.fromkeys(streams):
                self._streams.setdefault(stream, []).append(entry)
            return self._seq

    def events(self, stream: str) -> list[StreamEvent]:
        """What ``stream`` holds now (after retention), oldest first."""
        with self._lock:
            self._forget_old(stream, self._clock())
            return list(self._streams.get(stream, ()))

    def fresh_token(self, stream: str) -> str:
        """A token from "now": it will return only events recorded after this call."""
        now = self._clock()
        with self._lock:
            return self._issue(stream, self._seq, now)

    def read(self, stream: str, sync: Optional[str], limit: int) -> EventPage:
        """The events after ``sync``; ``SyncTokenError`` (412) when it cannot be used."""
        now = self._clock()
        with self._lock:
            self._forget_old(stream, now)
            token = self._tokens.get(sync) if sync else None
            reason = None
            if not sync:
                reason = "no sync token"
            elif token is None or token.stream != stream:
                reason = "not a sync token for this resource"
            elif now - token.issued_at >= self.token_lifetime:
                reason = "sync token expired"
            elif token.after_seq < self._forgotten_through.get(stream, 0):
                reason = "events after this sync token are no longer kept"
            if token is None or reason is not None:
                raise SyncTokenError(self._issue(stream, self._seq, now), reason or "")
            entries = self._streams.get(stream, [])
            start = _first_after(entries, token.after_seq)
            chosen = entries[start : start + limit]
            has_more = start + limit < len(entries)
            # Once everything is read the next token starts from "now": nothing between the
            # last event read and now belongs to this stream.
            after_seq = chosen[-1].seq if has_more else max(token.after_seq, self._seq)
            return EventPage(
                events=[dict(entry.event) for entry in chosen],
                sync=self._issue(stream, after_seq, now),
                has_more=has_more,
            )

    def expire_tokens(self) -> None:
        """Every token handed out so far becomes invalid (412 on its next use)."""
        with self._lock:
            self._tokens.clear()

    def clear(self) -> None:
        with self._lock:
            self._streams.clear()
            self._forgotten_through.clear()
            self._tokens.clear()

    # --- under the lock -----------------------------------------------------------------------

    def _issue(self, stream: str, after_seq: int, now: datetime.datetime) -> str:
        self._issued += 1
        if self._issued % _PRUNE_EVERY == 0:
            self._tokens = {
                text: token
                for text, token in self._tokens.items()
                if now - token.issued_at < self.token_lifetime
            }
        text = secrets.token_hex(16)
        self._tokens[text] = _Token(stream, after_seq, now)
        return text

    def _forget_old(self, stream: str, now: datetime.datetime) -> None:
        entries = self._streams.get(stream)
        if not entries or now - entries[0].recorded_at < self.retention:
            return
        keep = 0
        while keep < len(entries) and now - entries[keep].recorded_at >= self.retention:
            keep += 1
        self._forgotten_through[stream] = entries[keep - 1].seq
        del entries[:keep]


def _first_after(entries: list[StreamEvent], after_seq: int) -> int:
    """Index of the first entry with ``seq > after_seq`` (entries are in ``seq`` order)."""
    low, high = 0, len(entries)
    while low < high:
        middle = (low + high) // 2
        if entries[middle].seq <= after_seq:
            low = middle + 1
        else:
            high = middle
    return low
