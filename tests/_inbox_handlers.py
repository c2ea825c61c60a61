"""Handlers that worker processes in the inbox tests import (``--handler _inbox_handlers:NAME``).

``record`` is the idempotent handler the docs describe: it remembers each event's key in the
same transaction as its effect, so a redelivered event has no second effect. Every call is
also appended to a log first, so a test can see that some events were delivered again.
Files come from environment variables set by the test.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence

from asana_webhooks import Event, event_key


def _effects_db() -> sqlite3.Connection:
    db = sqlite3.connect(os.environ["INBOX_TEST_EFFECTS"], timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT NOT NULL, target TEXT NOT NULL)")
    return db


def record(events: Sequence[Event], target: str) -> None:
    keys = [event_key(event) for event in events]
    with open(os.environ["INBOX_TEST_CALLS"], "a") as calls:
        calls.write("".join(f"{key}\n" for key in keys))
    time.sleep(float(os.environ.get("INBOX_TEST_SLEEP", "0")))
    db = _effects_db()
    try:
        db.execute("BEGIN IMMEDIATE")
        for key in keys:
            if db.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone():
                continue  # handled before (at-least-once delivery): no second effect
            db.execute("INSERT INTO seen (key) VALUES (?)", (key,))
            db.execute("INSERT INTO effects (key, target) VALUES (?, ?)", (key, target))
        db.execute("COMMIT")
    finally:
        db.close()


def fail_on_marked(events: Sequence[Event], target: str) -> None:
    """Raise for an event whose resource name is "poison"; record the rest."""
    if any(event.resource is not None and event.resource.name == "poison" for event in events):
        raise RuntimeError("poison event")
    record(events, target)


def die_on_marked(events: Sequence[Event], target: str) -> None:
    """Kill the whole process (as a segfault or the OOM killer would) on a "poison" event."""
    if any(event.resource is not None and event.resource.name == "poison" for event in events):
        os._exit(3)
    record(events, target)
