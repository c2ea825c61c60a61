"""``SQLiteInbox``: the embedded inbox, one SQLite file shared by the processes of one machine.

Every call is one short transaction; a write takes the lock up front (``BEGIN IMMEDIATE``),
so a claim cannot interleave with another. WAL journaling lets readers run beside the one
writer, and ``synchronous=FULL`` makes a stored delivery survive a power cut, not only a
crash, before the receiver answers 200.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from asana_webhooks._inbox import (
    DEFAULT_DEDUPE_WINDOW,
    LEASE_LOST,
    Claim,
    InboxStats,
    StoredEvent,
    StoreResult,
    SyncState,
    event_key,
    polled_target,
)
from asana_webhooks._secrets import create_owner_only, existing_file_uri

# States of a stored event. "claimed" with a lease in the past is as good as "pending".
_PENDING, _CLAIMED, _DONE, _FAILED, _PURGED = "pending", "claimed", "done", "failed", "purged"

# Handled events stay for the dedupe window: the partial indexes keep the search for work off
# them. (Statements are run one by one, split on semicolons: keep them out of comments.)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    target TEXT NOT NULL,
    delivery INTEGER NOT NULL,
    received_at REAL NOT NULL,
    raw TEXT NOT NULL,
    state TEXT NOT NULL,
    available_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claim_token TEXT,
    claimed_by TEXT,
    lease_expires REAL,
    error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS inbox_events_open ON inbox_events (id)
    WHERE state IN ('pending', 'claimed');
CREATE INDEX IF NOT EXISTS inbox_events_finished ON inbox_events (finished_at)
    WHERE state IN ('done', 'purged');
CREATE INDEX IF NOT EXISTS inbox_events_failed ON inbox_events (id) WHERE state = 'failed';
CREATE TABLE IF NOT EXISTS inbox_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_sync_tokens (
    resource TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    updated_at REAL NOT NULL,
    covered_since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    resource TEXT NOT NULL,
    since REAL,
    noted_at REAL NOT NULL
);
"""

# The SQL below is put together from these module constants only (hence the S608 noqas);
# every value goes in as a parameter.
_COUNTERS = ("deliveries", "stored", "duplicates", "handled", "retried", "parked", "gaps")
_OPEN = "state IN ('pending', 'claimed')"
# Available to claim: pending past its retry delay, or claimed under a lease that ran out.
_AVAILABLE = (
    f"{_OPEN} AND ((state = 'pending' AND available_at <= ?) "
    "OR (state = 'claimed' AND lease_expires <= ?))"
)
_STORED_COLUMNS = "id, key, target, received_at, raw, attempts, error"
# A writer's SQLite busy timeout per attempt (ms): its busy handler sleeps 1, 2, 5 ms within
# it, and the writer asks again until the inbox's ``timeout``. Readers wait the whole timeout.
logger = logging.getLogger("asana_webhooks")

_BUSY_STEP_MS = 10
# Idle connections kept per process; more threads than this open and close their own.
_POOL_SIZE = 8


