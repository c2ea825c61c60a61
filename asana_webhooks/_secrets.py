"""Where webhook secrets live between the handshake and every later delivery.

A store maps a *target key* (the path and query string a webhook delivers to, see
``target_key``) to the secret Asana handed over in the handshake. It also keeps
*announcements*: the application announces a target just before it creates a webhook for it,
and only an announced target accepts a handshake, so a stranger cannot plant a secret.

Every announcement has its own id. A target's announcements queue in the order they were
made: only the oldest live one (the *current* one) admits a handshake, exactly one, and
remembers the secret it stored, so that its creator (perhaps in another process) can check
it against Asana's answer and then withdraw that announcement, and no other. Two callers
establishing one target at once therefore take turns instead of reading each other's
handshake.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import string
import threading
import time
import uuid
from typing import Callable, Iterator, Optional, Protocol, Union, runtime_checkable
from urllib.parse import quote, urlsplit

import attrs

logger = logging.getLogger("asana_webhooks")

#: How long an announcement admits a handshake, in seconds. Asana sends the handshake while
#: the create call is still waiting, so a few minutes is ample.
DEFAULT_ANNOUNCEMENT_TTL = 300.0

#: How long an announcement nobody withdrew (its process died) is kept after it expired, in
#: seconds; its creator may still be finishing a slow create and want its handshake's secret.
ANNOUNCEMENT_GRACE = 3600.0

# Characters a URL path may carry unescaped (RFC 3986 pchar, plus "/"); a query adds "?".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9a-fA-F]{2})")


def _normalize(text: str, safe: str) -> str:
    # RFC 3986 6.2.2: decode escapes of unreserved characters only, upper-case the others,
    # and escape what may not appear unescaped (a "%" that starts no escape included). An
    # escaped reserved character stays escaped: "/a%2Fb" and "/a/b" are different targets.
    parts = []
    position = 0
    for match in _ESCAPE.finditer(text):
        parts.append(quote(text[position : match.start()], safe=safe, errors="surrogatepass"))
        char = chr(int(match.group(1), 16))
        parts.append(char if char in _UNRESERVED else match.group(0).upper())
        position = match.end()
    parts.append(quote(text[position:], safe=safe, errors="surrogatepass"))
    return "".join(parts)


def target_key(target: str) -> str:
    """The key a webhook's secret is stored under: the target's path plus its query string.

    ``"https://example.com/asana/1?team=a"`` and ``"/asana/1?team=a"`` give the same key, so the
    URL given to Asana and the path a web framework reports match. ``target`` is a URL or a
    path *as sent on the wire* (still escaped): adapters pass the raw request target, never
    a decoded path. Equivalent spellings share a key (``%7E`` and ``~``, ``%2f`` and
    ``%2F``, ``é`` and ``%C3%A9``); different URLs never do (``%2F`` and ``/`` differ).
    """
    if target.startswith("/"):
        # A bare path: urlsplit would take a leading "//" for a host name.
        path, _, query = target.partition("#")[0].partition("?")
    else:
        parts = urlsplit(target)
        path, query = parts.path, parts.query
    path = _normalize(path, _PATH_SAFE) or "/"
    return f"{path}?{_normalize(query, _QUERY_SAFE)}" if query else path


def requote_path(decoded_path: str) -> str:
    """Escape a path a server has already decoded, for ``target_key``, where no raw one exists.

    Exact for every path except those whose escaped reserved characters (``%2F``, ``%3B``,
    ...) the decoding erased: such a target then never matches, and its handshake is refused.
    """
    return quote(decoded_path, safe=_PATH_SAFE, errors="surrogatepass")


@runtime_checkable
class SecretStore(Protocol):
    """What ``WebhookReceiver`` and ``establish_webhook`` need from a secret store.

    Keys are ``target_key(...)`` values. Implementations must be safe to call from several
    threads (and, if shared, processes), and must make ``accept_handshake`` and
    ``withdraw_announcement`` atomic.

    Announcements: ``announce`` returns a new id each time. A target's *live* announcements
    (not withdrawn, not expired) are ordered by when they were made; the oldest is the
    *current* one, and only it may admit a handshake. ``establish_webhook`` waits until its
    announcement is current before it creates the webhook, so creates for one target never
    overlap. The shared contract tests are in ``tests/secret_store_contract.py``.
    """

    def get(self, target: str) -> Optional[str]:
        """The secret stored for ``target``, or None."""
        ...

    def set(self, target: str, secret: str) -> None:
        """Store ``secret`` for ``target``, replacing any other (for restoring a backup, say)."""
        ...

    def delete(self, target: str) -> None:
        """Forget ``target``'s secret, e.g. after deleting its webhook. No error if unknown."""
        ...

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> str:
        """Queue a new announcement for ``target``, live for ``ttl`` seconds; return its id.

        Raises ``ValueError`` unless ``ttl`` is positive. The id is an opaque string, unique
        across the store (a random UUID, say), never reused. Announcements of one target
        must become visible in the order they queue: once ``announce`` returns, no older
        announcement may appear later (on a database, take a per-target lock before
        numbering them).
        """
        ...

    def current_announcement(self, target: str) -> Optional[str]:
        """The id of ``target``'s oldest live announcement (the one that admits a handshake,
        if it has admitted none yet), or None if it has no live announcement."""
        ...

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        """Store a handshake's secret if it is welcome, atomically; tell whether it was.

        Welcome means: ``target``'s current announcement has not admitted a handshake yet
        (it then remembers ``secret``, which replaces any stored secret); or
        ``require_announcement`` is false, ``target`` has no live announcement and no secret
        yet. Anything else stores nothing. Announcements queued behind the current one admit
        nothing until it is withdrawn or expires.
        """
        ...

    def withdraw_announcement(self, target: str, announcement: str) -> Optional[str]:
        """End the announcement ``announcement`` of ``target``, and only it; return the
        secret its handshake stored, if one did (even if it has expired since).

        Unknown, already withdrawn or another target's ids: nothing happens, None is
        returned. After it returns, the announcement admits nothing.
        """
        ...


