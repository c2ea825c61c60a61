"""Worker: order, retries, parking, poison isolation, leases, stopping; on a real SQLite inbox."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _inbox_helpers import event

from asana_webhooks import DrainResult, Event, SQLiteInbox, Worker, event_key

TARGET = "/hooks/1"


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SQLiteInbox]:
    inbox = SQLiteInbox(tmp_path / "inbox.sqlite3")
    yield inbox
    inbox.close()


class Handler:
    """Records each successful call; raises for events named in ``fail`` (``times`` times)."""

    def __init__(self, fail: Sequence[str] = (), times: int = 10**9, sleep: float = 0) -> None:
        self.fail = set(fail)
        self.times = times
        self.failures: Counter[str] = Counter()
        self.handled: list[tuple[str, list[str]]] = []
        self.calls = 0
        self.sleep = sleep
        self.lock = threading.Lock()

    def __call__(self, events: Sequence[Event], target: str) -> None:
        with self.lock:
            self.calls += 1
        time.sleep(self.sleep)
        names = [e.resource.name or "" for e in events if e.resource is not None]
        for name in names:
            if name in self.fail and self.failures[name] < self.times:
                with self.lock:
                    self.failures[name] += 1
                raise RuntimeError(f"cannot handle {name}")
        with self.lock:
            self.handled.append((target, [event_key(e) for e in events]))

    def keys(self) -> Counter[str]:
        return Counter(key for _, keys in self.handled for key in keys)


def test_a_poison_event_is_parked_alone_and_the_others_go_through(inbox: SQLiteInbox) -> None:
    events = [event(1), event(2, name="poison"), event(3), event(4)]
    inbox.store(TARGET, events)
    handler = Handler(fail=["poison"])
    result = Worker(inbox, handler, max_attempts=3, backoff=0.01).drain()
    assert result == DrainResult(handled=3, retried=2, parked=1, batches=3)
    assert handler.keys() == Counter({event_key(e): 1 for e in events if e is not events[1]})
    (parked,) = inbox.failed()
    assert parked.key == event_key(events[1])
    assert parked.attempts == 3
    assert parked.error is not None
    assert "RuntimeError: cannot handle poison" in parked.error
    assert "Traceback" in parked.error, "the error keeps the traceback for inspection"


def test_a_failing_handler_is_retried_with_backoff_then_succeeds(inbox: SQLiteInbox) -> None:
    inbox.store(TARGET, [event(1, name="flaky")])
    handler = Handler(fail=["flaky"], times=2)
    started = time.monotonic()
    result = Worker(inbox, handler, backoff=0.2, max_attempts=5).drain()
    elapsed = time.monotonic() - started
    assert (result.handled, result.retried, result.parked) == (1, 2, 0)
    # Delays 0.2 and 0.4 s, jittered down to half at most.
    assert elapsed >= 0.3, f"retried without waiting ({elapsed:.2f} s)"
    assert inbox.stats().retried == 2


def test_each_resources_events_reach_the_handler_in_created_order(inbox: SQLiteInbox) -> None:
    a, b = "1200000000000001", "1200000000000002"
    arrived = [
        event(1, resource=a, created_at="2026-03-01T10:00:03.000Z"),
        event(2, resource=b, created_at="2026-03-01T10:00:09.000Z"),
        event(3, resource=a, created_at="2026-03-01T10:00:01.000Z"),
        event(4, resource=b, created_at="2026-03-01T10:00:05.000+00:00"),
        event(5, resource=a, created_at="2026-03-01T12:00:02.000+02:00"),  # 10:00:02 UTC
    ]
    inbox.store(TARGET, arrived)
    seen: list[tuple[str, str]] = []

    def handler(events: Sequence[Event], target: str) -> None:
        for e in events:
            assert e.resource is not None and e.created_at is not None
            seen.append((e.resource.gid, e.created_at.astimezone().isoformat()))

    Worker(inbox, handler).drain()
    for gid in (a, b):
        times = [when for resource, when in seen if resource == gid]
        assert times == sorted(times), f"resource {gid} out of order: {times}"
    # Other resources keep their slots: b's events are still where b's events arrived.
    assert [resource for resource, _ in seen] == [a, b, a, b, a]


def test_a_stop_inside_the_handler_gives_the_events_back(inbox: SQLiteInbox) -> None:
    inbox.store(TARGET, [event(1), event(2)])

    def handler(events: Sequence[Event], target: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Worker(inbox, handler).drain()
    stats = inbox.stats()
    assert (stats.pending, stats.in_progress, stats.retried) == (2, 0, 0)


def test_an_event_that_cannot_be_rebuilt_is_parked_at_once(inbox: SQLiteInbox) -> None:
    inbox.store(TARGET, [{"resource": "not an object", "action": "changed"}, event(1)])
    handler = Handler()
    result = Worker(inbox, handler).drain()
    assert (result.handled, result.parked, result.retried) == (1, 1, 0)
    (parked,) = inbox.failed()
    assert parked.error is not None and "could not rebuild the event" in parked.error


def test_a_renewed_lease_keeps_a_slow_batch_from_a_second_worker(inbox: SQLiteInbox) -> None:
    inbox.store(TARGET, [event(1)])
    slow = Handler(sleep=2.0)
    first = Worker(inbox, slow, lease=0.5, name="slow")
    thread = threading.Thread(target=first.drain)
    thread.start()
    try:
        time.sleep(0.3)
        other = Handler()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            Worker(inbox, other, lease=0.5, name="other").step()
            time.sleep(0.1)
    finally:
        thread.join(30)
    assert other.calls == 0, "another worker took events whose lease was being renewed"
    assert slow.keys() == Counter({event_key(event(1)): 1})


def test_run_handles_events_as_they_come_until_stopped(inbox: SQLiteInbox) -> None:
    handler = Handler()
    before = threading.active_count()
    worker = Worker(inbox, handler, poll_interval=0.05, concurrency=2)
    assert threading.active_count() == before, "a worker must not start threads when built"
    stop = threading.Event()
    results: list[DrainResult] = []
    thread = threading.Thread(target=lambda: results.append(worker.run(stop)))
    thread.start()
    try:
        for n in range(5):
            inbox.store(f"/hooks/{n}", [event(n)])
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while len(handler.keys()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "run() did not return after stop"
    assert results[0].handled == 5
    assert threading.active_count() == before, "run() left threads behind"


def test_drain_with_several_threads_handles_each_event_once(inbox: SQLiteInbox) -> None:
    for n in range(0, 300, 3):
        inbox.store(f"/hooks/{n % 7}", [event(n), event(n + 1), event(n + 2)])
    handler = Handler()
    result = Worker(inbox, handler, concurrency=4, batch_size=10).drain()
    assert result.handled == 300
    assert set(handler.keys().values()) == {1}


def test_drain_prunes_handled_events_past_the_window(tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.sqlite3", dedupe_window=0.0)
    inbox.store(TARGET, [event(1)])
    Worker(inbox, Handler()).drain()
    time.sleep(0.05)
    Worker(inbox, Handler()).drain()  # a new worker prunes when it starts
    assert inbox.store(TARGET, [event(1)]).stored == 1, "the handled key was not pruned"
    inbox.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"lease": 0}, {"max_attempts": 0}, {"concurrency": 0}, {"batch_size": 0}, {"backoff": -1}],
)
def test_nonsense_settings_are_refused(inbox: SQLiteInbox, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Worker(inbox, Handler(), **kwargs)  # type: ignore[arg-type]


def test_resolve_handler_names_what_is_wrong_with_a_handler_spec() -> None:
    from asana_webhooks._worker import resolve_handler

    assert resolve_handler("json:dumps") is json.dumps
    assert resolve_handler("os.path:join") is os.path.join
    assert resolve_handler("os.path.join", dotted=True) is os.path.join
    for spec, problem in [
        ("os.path.join", "MODULE:FUNCTION"),  # the dotted form only where asked for
        ("no_such_module_here:f", "cannot import 'no_such_module_here'"),
        ("json:no_such_function", "has no 'no_such_function'"),
        ("os:sep", "is not callable"),
        (":f", "MODULE:FUNCTION"),
    ]:
        with pytest.raises(ValueError, match=problem):
            resolve_handler(spec)
