"""Receivers on Redis over real sockets and real processes.

* Two ``serve`` processes share one Redis inbox and secret store; deliveries (and some
  redeliveries) spread over both from 16 senders: nothing lost, nothing doubled.
* A Redis of the test's own (its own port) hangs, then stops, while deliveries arrive: each
  is answered 503 within Asana's 10 seconds; once Redis is back the redeliveries are stored,
  and every event reaches the handler once, those stored before the outage included.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _inbox_helpers import SECRET, body_of, event, post
from _services import require_redis, unique_name
from inbox_servers import drop_redis_keys

from asana_webhooks import Event, MemorySecretStore, WebhookReceiver, Worker, event_key
from asana_webhooks._wsgi import ReceiverServer, wsgi_app
from tests._redis_server import RedisServer

pytest.importorskip("redis")
from asana_webhooks.contrib.redis import RedisInbox, RedisSecretStore

ASANA_PATIENCE = 10.0  # seconds Asana waits for an answer


class Recorder:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, events: Sequence[Event], target: str) -> None:
        with self.lock:
            self.keys.extend(event_key(e) for e in events)


def drain(inbox: RedisInbox) -> Counter[str]:
    recorder = Recorder()
    result = Worker(inbox, recorder, lease=30, poll_interval=0.05).drain()
    assert result.parked == 0
    return Counter(recorder.keys)


# --- two serve processes ------------------------------------------------------------------


def start_serve(url: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "asana_webhooks", "serve", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--secrets", url, "--inbox", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stream = process.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, "serve exited before listening"
            continue
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return process, found.group(1).rstrip("/")
    process.kill()
    raise AssertionError("serve did not say where it listens within 60 s")


@pytest.fixture
def shared_url() -> Iterator[str]:
    url = require_redis()
    prefix = unique_name("aw_test")
    yield f"{url}?prefix={prefix}"
    drop_redis_keys(url, prefix)


def test_two_serve_processes_share_one_redis_inbox_and_secret_store(shared_url: str) -> None:
    targets = [f"/asana/hooks/{n}" for n in range(4)]
    store = RedisSecretStore(shared_url)
    for target in targets:
        store.set(target, SECRET)
    store.close()
    servers = [start_serve(shared_url) for _ in range(2)]
    try:
        # Delivery n carries events n, n+1, n+2: bodies overlap like Asana's retries do.
        # Every fifth is delivered again, to the other server.
        sends = []
        for n in range(400):
            body = body_of([event(n + i) for i in range(3)])
            target = targets[n % 4]
            sends.append((servers[n % 2][1] + target, body))
            if n % 5 == 0:
                sends.append((servers[(n + 1) % 2][1] + target, body))
        with ThreadPoolExecutor(16) as senders:
            answers = list(senders.map(lambda send: post(*send)[0], sends))
        assert answers == [200] * len(sends), Counter(answers)
    finally:
        for process, _ in servers:
            process.send_signal(signal.SIGTERM)
        for process, _ in servers:
            process.wait(timeout=30)
    assert [process.returncode for process, _ in servers] == [0, 0]

    inbox = RedisInbox(shared_url)
    try:
        # Asana's events are per resource: the same event sent to two targets is two events.
        expected = {event_key(event(n)) for n in range(402)}
        stats = inbox.stats()
        handled = drain(inbox)
    finally:
        inbox.close()
    assert stats.pending + stats.in_progress == stats.stored
    doubled = [key for key, count in handled.items() if count > 1]
    assert not doubled, f"{len(doubled)} events reached the handler twice"
    assert set(handled) == expected, f"{len(expected - set(handled))} events were lost"


# --- a Redis that hangs, stops and comes back ----------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path, persist=True) as server:
        yield server


def test_deliveries_while_redis_is_down_are_503_and_their_redelivery_is_handled(
    own_redis: RedisServer,
) -> None:
    target = "/asana/hooks/1201"
    store = MemorySecretStore()
    store.set(target, SECRET)
    inbox = RedisInbox(f"redis://127.0.0.1:{own_redis.port}/0", timeout=0.5)
    receiver = WebhookReceiver(store, inbox=inbox)
    bodies = [body_of([event(2 * n), event(2 * n + 1)]) for n in range(30)]
    assert own_redis.process is not None
    with ReceiverServer(wsgi_app(receiver)) as server:
        url = server.url.rstrip("/") + target

        def deliver(body: bytes) -> int:
            status, took = post(url, body)
            assert took < ASANA_PATIENCE, f"answered after {took:.1f} s: Asana gave up"
            return status

        assert [deliver(body) for body in bodies[:10]] == [200] * 10

        own_redis.process.send_signal(signal.SIGSTOP)  # hangs: only timeouts end the calls
        hung = [deliver(body) for body in bodies[10:15]]
        own_redis.process.send_signal(signal.SIGCONT)
        assert hung == [503] * 5, "a hung Redis must be answered 503, never 200"

        own_redis.stop()  # down: connections are refused
        down = [deliver(body) for body in bodies[15:]]
        assert down == [503] * 15, "a stopped Redis must be answered 503, never 200"

        own_redis.start()  # back, with what it had written to its append-only file
        again = [deliver(body) for body in bodies[10:]]  # Asana delivers again
        assert again == [200] * 20, "once Redis is back, redeliveries must be stored"

    handled = drain(inbox)
    inbox.close()
    expected = {event_key(event(n)) for n in range(60)}
    doubled = [key for key, count in handled.items() if count > 1]
    assert not doubled, f"{len(doubled)} events reached the handler twice"
    assert set(handled) == expected, f"{len(expected - set(handled))} events were lost"


def test_a_redis_url_prefix_keeps_inboxes_apart(shared_url: str) -> None:
    url, _, prefix = shared_url.partition("?prefix=")
    by_url = RedisInbox(shared_url)
    by_argument = RedisInbox(url, prefix=prefix)
    other = RedisInbox(url, prefix=prefix + "_other")
    try:
        assert by_url.prefix == prefix
        by_url.store("/asana/1", [event(1)])
        assert by_argument.stats().pending == 1
        assert other.stats().pending == 0
    finally:
        for inbox in (by_url, by_argument, other):
            inbox.close()
        drop_redis_keys(url, prefix + "_other")