@attrs.frozen
class Contact:
    """When a target last heard from Asana, as the receiver recorded it (Unix times)."""

    last_heartbeat: Optional[float] = None
    last_delivery: Optional[float] = None

    @property
    def last(self) -> Optional[float]:
        """The later of the two, or None if the target never heard from Asana."""
        times = [t for t in (self.last_heartbeat, self.last_delivery) if t is not None]
        return max(times) if times else None


@runtime_checkable
class RecordsContact(Protocol):
    """A secret store that keeps the receiver's record of heartbeats and deliveries.

    Every store in this library does; ``WebhookReceiver`` writes to it, ``webhook_health``
    and ``ensure_webhooks`` read it. Times are Unix times; a store keeps the latest of each.
    """

    def record_contact(self, target: str, *, heartbeat: bool, at: float) -> None: ...

    def last_contact(self, target: str) -> Contact: ...


@runtime_checkable
class SupportsLocks(Protocol):
    """A secret store that can hold a short named lock, across processes, with an expiry.

    ``acquire_lock`` returns a token if the lock was free (or its holder's ``ttl`` ran out),
    else None, at once; ``renew_lock`` gives the holder ``ttl`` more seconds and says whether
    the token still held it; ``release_lock`` lets go only if the token still holds it.
    ``ensure_webhooks`` serialises its runs with it. Every store in this library has one.
    """

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]: ...

    def renew_lock(self, name: str, token: str, ttl: float) -> bool: ...

    def release_lock(self, name: str, token: str) -> None: ...


def _check_ttl(ttl: float) -> float:
    if not ttl > 0:
        raise ValueError(f"announcement ttl must be positive seconds, got {ttl!r}")
    return float(ttl)


def new_announcement_id() -> str:
    """A fresh announcement id: random, so ids never repeat across stores or restarts."""
    return uuid.uuid4().hex


def _check_lock(name: str, ttl: float) -> float:
    if not name:
        raise ValueError("a lock needs a name")
    if not ttl > 0:
        raise ValueError(f"lock ttl must be positive seconds, got {ttl!r}")
    return float(ttl)


class _Announcement:
    __slots__ = ("expires_at", "id", "received", "target")

    def __init__(self, announcement_id: str, target: str, expires_at: float) -> None:
        self.id = announcement_id
        self.target = target
        self.expires_at = expires_at
        self.received: Optional[str] = None


