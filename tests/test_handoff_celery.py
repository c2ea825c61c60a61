"""The Celery hand-off with a real ``celery worker`` process and real brokers.

The receiver stores each delivery's events in a SQLite inbox, answers, then nudges Celery; the
worker process claims the events from the inbox and runs the handler, which appends each
event's key to a file. The tests count those lines: every event exactly once, including when
the broker is down at hand-off time and when the broker restarts and loses queued messages.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import MemorySecretStore, WebhookReceiver, sign_body
from asana_webhooks._handoff import sweep
from asana_webhooks._inbox import event_key
from asana_webhooks._sqlite_inbox import SQLiteInbox
from asana_webhooks._wsgi import ReceiverServer
from tests._redis_server import RedisServer
from tests._services import require_amqp, unique_name

pytest.importorskip("celery")

pytestmark = pytest.mark.timeout(240)

TESTS = Path(__file__).resolve().parent
TARGET = "/asana/webhooks/1200000000000001"
SECRET = "celery-hand-off-test-secret"


def make_events(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "user": {"gid": "1200000000000009", "resource_type": "user"},
            "created_at": f"2026-12-01T10:{index // 60 % 60:02d}:{index % 60:02d}.000Z",
            "action": "changed",
            "resource": {"gid": str(1300000000000000 + index), "resource_type": "task"},
            "parent": None,
            "change": {"field": "name", "action": "changed"},
        }
        for index in range(first, first + count)
    ]


class Setup:
    """A SQLite inbox, a receiver with the Celery hand-off, and a worker process to start."""

    def __init__(self, tmp_path: Path, broker: str) -> None:
        from tests._celery_app import make_app

        self.tmp_path = tmp_path
        self.broker = broker
        self.inbox_url = f"sqlite:///{tmp_path / 'inbox.sqlite3'}"
        self.handled = tmp_path / "handled.txt"
        self.handled.touch()
        self.queue = unique_name("asana_handoff")
        self.app, self.task = make_app(broker, self.inbox_url, self.queue)
        from asana_webhooks.contrib.celery import CeleryHandOff

        self.hand_off = CeleryHandOff(self.task)
        self.inbox = SQLiteInbox(tmp_path / "inbox.sqlite3")
        store = MemorySecretStore()
        store.set(TARGET, SECRET)
        self.receiver = WebhookReceiver(store, inbox=self.inbox, on_stored=self.hand_off)
        self.server = ReceiverServer.for_receiver(self.receiver).start()
        self.worker: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / "worker.log"

    def start_worker(self) -> None:
        env = {
            **os.environ,
            "ASANA_TEST_BROKER": self.broker,
            "ASANA_TEST_INBOX": self.inbox_url,
            "ASANA_TEST_QUEUE": self.queue,
            "ASANA_TEST_HANDLED": str(self.handled),
        }
        with open(self.log, "ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "_celery_app", "worker", "-P", "solo",
                 "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "INFO"],
                cwd=TESTS, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill_worker(self) -> None:
        if self.worker is not None:
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait(10)
            self.worker = None

    def deliver(self, events: list[dict[str, Any]]) -> float:
        """POST one signed delivery; return how long the answer took. It must be 200."""
        body = json.dumps({"events": events}).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        started = time.monotonic()
        try:
            connection.request("POST", TARGET, body, {"X-Hook-Signature": sign_body(body, SECRET)})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        elapsed = time.monotonic() - started
        assert response.status == 200, f"the receiver answered {response.status}, not 200"
        return elapsed

    def handled_keys(self) -> collections.Counter[str]:
        lines = self.handled.read_text(encoding="utf-8").splitlines()
        return collections.Counter(line.split()[0] for line in lines)

    def wait_handled(self, expected: set[str], seconds: float = 90.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if set(self.handled_keys()) >= expected:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # time for a doubled hand-off to show, if there were one
        counts = self.handled_keys()
        missing = expected - set(counts)
        assert not missing, (
            f"{len(missing)} of {len(expected)} stored events never reached the handler; "
            f"worker log:\n{self.log.read_text(errors='replace')[-3000:]}"
        )
        doubled = {key: n for key, n in counts.items() if n > 1}
        assert not doubled, f"events reached the handler more than once: {doubled}"
        assert set(counts) == expected, "the handler saw events nobody delivered"

    def close(self) -> None:
        self.kill_worker()
        self.server.stop()
        self.inbox.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


def test_celery_worker_handles_each_stored_event_once_through_redis(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    setup = Setup(tmp_path, own_redis.url)
    try:
        setup.start_worker()
        first, second = make_events(0, 10), make_events(10, 10)
        for events in (first, second, first, first[5:] + make_events(20, 5)):
            assert setup.deliver(events) < 2.0, "the receiver waited on the hand-off"
        setup.wait_handled({event_key(e) for e in make_events(0, 25)})
    finally:
        setup.close()


def test_celery_worker_handles_each_stored_event_once_through_rabbitmq(tmp_path: Path) -> None:
    setup = Setup(tmp_path, require_amqp())
    try:
        setup.start_worker()
        for start in range(0, 30, 10):
            setup.deliver(make_events(start, 10))
        setup.wait_handled({event_key(e) for e in make_events(0, 30)})
    finally:
        setup.close()
        with setup.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(setup.queue)


def test_broker_down_at_hand_off_loses_nothing(tmp_path: Path, own_redis: RedisServer) -> None:
    setup = Setup(tmp_path, own_redis.url)
    try:
        setup.start_worker()
        setup.deliver(make_events(0, 5))
        setup.wait_handled({event_key(e) for e in make_events(0, 5)})

        own_redis.stop()
        for start in range(5, 25, 5):
            # Stored, so answered 200 at once: the failed hand-off is the sweeper's business.
            assert setup.deliver(make_events(start, 5)) < 3.0, "a down broker held the answer"
        assert setup.inbox.stats().pending == 20, "the events were not kept for the sweeper"

        own_redis.start()
        assert sweep(setup.inbox, setup.hand_off, older_than=0.0), "the sweeper saw no work"
        setup.wait_handled({event_key(e) for e in make_events(0, 25)})
    finally:
        setup.close()


def test_broker_restart_losing_queued_messages_loses_no_event(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    setup = Setup(tmp_path, own_redis.url)
    try:
        # No worker yet: the nudges sit in Redis, which is then killed with nothing saved.
        for start in range(0, 20, 5):
            setup.deliver(make_events(start, 5))
        own_redis.stop()
        own_redis.start()
        setup.start_worker()
        time.sleep(2.0)
        assert not setup.handled_keys(), "a nudge survived a broker that keeps nothing"
        assert sweep(setup.inbox, setup.hand_off, older_than=0.0), "the sweeper saw no work"
        setup.wait_handled({event_key(e) for e in make_events(0, 20)})
    finally:
        setup.close()