class SQLiteInbox:
    """The inbox in one SQLite file: several processes and threads on one machine may share it.

    * ``path``: the file, created readable by its owner only (0600).
    * ``dedupe_window``: seconds the keys of handled events are kept to drop redeliveries
      (default 48 hours; Asana retries a delivery for 24).
    * ``timeout``: SQLite's busy timeout, how long a call waits for another writer, seconds.

    Connections are pooled per process (a forked child opens its own). Not for
    network file systems, where SQLite's locking is unreliable.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        if os.fspath(path) in ("", ":memory:") or os.fspath(path).startswith("file:"):
            # Every connection to ":memory:" is a database of its own: the workers would
            # never see what the receiver stored.
            raise ValueError(
                f"SQLiteInbox needs a file path, got {os.fspath(path)!r}; workers in other "
                "threads and processes must reach the same file"
            )
        if not dedupe_window >= 0:
            raise ValueError(f"dedupe_window must be seconds >= 0, got {dedupe_window!r}")
        self.path = os.fspath(path)
        self.dedupe_window = float(dedupe_window)
        self.timeout = float(timeout)
        self._clock = clock
        self._ready = False
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[_PendingStore] = []
        self._pid = os.getpid()
        self._pool: list[sqlite3.Connection] = []
        self._file: Optional[tuple[int, int]] = None  # (device, inode) of the file prepared

    def __repr__(self) -> str:
        return f"SQLiteInbox({self.path!r})"

    # --- connections and transactions ---------------------------------------------------

    def _prepare(self) -> None:
        create_owner_only(self.path)
        connection = self._connect_raw()
        try:
            # Reads only when the file is ready (the usual case): a process starting beside
            # busy writers must not queue for the write lock just to find nothing to do.
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'inbox_counters'"
            ).fetchone()[0]
            if mode == "wal" and tables:
                return
            # WAL is stored in the file: set once, every later connection uses it.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_STEP_MS}")
            self._begin_immediate(connection)
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.executemany(
                    "INSERT OR IGNORE INTO inbox_counters (name, value) VALUES (?, 0)",
                    [(name,) for name in _COUNTERS],
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def _connect_raw(self) -> sqlite3.Connection:
        # mode=rw: SQLite must never create the file itself (it would be born with the
        # umask's mode and no tables); _prepare does. isolation_level=None: we issue BEGIN
        # ourselves. check_same_thread=False: pooled connections move between threads.
        connection = sqlite3.connect(
            existing_file_uri(self.path),
            uri=True,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    def _identity(self) -> Optional[tuple[int, int]]:
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (found.st_dev, found.st_ino)

    def _take(self) -> tuple[sqlite3.Connection, Optional[tuple[int, int]]]:
        """A connection, and the file it belongs to (so that it is not pooled after a swap)."""
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not use its parent's connections (SQLite forbids it).
                self._pid, self._pool = os.getpid(), []
            file = self._identity()
            if self._ready and file != self._file:
                # Deleted or replaced under us: pooled connections would go on writing into
                # the unlinked file, and the events would vanish with it. Start a new one.
                logger.warning(
                    "The inbox %s was deleted or replaced while in use; creating it again: "
                    "events stored in the old file are gone",
                    self.path,
                )
                for connection in self._pool:
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
                self._pool, self._ready = [], False
            if not self._ready:
                self._prepare()
                self._file, self._ready = self._identity(), True
            file = self._file
            if self._pool:
                return self._pool.pop(), file
        return self._connect_raw(), file

    def _give_back(self, connection: sqlite3.Connection, file: Optional[tuple[int, int]]) -> None:
        with self._lock:
            if self._pid == os.getpid() and file == self._file and len(self._pool) < _POOL_SIZE:
                self._pool.append(connection)
                return
        connection.close()

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        if not write:
            with self._open(write) as db:
                yield db
            return
        # Writers of this process queue on a lock rather than in SQLite's busy handler,
        # which sleeps in growing steps (up to 100 ms) and so gives a burst of concurrent
        # deliveries a long tail. Other processes still meet the busy timeout.
        if not self._write_lock.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError(
                f"database is locked: no write turn within {self.timeout:g} s"
            )
        try:
            with self._open(write) as db:
                yield db
        finally:
            self._release_write()

    def _begin_immediate(self, db: sqlite3.Connection) -> None:
        # SQLite's own busy handler sleeps in growing steps, up to 100 ms, while another
        # process writes; a receiver waiting behind a worker's claim would answer that much
        # later. So its busy timeout is short and we ask again, until our own timeout.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise

    @contextlib.contextmanager
    def _open(self, write: bool) -> Iterator[sqlite3.Connection]:
        db, file = self._take()
        try:
            # IMMEDIATE takes the write lock up front, so a read-then-write cannot interleave.
            if write:
                db.execute(f"PRAGMA busy_timeout = {_BUSY_STEP_MS}")
                self._begin_immediate(db)
            else:
                db.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                db.execute("BEGIN")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except BaseException:
            # A connection in an unknown state is not worth keeping.
            with contextlib.suppress(sqlite3.Error):
                db.close()
            raise
        self._give_back(db, file)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, []
        for connection in pool:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    # --- storing ------------------------------------------------------------------------

    def store(self, target: str, events: Sequence[Mapping[str, Any]]) -> StoreResult:
        # Group commit: concurrent deliveries of this process share one transaction (and one
        # fsync, which costs far more than the writes), each under its own savepoint, so each
        # is still all or nothing. Whoever gets the write lock writes everything queued and
        # wakes the owners; the others wait on their own event, not on the lock, so a burst
        # does not turn into a convoy of threads taking the lock only to find their work done.
        pending = _PendingStore(target, events)
        with self._lock:
            self._queue.append(pending)
        deadline = time.monotonic() + self.timeout
        while not pending.done:
            if self._write_lock.acquire(blocking=False):
                try:
                    with self._lock:
                        group, self._queue = self._queue, []
                    if group:
                        self._store_group(group)
                finally:
                    self._release_write()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._lock:
                    if pending in self._queue:
                        self._queue.remove(pending)
                        raise sqlite3.OperationalError(
                            f"database is locked: no write turn within {self.timeout:g} s"
                        )
                remaining = 0.05  # a leader is writing ours: it ends within its own timeout
            if pending.wake.wait(min(remaining, 0.05)):
                pending.wake.clear()  # then try for the lock again: a lost wake costs nothing
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _release_write(self) -> None:
        self._write_lock.release()
        with self._lock:
            head = self._queue[0] if self._queue else None
        if head is not None:
            head.wake.set()  # the next delivery waiting leads the next group

    def _store_group(self, group: list[_PendingStore]) -> None:
        try:
            with self._open(write=True) as db:
                for pending in group:
                    db.execute("SAVEPOINT delivery")
                    try:
                        pending.result = self._store(db, pending.target, pending.events)
                    except Exception as exc:
                        db.execute("ROLLBACK TO delivery")
                        pending.error = exc
                    db.execute("RELEASE delivery")
        except Exception as exc:
            # The commit failed: nothing of the group was stored.
            for pending in group:
                pending.result, pending.error = None, exc
        finally:
            for pending in group:
                if pending.result is None and pending.error is None:  # interrupted
                    pending.error = sqlite3.OperationalError("the store was interrupted")
                pending.done = True
                pending.wake.set()

    def _store(
        self, db: sqlite3.Connection, target: str, events: Sequence[Mapping[str, Any]]
    ) -> StoreResult:
        now = self._clock()
        delivery = self._bump(db, "deliveries", 1)
        ids: list[str] = []
        seen: set[str] = set()
        duplicates = 0
        for event in events:
            if not isinstance(event, Mapping):
                raise TypeError(f"an event must be a JSON object, got {type(event).__name__}")
            key = event_key(event)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            cursor = db.execute(
                "INSERT OR IGNORE INTO inbox_events "
                "(key, target, delivery, received_at, raw, state, available_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (key, target, delivery, now, _dumps(event), now),
            )
            if cursor.rowcount:
                ids.append(str(cursor.lastrowid))
            else:
                duplicates += 1
        self._bump(db, "stored", len(ids))
        self._bump(db, "duplicates", duplicates)
        return StoreResult(stored=len(ids), duplicates=duplicates, ids=tuple(ids))

    def _bump(self, db: sqlite3.Connection, name: str, by: int) -> int:
        if by:
            db.execute("UPDATE inbox_counters SET value = value + ? WHERE name = ?", (by, name))
        row = db.execute("SELECT value FROM inbox_counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # --- claiming and settling ----------------------------------------------------------

    def claim(self, worker: str, *, lease: float, limit: int = 100) -> Optional[Claim]:
        if not lease > 0:
            raise ValueError(f"lease must be positive seconds, got {lease!r}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        with self._transaction() as db:
            now = self._clock()
            # Events under a lease that ran out: their worker died with them. Count it.
            db.execute(
                "UPDATE inbox_events SET state = 'pending', attempts = attempts + 1, "  # noqa: S608
                "error = ?, claim_token = NULL, lease_expires = NULL, available_at = ? "
                f"WHERE {_OPEN} AND state = 'claimed' AND lease_expires <= ?",
                (LEASE_LOST, now, now),
            )
            first = db.execute(
                f"SELECT target FROM inbox_events WHERE {_AVAILABLE} ORDER BY id LIMIT 1",  # noqa: S608
                (now, now),
            ).fetchone()
            if first is None:
                return None
            target = first[0]
            rows = db.execute(
                f"SELECT {_STORED_COLUMNS}, delivery FROM inbox_events "  # noqa: S608
                f"WHERE {_AVAILABLE} AND target = ? ORDER BY id LIMIT ?",
                (now, now, target, limit),
            ).fetchall()
            if len(rows) == limit:
                # Keep the last delivery whole: its events were meant to be seen together.
                rows += db.execute(
                    f"SELECT {_STORED_COLUMNS}, delivery FROM inbox_events "  # noqa: S608
                    f"WHERE {_AVAILABLE} AND target = ? AND delivery = ? AND id > ? "
                    "ORDER BY id",
                    (now, now, target, rows[-1][7], rows[-1][0]),
                ).fetchall()
            token = uuid.uuid4().hex
            expires_at = now + lease
            db.executemany(
                "UPDATE inbox_events SET state = 'claimed', claim_token = ?, claimed_by = ?, "
                "lease_expires = ? WHERE id = ?",
                [(token, worker, expires_at, row[0]) for row in rows],
            )
        return Claim(
            token=token,
            target=target,
            events=tuple(_stored(row) for row in rows),
            expires_at=expires_at,
        )

    def renew(self, claim: Claim, *, lease: float) -> bool:
        expires_at = self._clock() + lease
        with self._transaction() as db:
            changed = self._update_claimed(
                db, claim, "lease_expires = ?", (expires_at,), extra="AND state = 'claimed'"
            )
        return changed == len(claim.events)

    def complete(self, claim: Claim) -> None:
        with self._transaction() as db:
            done = self._update_claimed(
                db,
                claim,
                "state = 'done', finished_at = ?, claim_token = NULL, lease_expires = NULL",
                (self._clock(),),
            )
            self._bump(db, "handled", done)

    def retry(self, claim: Claim, error: str, *, delay: float) -> None:
        with self._transaction() as db:
            retried = self._update_claimed(
                db,
                claim,
                "state = 'pending', available_at = ?, attempts = attempts + 1, error = ?, "
                "claim_token = NULL, lease_expires = NULL",
                (self._clock() + max(0.0, delay), error),
            )
            self._bump(db, "retried", retried)

    def park(self, claim: Claim, error: str) -> None:
        with self._transaction() as db:
            parked = self._update_claimed(
                db,
                claim,
                "state = 'failed', attempts = attempts + 1, error = ?, finished_at = ?, "
                "claim_token = NULL, lease_expires = NULL",
                (error, self._clock()),
            )
            self._bump(db, "parked", parked)

    def release(self, claim: Claim) -> None:
        with self._transaction() as db:
            self._update_claimed(
                db,
                claim,
                "state = 'pending', available_at = ?, claim_token = NULL, lease_expires = NULL",
                (self._clock(),),
            )

    def _update_claimed(
        self,
        db: sqlite3.Connection,
        claim: Claim,
        assignments: str,
        values: tuple[Any, ...],
        *,
        extra: str = "",
    ) -> int:
        # Only rows still under this claim: after a lease ran out another worker owns them.
        changed = 0
        for event in claim.events:
            cursor = db.execute(
                f"UPDATE inbox_events SET {assignments} "  # noqa: S608
                f"WHERE id = ? AND claim_token = ? AND state = 'claimed' {extra}",
                (*values, _row_id(event.id), claim.token),
            )
            changed += cursor.rowcount
        return changed

    # --- parked events ------------------------------------------------------------------

    def failed(self, limit: int = 100) -> list[StoredEvent]:
        with self._transaction(write=False) as db:
            rows = db.execute(
                f"SELECT {_STORED_COLUMNS} FROM inbox_events WHERE state = 'failed' "  # noqa: S608
                "ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [_stored(row) for row in rows]

    def replay(self, ids: Sequence[str]) -> int:
        now = self._clock()
        found = 0
        with self._transaction() as db:
            for id_ in ids:
                row_id = _row_id(id_)
                if row_id is None:
                    continue
                found += db.execute(
                    "UPDATE inbox_events SET state = 'pending', available_at = ?, attempts = 0, "
                    "finished_at = NULL WHERE id = ? AND state = 'failed'",
                    (now, row_id),
                ).rowcount
        return found

    def purge(self) -> int:
        with self._transaction() as db:
            # Keep the row (and its key) so a redelivery is still known; drop the payload.
            return db.execute(
                "UPDATE inbox_events SET state = 'purged', raw = '', finished_at = ? "
                "WHERE state = 'failed'",
                (self._clock(),),
            ).rowcount

    def prune(self, *, older_than: Optional[float] = None) -> int:
        window = self.dedupe_window if older_than is None else older_than
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM inbox_events WHERE state IN ('done', 'purged') AND finished_at < ?",
                (self._clock() - window,),
            ).rowcount

    # --- observing ----------------------------------------------------------------------

    def stats(self) -> InboxStats:
        with self._transaction(write=False) as db:
            now = self._clock()
            counts = dict(
                db.execute(
                    "SELECT CASE WHEN state = 'claimed' AND lease_expires <= ? THEN 'pending' "
                    "ELSE state END, count(*) FROM inbox_events "
                    "WHERE state IN ('pending', 'claimed', 'failed') GROUP BY 1",
                    (now,),
                ).fetchall()
            )
            oldest = db.execute(f"SELECT min(received_at) FROM inbox_events WHERE {_OPEN}")  # noqa: S608
            oldest_at = oldest.fetchone()[0]
            counters = dict(db.execute("SELECT name, value FROM inbox_counters").fetchall())
        return InboxStats(
            pending=counts.get(_PENDING, 0),
            in_progress=counts.get(_CLAIMED, 0),
            failed=counts.get(_FAILED, 0),
            handled=counters.get("handled", 0),
            duplicates=counters.get("duplicates", 0),
            retried=counters.get("retried", 0),
            oldest_pending_age=None if oldest_at is None else max(0.0, now - oldest_at),
            gaps=counters.get("gaps", 0),
            stored=counters.get("stored", 0),
            parked=counters.get("parked", 0),
        )

    # --- the reconciler's state ---------------------------------------------------------

    def note_gap(self, resource: str, since: Optional[float]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO inbox_gaps (resource, since, noted_at) VALUES (?, ?, ?)",
                (resource, since, self._clock()),
            )
            self._bump(db, "gaps", 1)

    def sync_token(self, resource: str) -> Optional[str]:
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT token FROM inbox_sync_tokens WHERE resource = ?", (resource,)
            ).fetchone()
        return None if row is None else str(row[0])

    def sync_state(self, resource: str) -> Optional[SyncState]:
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT token, updated_at, covered_since FROM inbox_sync_tokens WHERE resource = ?",
                (resource,),
            ).fetchone()
        return None if row is None else SyncState(str(row[0]), float(row[1]), float(row[2]))

    def store_polled(
        self,
        resource: str,
        events: Sequence[Mapping[str, Any]],
        sync: str,
        *,
        restart: bool = False,
    ) -> StoreResult:
        with self._transaction() as db:
            result = self._store(db, polled_target(resource), events)
            now = self._clock()
            # covered_since: kept while the run of tokens is unbroken, now when it restarts.
            db.execute(
                "INSERT INTO inbox_sync_tokens (resource, token, updated_at, covered_since) "
                "VALUES (?, ?, ?, ?) "
                "ON CONFLICT (resource) DO UPDATE SET token = excluded.token, "
                "updated_at = excluded.updated_at, covered_since = CASE WHEN ? "
                "THEN excluded.covered_since ELSE inbox_sync_tokens.covered_since END",
                (resource, sync, now, now, restart),
            )
        return result


class _PendingStore:
    """One ``store`` call waiting for a group commit."""

    __slots__ = ("done", "error", "events", "result", "target", "wake")

    def __init__(self, target: str, events: Sequence[Mapping[str, Any]]) -> None:
        self.target = target
        self.events = events
        self.done = False
        self.result: Optional[StoreResult] = None
        self.error: Optional[BaseException] = None
        self.wake = threading.Event()


def _dumps(event: Mapping[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _row_id(id_: str) -> Optional[int]:
    text = str(id_).strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _stored(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(
        id=str(row[0]),
        key=row[1],
        target=row[2],
        received_at=row[3],
        raw=row[4],
        attempts=row[5],
        error=row[6],
    )