class MemorySecretStore:
    """A secret store in this process's memory: for tests and one-process scripts.

    Thread-safe. Secrets are lost when the process exits, so a long-lived server should use
    ``SQLiteSecretStore`` or ``DjangoSecretStore``.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        # target -> its announcements, oldest first; id -> announcement
        self._queues: dict[str, list[_Announcement]] = {}
        self._announcements: dict[str, _Announcement] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # name -> (token, expires_at)
        self._contacts: dict[str, tuple[Optional[float], Optional[float]]] = {}

    def __repr__(self) -> str:
        return f"MemorySecretStore(<{len(self._secrets)} secrets>)"

    def get(self, target: str) -> Optional[str]:
        with self._lock:
            return self._secrets.get(target_key(target))

    def set(self, target: str, secret: str) -> None:
        with self._lock:
            self._secrets[target_key(target)] = secret

    def delete(self, target: str) -> None:
        with self._lock:
            self._secrets.pop(target_key(target), None)

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> str:
        key = target_key(target)
        ttl = _check_ttl(ttl)
        with self._lock:
            now = self._clock()
            queue = self._queues.setdefault(key, [])
            for stale in [a for a in queue if a.expires_at + ANNOUNCEMENT_GRACE <= now]:
                queue.remove(stale)
                del self._announcements[stale.id]
            announcement = _Announcement(new_announcement_id(), key, now + ttl)
            queue.append(announcement)
            self._announcements[announcement.id] = announcement
            return announcement.id

    def _current(self, key: str) -> Optional[_Announcement]:
        now = self._clock()
        for announcement in self._queues.get(key, ()):
            if announcement.expires_at > now:
                return announcement
        return None

    def current_announcement(self, target: str) -> Optional[str]:
        with self._lock:
            current = self._current(target_key(target))
            return None if current is None else current.id

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        key = target_key(target)
        with self._lock:
            current = self._current(key)
            if current is not None:
                if current.received is not None:
                    return False
                current.received = secret
                self._secrets[key] = secret
                return True
            if require_announcement or key in self._secrets:
                return False
            self._secrets[key] = secret
            return True

    # --- the ensure lock and the receiver's record of contact ------------------------------

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds; its token, or None if another holds it."""
        ttl = _check_lock(name, ttl)
        with self._lock:
            now = self._clock()
            held = self._locks.get(name)
            if held is not None and held[1] > now:
                return None
            token = uuid.uuid4().hex
            self._locks[name] = (token, now + ttl)
            return token

    def renew_lock(self, name: str, token: str, ttl: float) -> bool:
        """Hold the lock ``name`` ``ttl`` more seconds from now, if ``token`` still holds it."""
        ttl = _check_lock(name, ttl)
        with self._lock:
            now = self._clock()
            held = self._locks.get(name)
            if held is None or held[0] != token or held[1] <= now:
                return False
            self._locks[name] = (token, now + ttl)
            return True

    def release_lock(self, name: str, token: str) -> None:
        """Let go of the lock ``name`` if ``token`` still holds it (else nothing happens)."""
        with self._lock:
            held = self._locks.get(name)
            if held is not None and held[0] == token:
                del self._locks[name]

    def record_contact(self, target: str, *, heartbeat: bool, at: float) -> None:
        """Note that ``target`` heard from Asana at ``at`` (a heartbeat, or a delivery)."""
        key = target_key(target)
        with self._lock:
            beat, delivery = self._contacts.get(key, (None, None))
            if heartbeat:
                beat = at if beat is None else max(beat, at)
            else:
                delivery = at if delivery is None else max(delivery, at)
            self._contacts[key] = (beat, delivery)

    def last_contact(self, target: str) -> Contact:
        """When ``target`` last had a heartbeat and a delivery (None where never)."""
        with self._lock:
            beat, delivery = self._contacts.get(target_key(target), (None, None))
        return Contact(last_heartbeat=beat, last_delivery=delivery)

    def withdraw_announcement(self, target: str, announcement: str) -> Optional[str]:
        key = target_key(target)
        with self._lock:
            found = self._announcements.get(announcement)
            if found is None or found.target != key:
                return None
            del self._announcements[announcement]
            queue = self._queues[key]
            queue.remove(found)
            if not queue:
                del self._queues[key]
            return found.received


