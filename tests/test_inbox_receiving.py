"""A receiver with an inbox, over real sockets: fast answers, durable events, each handled once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _inbox_helpers import SECRET, body_of, event, get, post

from asana_webhooks import (
    Event,
    MemorySecretStore,
    SQLiteInbox,
    WebhookReceiver,
    Worker,
    event_key,
)
from asana_webhooks._metrics import metrics_app
from asana_webhooks._wsgi import ReceiverServer, wsgi_app

TARGET = "/asana/hooks/1201"


class Recorder:
    def __init__(self, sleep_first: float = 0.0) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.sleep_first = sleep_first

    def __call__(self, events: Sequence[Event], target: str) -> None:
        with self.lock:
            first = not self.calls
            self.calls.append((target, [event_key(e) for e in events]))
        self.started.set()
        if first and self.sleep_first:
            time.sleep(self.sleep_first)

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(key for _, keys in self.calls for key in keys)


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SQLiteInbox]:
    inbox = SQLiteInbox(tmp_path / "inbox.sqlite3")
    yield inbox
    inbox.close()


@pytest.fixture
def server(inbox: SQLiteInbox) -> Iterator[tuple[str, WebhookReceiver]]:
    store = MemorySecretStore()
    store.set(TARGET, SECRET)
    receiver = WebhookReceiver(store, inbox=inbox)
    app = metrics_app(wsgi_app(receiver), receiver.metrics, inbox)
    with ReceiverServer(app) as running:
        yield running.url, receiver


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_30_second_handler_never_delays_the_answer(
    server: tuple[str, WebhookReceiver], inbox: SQLiteInbox
) -> None:
    url, _ = server
    handler = Recorder(sleep_first=30.0)
    stop = threading.Event()
    # Two workers and a lease far shorter than the handler: renewal must keep the slow
    # batch with its worker, while the other worker handles later deliveries.
    workers = [
        Worker(inbox, handler, lease=2.0, name=f"w{n}", poll_interval=0.05) for n in range(2)
    ]
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        deliveries = [[event(3 * d + i) for i in range(3)] for d in range(6)]
        status, _ = post(url + TARGET, body_of(deliveries[0]))
        assert status == 200
        assert handler.started.wait(30), "the worker never called the handler"
        for delivery in deliveries[1:]:
            status, took = post(url + TARGET, body_of(delivery))
            assert status == 200
            assert took < 1.0, f"the answer took {took:.2f} s while a handler was sleeping"
            time.sleep(0.5)
        expected = {event_key(e) for d in deliveries for e in d}
        wait_until(lambda: set(handler.keys()) == expected, 90, "every event to be handled")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    counts = handler.keys()
    assert max(counts.values()) == 1, f"handled twice despite lease renewal: {counts}"
    assert inbox.stats().handled == 18


def test_a_redelivery_and_an_overlapping_body_reach_the_handler_once(
    server: tuple[str, WebhookReceiver], inbox: SQLiteInbox
) -> None:
    url, receiver = server
    first = body_of([event(1), event(2), event(3)])
    assert post(url + TARGET, first)[0] == 200
    assert post(url + TARGET, first)[0] == 200  # Asana delivers the same body again
    assert post(url + TARGET, body_of([event(3), event(4)]))[0] == 200  # overlaps
    handler = Recorder()
    result = Worker(inbox, handler).drain()
    assert result.handled == 4
    counts = handler.keys()
    assert counts == Counter({event_key(event(n)): 1 for n in (1, 2, 3, 4)})
    snapshot = receiver.metrics.snapshot()
    assert snapshot["deliveries_accepted"] == 3
    assert snapshot["duplicates_dropped"] == 4


def test_a_failed_store_is_a_503_and_the_redelivery_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    inbox = SQLiteInbox(path, timeout=0.2)
    inbox.stats()  # create the file
    store = MemorySecretStore()
    store.set(TARGET, SECRET)
    receiver = WebhookReceiver(store, inbox=inbox)
    body = body_of([event(1), event(2)])
    blocker = sqlite3.connect(path, isolation_level=None)
    with ReceiverServer.for_receiver(receiver) as running:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
        try:
            status, _ = post(running.url + TARGET, body)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert status == 503, "events that were not stored must not be acknowledged"
        assert inbox.stats().pending == 0
        assert receiver.metrics.snapshot()["refused"] == {"inbox_failed": 1}
        assert post(running.url + TARGET, body)[0] == 200  # Asana's retry
    handler = Recorder()
    assert Worker(inbox, handler).drain().handled == 2
    assert set(handler.keys()) == {event_key(event(1)), event_key(event(2))}
    inbox.close()


def test_refused_deliveries_store_nothing(
    server: tuple[str, WebhookReceiver], inbox: SQLiteInbox
) -> None:
    url, receiver = server
    body = body_of([event(1)])
    assert post(url + TARGET, body, secret="0" * 64)[0] == 401
    assert post(url + "/unknown", body)[0] == 401
    assert post(url + TARGET, b'{"events": [{"resource": 5}]}')[0] == 400
    assert inbox.stats().stored == 0
    assert receiver.metrics.snapshot()["refused"] == {
        "bad_signature": 1,
        "unknown_target": 1,
        "malformed_body": 1,
    }


def test_metrics_are_served_in_the_prometheus_format(
    server: tuple[str, WebhookReceiver], inbox: SQLiteInbox
) -> None:
    url, _ = server
    post(url + TARGET, body_of([event(1), event(2)]))
    post(url + TARGET, body_of([event(2)]))
    post(url + TARGET, body_of([event(3)]), secret="0" * 64)
    status, text = get(url + "/metrics")
    assert status == 200
    lines = set(text.decode().splitlines())
    for expected in (
        "asana_webhooks_deliveries_accepted_total 2.0",
        'asana_webhooks_requests_refused_total{reason="bad_signature"} 1.0',
        "asana_webhooks_inbox_pending 2.0",
        "asana_webhooks_inbox_duplicates_total 1.0",
        "asana_webhooks_inbox_handled_total 0.0",
    ):
        assert expected in lines, f"{expected!r} missing from /metrics:\n{text.decode()}"
    assert any(
        line.startswith("asana_webhooks_inbox_oldest_pending_age_seconds ") for line in lines
    )


def test_metrics_without_prometheus_client_have_the_same_lines(
    monkeypatch: pytest.MonkeyPatch, inbox: SQLiteInbox
) -> None:
    import sys

    from asana_webhooks._metrics import ReceiverMetrics, prometheus_text

    metrics = ReceiverMetrics()
    metrics.accepted(3, duplicates=1)
    metrics.refused("bad_signature")
    inbox.store(TARGET, [event(1)])
    with_client = prometheus_text(metrics, inbox).decode()
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    written = prometheus_text(metrics, inbox).decode()

    def samples(text: str) -> set[str]:
        # The age moves between the two reads: compare its name only.
        return {
            line.split(" ")[0] if "oldest_pending_age" in line else line
            for line in text.splitlines()
            if not line.startswith("#")
        }

    assert samples(with_client) == samples(written)
    assert "# TYPE asana_webhooks_inbox_pending gauge" in written


def test_on_stored_is_told_the_new_ids_after_the_store(tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.sqlite3")
    store = MemorySecretStore()
    store.set(TARGET, SECRET)
    told: list[tuple[str, tuple[str, ...], int]] = []

    def on_stored(target: str, ids: Sequence[str]) -> None:
        told.append((target, tuple(ids), inbox.stats().pending))  # already stored
        raise RuntimeError("the broker is down")  # must not turn the answer into an error

    receiver = WebhookReceiver(store, inbox=inbox, on_stored=on_stored)
    with ReceiverServer.for_receiver(receiver) as running:
        assert post(running.url + TARGET, body_of([event(1), event(2)]))[0] == 200
        assert post(running.url + TARGET, body_of([event(2)]))[0] == 200  # nothing new
    assert len(told) == 1
    target, ids, pending = told[0]
    assert (target, len(ids), pending) == (TARGET, 2, 2)
    inbox.close()


def test_the_receiver_takes_on_events_or_an_inbox_not_both(inbox: SQLiteInbox) -> None:
    with pytest.raises(ValueError, match="not both"):
        WebhookReceiver(MemorySecretStore(), lambda events, target: None, inbox=inbox)
    with pytest.raises(ValueError, match="needs an inbox"):
        WebhookReceiver(MemorySecretStore(), on_stored=lambda target, ids: None)
