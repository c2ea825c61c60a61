"""Inbox and secret-store URLs, as the command line takes them (``--inbox``, ``--secrets``).

* ``sqlite:///absolute/path.sqlite3`` or a plain file path: SQLite (``SQLiteInbox``,
  ``SQLiteSecretStore``), the embedded default.
* ``redis://HOST:PORT/DB`` (or ``rediss://`` for TLS): Redis, through
  ``asana_webhooks.contrib.redis`` (extra ``redis``), imported only then.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from asana_webhooks._errors import AsanaError

if TYPE_CHECKING:
    from asana_webhooks._inbox import Inbox
    from asana_webhooks._secrets import SecretStore


class InvalidURLError(AsanaError, ValueError):
    """An inbox or secret-store URL this library cannot open; the message names it and why."""


def sqlite_path(url: str) -> str:
    """The file a SQLite URL or plain path names; ``InvalidURLError`` if it cannot be one."""
    if url.startswith("sqlite:"):
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/") or parts.query:
            raise InvalidURLError(
                f"{url!r}: a SQLite URL is sqlite:///ABSOLUTE/PATH (three slashes, no host)"
            )
        # sqlite:////abs/path (SQLAlchemy's four slashes) means the same file.
        path = "/" + parts.path.lstrip("/")
    else:
        path = url
    if not path or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise InvalidURLError(f"{url!r}: not a file path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InvalidURLError(f"{url!r}: the directory {directory!r} does not exist")
    return path


def _kind(url: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise InvalidURLError(f"{url!r}: empty; give sqlite:///PATH, a file path or redis://")
    scheme = url.split(":", 1)[0].lower() if "://" in url or url.startswith("sqlite:") else ""
    if scheme in ("", "sqlite"):
        return "sqlite"
    if scheme in ("redis", "rediss", "unix"):
        return "redis"
    raise InvalidURLError(
        f"{url!r}: unknown scheme {scheme!r}; give sqlite:///PATH, a file path or redis://HOST:PORT/DB"
    )


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names SQLite (a ``sqlite:`` URL or a plain path); raises for nonsense."""
    return _kind(url) == "sqlite"


def _redis_module() -> Any:
    try:
        return importlib.import_module("asana_webhooks.contrib.redis")
    except ImportError as exc:
        raise InvalidURLError(
            f"redis URLs need the redis extra (pip install 'asana-webhooks[redis]'): {exc}"
        ) from None


def _check_redis(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "unix" and not parts.hostname:
        raise InvalidURLError(f"{redacted(url)!r}: a Redis URL is redis://HOST:PORT/DB")
    try:
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise InvalidURLError(f"{redacted(url)!r}: the port is not a number") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise InvalidURLError(f"{redacted(url)!r}: the database must be a number, got {db!r}")


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_inbox(url: str) -> Inbox:
    """The inbox at ``url``; raises ``InvalidURLError`` naming a URL it cannot open.

    Opening connects to nothing yet: an unreachable server shows on first use.
    """
    if _kind(url) == "sqlite":
        from asana_webhooks._sqlite_inbox import SQLiteInbox

        return SQLiteInbox(sqlite_path(url))
    _check_redis(url)
    inbox: Inbox = _redis_module().RedisInbox(url)
    return inbox


def open_secret_store(url: str) -> SecretStore:
    """The secret store at ``url``; raises ``InvalidURLError`` naming a URL it cannot open."""
    if _kind(url) == "sqlite":
        from asana_webhooks._secrets import SQLiteSecretStore

        return SQLiteSecretStore(sqlite_path(url))
    _check_redis(url)
    store: SecretStore = _redis_module().RedisSecretStore(url)
    return store