_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_secrets (
    target TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_announcement_queue (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    target TEXT NOT NULL,
    expires_at REAL NOT NULL,
    handshake_secret TEXT
);
CREATE INDEX IF NOT EXISTS webhook_announcement_queue_target
    ON webhook_announcement_queue (target, seq);
CREATE TABLE IF NOT EXISTS webhook_locks (
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_contacts (
    target TEXT PRIMARY KEY,
    last_heartbeat REAL,
    last_delivery REAL
);
"""
# (Versions before announcements had ids kept them in "webhook_announcements", keyed by
# target; that table is left alone so that an older process sharing the file fails no worse.)

_MEMORY = ":memory:"
# Errors that mean "another connection holds the lock": worth waiting for, within the timeout.
_BUSY = ("locked", "busy")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return any(word in message for word in _BUSY)


def create_owner_only(path: str) -> None:
    """Create ``path`` (0600) if it does not exist; never open and close a live database.

    Closing any descriptor of a file drops every POSIX lock this process holds on it, the
    locks of SQLite's own open connections included: SQLite's documented way to corrupt a
    database. So only a file that is not there yet is opened here (O_EXCL).
    """
    if os.path.exists(path):
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another thread or process made it first
    os.close(fd)


def existing_file_uri(path: str) -> str:
    """A SQLite URI that opens ``path`` read-write and never creates it (``mode=rw``).

    Leading slashes are folded into one: POSIX keeps ``//tmp/x`` as it is (a
    ``sqlite:////tmp/x`` URL gives that path), and ``file://tmp/x`` would make ``tmp`` the
    URI's authority, which SQLite refuses.
    """
    absolute = os.path.abspath(path)
    absolute = "/" + absolute.lstrip("/") if absolute.startswith("/") else absolute
    return "file:" + quote(absolute) + "?mode=rw"


class SQLiteSecretStore:
    """Secrets in one SQLite file, shared by every process and thread that opens it.

    Safe for several web-server workers on one machine: WAL journaling, a finite busy
    timeout, one short transaction per call and a fresh connection per call (so nothing is
    shared across threads or inherited across ``fork``). Every write transaction takes the
    write lock first (``BEGIN IMMEDIATE``), so concurrent callers wait their turn instead of
    failing with "database is locked". A process that dies mid-write leaves the previous
    state. A file this store creates is readable by its owner only (0600); SQLite gives its
    ``-wal`` and ``-shm`` files the same mode. If the file is deleted while in use, the next
    call creates it again (0600, empty) and logs a warning. Not for network file systems,
    where SQLite's locking is unreliable.

    ``SQLiteSecretStore(":memory:")`` keeps the secrets in memory instead, in one connection
    shared by the store's threads (one call at a time): for tests and one-process scripts.

    ``timeout`` is how long a call waits for another writer, in seconds.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        self.path = os.fspath(path)
        if not self.path:
            raise ValueError(
                "SQLiteSecretStore needs a file path (or ':memory:'); an empty path would "
                "give every connection its own temporary database"
            )
        if self.path.startswith("file:"):
            raise ValueError(
                f"SQLiteSecretStore takes a file path, not a URI: {self.path!r}; "
                "pass the path itself (or ':memory:')"
            )
        self.timeout = float(timeout)
        self._clock = clock
        self._ready = False
        self._ready_lock = threading.Lock()
        # ":memory:": one connection for the store's life, used by one thread at a time.
        self._memory: Optional[sqlite3.Connection] = None

    def __repr__(self) -> str:
        return f"SQLiteSecretStore({self.path!r})"

    @property
    def _in_memory(self) -> bool:
        return self.path == _MEMORY

    # --- connections and set-up -----------------------------------------------------------

    def _prepare(self) -> None:
        create_owner_only(self.path)
        # Many processes may open a fresh file at once: switching to WAL needs a lock that
        # SQLite does not wait for, so set-up retries on "locked" within the timeout.
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                self._set_up(self._connect_file())
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _set_up(self, connection: sqlite3.Connection) -> None:
        try:
            # WAL lets readers run beside a writer; the mode is stored in the file, set once.
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def _connect_file(self) -> sqlite3.Connection:
        # mode=rw: never let SQLite create the file (it would be born with the umask's mode,
        # and without our tables); a missing file is an error we handle by preparing it.
        # isolation_level=None: we issue BEGIN ourselves, so every transaction is explicit.
        # timeout= is SQLite's busy timeout: how long to wait for another writer's lock.
        uri = existing_file_uri(self.path)
        return sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)

    def _memory_connection(self) -> sqlite3.Connection:
        if self._memory is None:
            connection = sqlite3.connect(_MEMORY, isolation_level=None, check_same_thread=False)
            connection.executescript(_SCHEMA)
            self._memory = connection
        return self._memory

    def _ensure_ready(self) -> None:
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    self._prepare()
                    self._ready = True

    def _recreate(self, why: BaseException) -> None:
        # The file (or its tables) vanished while we ran: make it again, owner-only, empty.
        with self._ready_lock:
            existed = os.path.exists(self.path)
            if existed and self._has_schema():
                return  # another thread got here first
            logger.warning(
                "The secret store %s %s while in use (%s); creating it again, empty: "
                "webhooks established before must be established again",
                self.path,
                "lost its tables" if existed else "was deleted",
                why,
            )
            self._prepare()

    def _has_schema(self) -> bool:
        try:
            connection = self._connect_file()
        except sqlite3.Error:
            return False
        try:
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error:
            return False
        finally:
            connection.close()
        return {"webhook_secrets", "webhook_announcement_queue"} <= tables

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        if self._in_memory:
            with self._ready_lock:
                yield from self._run(self._memory_connection(), write, close=False)
            return
        self._ensure_ready()
        try:
            connection = self._open_checked()
        except _Missing as missing:
            self._recreate(missing.cause)
            connection = self._connect_file()
        yield from self._run(connection, write, close=True)

    def _open_checked(self) -> sqlite3.Connection:
        try:
            connection = self._connect_file()
        except sqlite3.OperationalError as exc:
            # Missing, or just made again by another thread (so checking whether it exists
            # now would race): _recreate looks under the lock. Something that is there but
            # no file (a folder, say) is a real failure: say so, never "creating it again".
            if os.path.exists(self.path) and not os.path.isfile(self.path):
                raise
            raise _Missing(exc) from exc
        try:
            # One cheap look at the schema catches a file replaced by an empty one.
            if (
                connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'webhook_announcement_queue'"
                ).fetchone()
                is None
            ):
                raise _Missing(sqlite3.OperationalError("no such table"))
        except BaseException:
            connection.close()
            raise
        return connection

    @staticmethod
    def _run(
        connection: sqlite3.Connection, write: bool, *, close: bool
    ) -> Iterator[sqlite3.Connection]:
        try:
            # IMMEDIATE takes the write lock up front, so a read-then-write cannot interleave.
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            if close:
                connection.close()

    # --- the store ------------------------------------------------------------------------

    def get(self, target: str) -> Optional[str]:
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT secret FROM webhook_secrets WHERE target = ?", (target_key(target),)
            ).fetchone()
        return None if row is None else str(row[0])

    def set(self, target: str, secret: str) -> None:
        with self._transaction(write=True) as db:
            self._put(db, target_key(target), secret)

    def _put(self, db: sqlite3.Connection, key: str, secret: str) -> None:
        db.execute(
            "INSERT INTO webhook_secrets (target, secret, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (target) DO UPDATE SET secret = excluded.secret, "
            "updated_at = excluded.updated_at",
            (key, secret, self._clock()),
        )

    def delete(self, target: str) -> None:
        with self._transaction(write=True) as db:
            db.execute("DELETE FROM webhook_secrets WHERE target = ?", (target_key(target),))

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> str:
        key = target_key(target)
        ttl = _check_ttl(ttl)
        announcement = new_announcement_id()
        with self._transaction(write=True) as db:
            now = self._clock()
            db.execute(
                "DELETE FROM webhook_announcement_queue WHERE target = ? AND expires_at <= ?",
                (key, now - ANNOUNCEMENT_GRACE),
            )
            db.execute(
                "INSERT INTO webhook_announcement_queue (id, target, expires_at) VALUES (?, ?, ?)",
                (announcement, key, now + ttl),
            )
        return announcement

    def _current(self, db: sqlite3.Connection, key: str) -> Optional[tuple[str, Optional[str]]]:
        row = db.execute(
            "SELECT id, handshake_secret FROM webhook_announcement_queue "
            "WHERE target = ? AND expires_at > ? ORDER BY seq LIMIT 1",
            (key, self._clock()),
        ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def current_announcement(self, target: str) -> Optional[str]:
        with self._transaction(write=False) as db:
            current = self._current(db, target_key(target))
        return None if current is None else current[0]

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        key = target_key(target)
        with self._transaction(write=True) as db:
            current = self._current(db, key)
            if current is not None:
                announcement, received = current
                if received is not None:
                    return False
                db.execute(
                    "UPDATE webhook_announcement_queue SET handshake_secret = ? WHERE id = ?",
                    (secret, announcement),
                )
                self._put(db, key, secret)
                return True
            if require_announcement:
                return False
            stored = db.execute("SELECT 1 FROM webhook_secrets WHERE target = ?", (key,))
            if stored.fetchone() is not None:
                return False
            self._put(db, key, secret)
            return True

    def withdraw_announcement(self, target: str, announcement: str) -> Optional[str]:
        key = target_key(target)
        with self._transaction(write=True) as db:
            row = db.execute(
                "SELECT handshake_secret FROM webhook_announcement_queue "
                "WHERE id = ? AND target = ?",
                (announcement, key),
            ).fetchone()
            db.execute(
                "DELETE FROM webhook_announcement_queue WHERE id = ? AND target = ?",
                (announcement, key),
            )
        return None if row is None or row[0] is None else str(row[0])

    # --- the ensure lock and the receiver's record of contact ------------------------------

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds; its token, or None if another holds it.

        One ``BEGIN IMMEDIATE`` transaction: processes sharing the file take turns, and an
        expired lock (its holder died) is taken over in the same step.
        """
        ttl = _check_lock(name, ttl)
        token = uuid.uuid4().hex
        with self._transaction(write=True) as db:
            now = self._clock()
            db.execute("DELETE FROM webhook_locks WHERE name = ? AND expires_at <= ?", (name, now))
            taken = db.execute(
                "INSERT OR IGNORE INTO webhook_locks (name, token, expires_at) VALUES (?, ?, ?)",
                (name, token, now + ttl),
            )
            return token if taken.rowcount == 1 else None

    def renew_lock(self, name: str, token: str, ttl: float) -> bool:
        """Hold the lock ``name`` ``ttl`` more seconds from now, if ``token`` still holds it."""
        ttl = _check_lock(name, ttl)
        with self._transaction(write=True) as db:
            now = self._clock()
            renewed = db.execute(
                "UPDATE webhook_locks SET expires_at = ? "
                "WHERE name = ? AND token = ? AND expires_at > ?",
                (now + ttl, name, token, now),
            )
            return renewed.rowcount == 1

    def release_lock(self, name: str, token: str) -> None:
        """Let go of the lock ``name`` if ``token`` still holds it (else nothing happens)."""
        with self._transaction(write=True) as db:
            db.execute("DELETE FROM webhook_locks WHERE name = ? AND token = ?", (name, token))

    def record_contact(self, target: str, *, heartbeat: bool, at: float) -> None:
        """Note that ``target`` heard from Asana at ``at`` (a heartbeat, or a delivery)."""
        column = "last_heartbeat" if heartbeat else "last_delivery"
        with self._transaction(write=True) as db:
            db.execute(
                f"INSERT INTO webhook_contacts (target, {column}) VALUES (?, ?) "  # noqa: S608
                f"ON CONFLICT (target) DO UPDATE SET {column} = "
                f"max(coalesce({column}, excluded.{column}), excluded.{column})",
                (target_key(target), float(at)),
            )

    def last_contact(self, target: str) -> Contact:
        """When ``target`` last had a heartbeat and a delivery (None where never)."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT last_heartbeat, last_delivery FROM webhook_contacts WHERE target = ?",
                (target_key(target),),
            ).fetchone()
        if row is None:
            return Contact()
        return Contact(last_heartbeat=row[0], last_delivery=row[1])


class _Missing(Exception):
    """The store's file or tables are gone; ``cause`` says how we noticed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause
