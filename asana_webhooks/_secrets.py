"""Where webhook secrets live between the handshake and every later delivery.

A store maps a *target key* (the path and query string a webhook delivers to, see
``target_key``) to the secret Asana handed over in the handshake. It also keeps
*announcements*: the application announces a target just before it creates a webhook for it,
and only an announced target accepts a handshake, so a stranger cannot plant a secret. One
announcement admits exactly one handshake, and remembers which secret it stored, so that the
creator (perhaps in another process) can check it against Asana's answer.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from typing import Callable, Iterator, Optional, Protocol, Union, runtime_checkable
from urllib.parse import quote, unquote, urlsplit

#: How long an announcement admits a handshake, in seconds. Asana sends the handshake while
#: the create call is still waiting, so a few minutes is ample.
DEFAULT_ANNOUNCEMENT_TTL = 300.0

# Characters a URL path or query may carry unescaped (RFC 3986 pchar, plus "/" and "?").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?%"
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def target_key(target: str) -> str:
    """The key a webhook's secret is stored under: the target's path plus its query string.

    ``"https://example.com/asana/1?team=a"`` and ``"/asana/1?team=a"`` give the same key, so the
    URL given to Asana and the path a web framework reports match. The path is compared
    decoded (``%7E`` and ``~`` are the same path; so, alas, are ``%2F`` and ``/``); the query
    string is kept as sent, only with unsafe characters escaped and escapes upper-cased.
    """
    if target.startswith("/"):
        # A bare path: urlsplit would take a leading "//" for a host name.
        path, _, query = target.partition("#")[0].partition("?")
    else:
        parts = urlsplit(target)
        path, query = parts.path, parts.query
    # surrogatepass: a path a server decoded with surrogateescape still gets a key, not a crash.
    path = quote(unquote(path), safe=_PATH_SAFE, errors="surrogatepass") or "/"
    if not query:
        return path
    query = _ESCAPE.sub(
        lambda m: m.group(0).upper(), quote(query, safe=_QUERY_SAFE, errors="surrogatepass")
    )
    return f"{path}?{query}"


@runtime_checkable
class SecretStore(Protocol):
    """What ``WebhookReceiver`` and ``establish_webhook`` need from a secret store.

    Keys are ``target_key(...)`` values. Implementations must be safe to call from several
    threads (and, if shared, processes), and must make ``accept_handshake`` atomic.
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

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> None:
        """Admit one handshake for ``target`` during the next ``ttl`` seconds."""
        ...

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        """Store a handshake's secret if it is welcome, atomically; tell whether it was.

        Welcome means: ``target`` has a live announcement that has not admitted a handshake
        yet (the announcement then remembers ``secret``), or ``require_announcement`` is false
        and ``target`` has no secret yet. Anything else stores nothing.
        """
        ...

    def withdraw_announcement(self, target: str) -> Optional[str]:
        """End ``target``'s announcement; return the secret its handshake stored, if any."""
        ...


def _check_ttl(ttl: float) -> float:
    if not ttl > 0:
        raise ValueError(f"announcement ttl must be positive seconds, got {ttl!r}")
    return float(ttl)


class MemorySecretStore:
    """A secret store in this process's memory: for tests and one-process scripts.

    Thread-safe. Secrets are lost when the process exits, so a long-lived server should use
    ``SQLiteSecretStore`` or ``DjangoSecretStore``.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        # target -> (expires_at, secret stored by the handshake it admitted)
        self._announcements: dict[str, tuple[float, Optional[str]]] = {}

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

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> None:
        expires_at = self._clock() + _check_ttl(ttl)
        with self._lock:
            self._announcements[target_key(target)] = (expires_at, None)

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        key = target_key(target)
        with self._lock:
            announcement = self._announcements.get(key)
            if announcement is not None:
                expires_at, received = announcement
                if received is None and expires_at > self._clock():
                    self._announcements[key] = (expires_at, secret)
                    self._secrets[key] = secret
                    return True
                return False
            if require_announcement or key in self._secrets:
                return False
            self._secrets[key] = secret
            return True

    def withdraw_announcement(self, target: str) -> Optional[str]:
        with self._lock:
            announcement = self._announcements.pop(target_key(target), None)
        return None if announcement is None else announcement[1]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_secrets (
    target TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_announcements (
    target TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    handshake_secret TEXT
);
"""


class SQLiteSecretStore:
    """Secrets in one SQLite file, shared by every process and thread that opens it.

    Safe for several web-server workers on one machine: WAL journaling, a finite busy
    timeout, one short transaction per call and a fresh connection per call (so nothing is
    shared across threads or inherited across ``fork``). A process that dies mid-write
    leaves the previous state. A file this store creates is readable by its owner only
    (0600); SQLite gives its ``-wal`` and ``-shm`` files the same mode. Not for network
    file systems, where SQLite's locking is unreliable.

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
        self.timeout = float(timeout)
        self._clock = clock
        self._ready = False
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteSecretStore({self.path!r})"

    def _prepare(self) -> None:
        # Create the file ourselves so that it is born 0600: sqlite3 would honour the umask.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        connection = self._connect_raw()
        try:
            # WAL lets readers run beside a writer; the mode is stored in the file, set once.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
        finally:
            connection.close()

    def _connect_raw(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so every transaction is explicit.
        # timeout= is SQLite's busy timeout: how long to wait for another writer's lock.
        return sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    self._prepare()
                    self._ready = True
        connection = self._connect_raw()
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
            connection.close()

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

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> None:
        expires_at = self._clock() + _check_ttl(ttl)
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO webhook_announcements "
                "(target, expires_at, handshake_secret) VALUES (?, ?, NULL)",
                (target_key(target), expires_at),
            )

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        key = target_key(target)
        with self._transaction(write=True) as db:
            announced = db.execute(
                "SELECT expires_at, handshake_secret FROM webhook_announcements WHERE target = ?",
                (key,),
            ).fetchone()
            if announced is not None:
                expires_at, received = announced
                if received is not None or expires_at <= self._clock():
                    return False
                db.execute(
                    "UPDATE webhook_announcements SET handshake_secret = ? WHERE target = ?",
                    (secret, key),
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

    def withdraw_announcement(self, target: str) -> Optional[str]:
        key = target_key(target)
        with self._transaction(write=True) as db:
            row = db.execute(
                "SELECT handshake_secret FROM webhook_announcements WHERE target = ?", (key,)
            ).fetchone()
            db.execute("DELETE FROM webhook_announcements WHERE target = ?", (key,))
        return None if row is None or row[0] is None else str(row[0])
