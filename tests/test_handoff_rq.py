"""The RQ hand-off with a real ``rq worker`` process on a Redis server of the test's own.

Same shape as the Celery tests: the receiver stores events in a SQLite inbox and enqueues a
nudge; the worker drains the inbox through a handler that appends each event's key to a file.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import MemorySecretStore, WebhookReceiver, sign_body
from asana_webhooks._inbox import event_key
from asana_webhooks._sqlite_inbox import SQLiteInbox
from asana_webhooks._wsgi import ReceiverServer
from tests._redis_server import RedisServer
from tests._services import unique_name
from tests.test_handoff_celery import SECRET, TARGET, make_events

pytest.importorskip("rq")

pytestmark = pytest.mark.timeout(180)

TESTS = Path(__file__).resolve().parent


def post(port: int, events: list[dict[str, Any]]) -> int:
    body = json.dumps({"events": events}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", TARGET, body, {"X-Hook-Signature": sign_body(body, SECRET)})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def handled_counts(handled: Path) -> collections.Counter[str]:
    return collections.Counter(line.split()[0] for line in handled.read_text().splitlines())


def run_burst_worker(redis_url: str, queue: str, handled: Path, log: Path) -> None:
    env = {**os.environ, "ASANA_TEST_HANDLED": str(handled)}
    with open(log, "ab") as out:
        finished = subprocess.run(
            [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", redis_url,
             "--path", str(TESTS), queue],
            cwd=TESTS, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False,
        )  # fmt: skip
    assert finished.returncode == 0, f"rq worker failed:\n{log.read_text()[-3000:]}"


def test_rq_worker_handles_each_stored_event_once_and_sweeps_lost_jobs(tmp_path: Path) -> None:
    from redis import Redis
    from rq import Queue

    from asana_webhooks.contrib.rq import RQHandOff

    with RedisServer(tmp_path) as own_redis:
        queue_name = unique_name("asana_rq")
        queue = Queue(queue_name, connection=Redis.from_url(own_redis.url, socket_timeout=5))
        inbox_path = tmp_path / "inbox.sqlite3"
        hand_off = RQHandOff(
            queue, inbox=f"sqlite:///{inbox_path}", handler="_handoff_handler:record"
        )
        inbox = SQLiteInbox(inbox_path)
        store = MemorySecretStore()
        store.set(TARGET, SECRET)
        receiver = WebhookReceiver(store, inbox=inbox, on_stored=hand_off)
        handled, log = tmp_path / "handled.txt", tmp_path / "rq.log"
        handled.touch()

        with ReceiverServer.for_receiver(receiver) as server:
            for events in (make_events(0, 10), make_events(10, 10), make_events(0, 10)):
                assert post(server.port, events) == 200
            run_burst_worker(own_redis.url, queue_name, handled, log)
            counts = collections.Counter(
                line.split()[0] for line in handled.read_text().split("\n") if line
            )
            assert set(counts) == {event_key(e) for e in make_events(0, 20)}, "events missing"
            assert max(counts.values()) == 1, "an event reached the handler twice"

            # Redis restarts and loses the queued job: the sweep enqueues again.
            assert post(server.port, make_events(20, 5)) == 200
            own_redis.stop()
            own_redis.start()
            assert len(queue) == 0, "a job survived a Redis that keeps nothing"
            time.sleep(0.01)
            assert hand_off.sweep(older_than=0.0), "the sweep saw no pending work"
            run_burst_worker(own_redis.url, queue_name, handled, log)

        counts = collections.Counter(
            line.split()[0] for line in handled.read_text().split("\n") if line
        )
        assert set(counts) == {event_key(e) for e in make_events(0, 25)}, "events missing"
        assert max(counts.values()) == 1, "an event reached the handler twice"
        inbox.close()
