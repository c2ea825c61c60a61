"""RedisInbox against a real Redis: what only a shared, networked backend must get right.

Leases that another worker takes over, claims raced from many threads, the dedupe window,
and a Redis that is down or hangs (a typed ``InboxError`` within a bounded time, never a
redis-py exception and never a password). The behaviour every backend shares is in the
inbox contract suite.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _services import require_redis, unique_name
from inbox_servers import drop_redis_keys

from asana_webhooks._inbox import InboxError, event_key

redis = pytest.importorskip("redis")
from asana_webhooks.contrib.redis import RedisInbox  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def task_changed(n: int, second: int = 0) -> dict[str, Any]:
    return {
        "user": {"gid": "1001", "resource_type": "user"},
        "created_at": f"2026-11-30T10:{n // 60 % 60:02d}:{n % 60:02d}.{second:03d}Z",
        "action": "changed",
        "resource": {"gid": str(2000 + n), "resource_type": "task"},
        "parent": None,
        "change": {"field": "name", "action": "changed"},
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def inbox(redis_url: str, clock: Clock) -> Iterator[RedisInbox]:
    prefix = unique_name("aw_test")
    box = RedisInbox(redis_url, prefix=prefix, clock=clock)
    yield box
    box.close()
    drop_redis_keys(redis_url, prefix)


def test_two_prefixes_are_two_inboxes(redis_url: str, inbox: RedisInbox) -> None:
    other_prefix = unique_name("aw_test")
    other = RedisInbox(redis_url, prefix=other_prefix)
    try:
        inbox.store("/asana/1", [task_changed(1)])
        assert other.store("/asana/1", [task_changed(1)]).stored == 1
        assert other.stats().pending == 1 and inbox.stats().pending == 1
    finally:
        other.close()
        drop_redis_keys(redis_url, other_prefix)


def test_a_client_given_with_decoded_responses_works(redis_url: str) -> None:
    prefix = unique_name("aw_test")
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    box = RedisInbox(client, prefix=prefix)
    try:
        box.store("/asana/1", [task_changed(1)])
        claim = box.claim("w1", lease=30)
        assert claim is not None and claim.events[0].key == event_key(task_changed(1))
        box.close()
        assert client.ping(), "close must leave a client it was given open"
    finally:
        client.close()
        drop_redis_keys(redis_url, prefix)


def test_close_then_use_again_reconnects(inbox: RedisInbox) -> None:
    inbox.store("/asana/1", [task_changed(1)])
    inbox.close()
    assert inbox.stats().pending == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_redis_down_is_an_inbox_error_without_the_password() -> None:
    port = _free_port()
    box = RedisInbox(f"redis://:hunter2-secret@127.0.0.1:{port}/0", timeout=1.0)
    assert "hunter2" not in repr(box)
    started = time.monotonic()
    with pytest.raises(InboxError) as caught:
        box.store("/asana/1", [task_changed(1)])
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "store the delivery" in message
    assert "hunter2" not in message


def test_a_redis_that_hangs_is_an_inbox_error_within_the_timeout() -> None:
    # A server that accepts connections and never answers: only a timeout ends the call.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        box = RedisInbox(f"redis://127.0.0.1:{port}/0", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(InboxError, match="TimeoutError"):
            box.claim("w1", lease=30)
        # Connect + answer, once more after a reconnect: about 4 x 0.5 s at most.
        assert time.monotonic() - started < 5, "a hung Redis held the call too long"
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in accepted:
            sock.close()
        listener.close()


def test_a_bad_url_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="Redis URL"):
        RedisInbox("http://127.0.0.1:6379/0")


def test_bad_arguments_are_refused(inbox: RedisInbox) -> None:
    with pytest.raises(ValueError, match="lease"):
        inbox.claim("w1", lease=0)
    with pytest.raises(ValueError, match="limit"):
        inbox.claim("w1", lease=10, limit=0)
