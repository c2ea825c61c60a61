"""The real servers some tests need: PostgreSQL, Redis, RabbitMQ.

Each ``require_*()`` returns the server's URL (from an environment variable, with the default
the project's machines use) if the server answers, and otherwise skips the test with a message
naming the server and how to start it. Under ``CI=true`` it fails instead: CI must really run
these tests, so a server missing there is a broken set-up, not a reason to pass quietly.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

POSTGRES_ENV = "ASANA_WEBHOOKS_TEST_POSTGRES"
REDIS_ENV = "ASANA_WEBHOOKS_TEST_REDIS"
AMQP_ENV = "ASANA_WEBHOOKS_TEST_AMQP"

POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
AMQP_DEFAULT = "amqp://guest:guest@127.0.0.1:5672//"

_HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "redis-server --daemonize yes --port 6379 --save '' --appendonly no",
    "RabbitMQ": "rabbitmq-server -detached",
}


def _unavailable(server: str, url: str, env: str, why: str) -> None:
    message = (
        f"{server} is not reachable at {_safe(url)} ({why}); start it "
        f"(`{_HOW_TO_START[server]}`) or point {env} at one"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _safe(url: str) -> str:
    # Only host and port in messages: a URL may carry a password.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


@functools.cache
def _reachable(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=3.0):
            return ""
    except OSError as exc:
        return str(exc) or type(exc).__name__


def _check(server: str, env: str, default: str, default_port: int) -> str:
    url = os.environ.get(env, default)
    parts = urlsplit(url)
    why = _reachable(parts.hostname or "127.0.0.1", parts.port or default_port)
    if why:
        _unavailable(server, url, env, why)
    return url


def require_postgres() -> str:
    """The PostgreSQL URL (``ASANA_WEBHOOKS_TEST_POSTGRES``), or skip (fail under CI)."""
    url = _check("PostgreSQL", POSTGRES_ENV, POSTGRES_DEFAULT, 5432)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the test extra installs it
        _unavailable("PostgreSQL", url, POSTGRES_ENV, "psycopg is not installed")
        raise
    try:
        with psycopg.connect(url, connect_timeout=5) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", url, POSTGRES_ENV, str(exc).strip().splitlines()[0])
    return url


def require_redis() -> str:
    """The Redis URL (``ASANA_WEBHOOKS_TEST_REDIS``), or skip (fail under CI)."""
    url = _check("Redis", REDIS_ENV, REDIS_DEFAULT, 6379)
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        _unavailable("Redis", url, REDIS_ENV, str(exc))
    return url


def require_amqp() -> str:
    """The RabbitMQ URL (``ASANA_WEBHOOKS_TEST_AMQP``), or skip (fail under CI)."""
    return _check("RabbitMQ", AMQP_ENV, AMQP_DEFAULT, 5672)


def unique_name(stem: str) -> str:
    """A name no other test run uses: for Redis key prefixes and PostgreSQL databases."""
    return f"{stem}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
