"""Fresh, empty inboxes on the real servers, for the suites that run on every backend.

Each factory yields an inbox and cleans up after it: Redis under a key prefix of its own
(only those keys are deleted), Django on SQLite (this process's test database, tables
emptied) or on this session's own PostgreSQL database. A server that is not reachable skips
the test with how to start it (and fails it under CI=true).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from _services import require_redis, unique_name

Clock = Callable[[], float]


def drop_redis_keys(url: str, prefix: str) -> None:
    # Only this test's own keys: other engineers' tests share the server.
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


def redis_inbox(clock: Clock = time.time) -> Iterator[Any]:
    pytest.importorskip("redis")
    from asana_webhooks.contrib.redis import RedisInbox

    url = require_redis()
    prefix = unique_name("aw_test")
    inbox = RedisInbox(url, prefix=prefix, clock=clock)
    try:
        yield inbox
    finally:
        inbox.close()
        drop_redis_keys(url, prefix)


def _django_inbox(alias: str, clock: Clock) -> Iterator[Any]:
    from asana_webhooks.contrib.django.inbox import DjangoInbox
    from asana_webhooks.contrib.django.models import InboxCounter, InboxEvent, SyncToken

    for model in (InboxEvent, InboxCounter, SyncToken):
        model.objects.using(alias).all().delete()
    yield DjangoInbox(using=alias, clock=clock)


def django_sqlite_inbox(clock: Clock = time.time) -> Iterator[Any]:
    from django_databases import sqlite_alias

    yield from _django_inbox(sqlite_alias(), clock)


def django_postgres_inbox(clock: Clock = time.time) -> Iterator[Any]:
    from django_databases import postgres_alias

    yield from _django_inbox(postgres_alias(), clock)


def redis_secret_store(clock: Clock = time.time) -> Iterator[Any]:
    pytest.importorskip("redis")
    from asana_webhooks.contrib.redis import RedisSecretStore

    url = require_redis()
    prefix = unique_name("aw_test")
    store = RedisSecretStore(url, prefix=prefix, clock=clock)
    try:
        yield store
    finally:
        store.close()
        drop_redis_keys(url, prefix)
