"""Django databases for the inbox tests: the SQLite default, and a PostgreSQL database made
for this test session (a unique name, dropped at exit), added as an alias on demand."""

from __future__ import annotations

import atexit
from urllib.parse import urlsplit

from _services import require_postgres, unique_name

_postgres_alias = ""


def sqlite_alias() -> str:
    from receiving_django import ensure_django

    ensure_django()
    return "default"


def postgres_settings(url: str, name: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        "OPTIONS": {"connect_timeout": 5},
    }


def create_database(url: str) -> str:
    """A new, empty PostgreSQL database of our own; dropped when this process exits."""
    import psycopg

    name = unique_name("aw_test")
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    atexit.register(_drop, url, name)
    return name


def _drop(url: str, name: str) -> None:
    import psycopg

    # WITH (FORCE): this process's own connections may still be open at exit.
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_alias() -> str:
    """The alias of this session's PostgreSQL database, migrated; skips if PostgreSQL is down."""
    global _postgres_alias
    url = require_postgres()
    if _postgres_alias:
        return _postgres_alias
    sqlite_alias()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    alias = "inbox_postgres"
    config = postgres_settings(url, create_database(url))
    settings.DATABASES[alias] = config
    configured = connections.configure_settings({"default": {}, alias: dict(config)})
    connections.settings[alias] = configured[alias]
    call_command("migrate", database=alias, verbosity=0, interactive=False)
    _postgres_alias = alias
    return alias
