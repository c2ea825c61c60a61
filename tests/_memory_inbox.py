"""A small in-memory Inbox for the reconciler's unit tests: dedupe by key, sync state, gaps.

It implements only what the receiver-free reconciler tests use (store, store_polled,
sync_state, sync_token, note_gap, stats) and records every call, so a test can assert that
events and their token were stored in one step. Real backends have their own contract tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from asana_webhooks._inbox import (
    InboxStats,
    StoredEvent,
    StoreResult,
    SyncState,
    event_key,
    polled_target,
)


class MemoryInbox:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.events: list[StoredEvent] = []
        self.keys: set[str] = set()
        self.tokens: dict[str, SyncState] = {}
        self.gaps: list[tuple[str, Optional[float]]] = []
        self.polled_calls: list[tuple[str, int, str, bool]] = []
        self.fail_next_store_polled = 0
        self._clock = clock
        self._lock = threading.Lock()

    def store(self, target: str, events: Sequence[Mapping[str, Any]]) -> StoreResult:
        with self._lock:
            return self._store(target, events)

    def _store(self, target: str, events: Sequence[Mapping[str, Any]]) -> StoreResult:
        stored = duplicates = 0
        ids = []
        for event in events:
            key = event_key(event)
            if key in self.keys:
                duplicates += 1
                continue
            self.keys.add(key)
            ident = str(len(self.events) + 1)
            self.events.append(
                StoredEvent(ident, key, target, self._clock(), json.dumps(dict(event)))
            )
            ids.append(ident)
            stored += 1
        return StoreResult(stored, duplicates, tuple(ids))

    def store_polled(
        self,
        resource: str,
        events: Sequence[Mapping[str, Any]],
        sync: str,
        *,
        restart: bool = False,
    ) -> StoreResult:
        with self._lock:
            if self.fail_next_store_polled:
                self.fail_next_store_polled -= 1
                raise OSError("disk full (simulated)")
            self.polled_calls.append((resource, len(events), sync, restart))
            result = self._store(polled_target(resource), events)
            now = self._clock()
            old = self.tokens.get(resource)
            covered = now if restart or old is None else old.covered_since
            self.tokens[resource] = SyncState(sync, now, covered)
            return result

    def sync_state(self, resource: str) -> Optional[SyncState]:
        return self.tokens.get(resource)

    def sync_token(self, resource: str) -> Optional[str]:
        state = self.tokens.get(resource)
        return state.token if state else None

    def note_gap(self, resource: str, since: Optional[float]) -> None:
        self.gaps.append((resource, since))

    def stats(self) -> InboxStats:
        return InboxStats(pending=len(self.events), gaps=len(self.gaps))

    def close(self) -> None:
        pass
