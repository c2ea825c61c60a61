"""The behaviour every shared inbox backend must have, run on Redis and on Django (SQLite and
PostgreSQL): dedupe, claims that keep a delivery together, leases another worker takes over,
claims raced from many threads, retries, parking, replay, purge, the dedupe window, stats and
sync tokens. Each runs on a real server: Redis and PostgreSQL tests skip when the server is
not reachable (and fail under CI=true).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from inbox_servers import django_postgres_inbox, django_sqlite_inbox, redis_inbox

from asana_webhooks._inbox import Inbox, event_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def task_changed(n: int) -> dict[str, Any]:
    return {
        "user": {"gid": "1001", "resource_type": "user"},
        "created_at": f"2026-11-30T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
        "action": "changed",
        "resource": {"gid": str(2000 + n), "resource_type": "task"},
        "parent": None,
        "change": {"field": "name", "action": "changed"},
    }


def another(inbox: Any) -> Any:
    """A second handle on the same inbox, as another process would open it."""
    if hasattr(inbox, "prefix"):
        return type(inbox)(inbox._client, prefix=inbox.prefix, clock=inbox._clock)
    return type(inbox)(using=inbox.using, clock=inbox._clock)


def close_thread_connections() -> None:
    try:
        from django.db import connections
    except ImportError:
        return
    connections.close_all()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "django-sqlite", "django-postgres"])
def inbox(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Any]:
    factory = {
        "redis": redis_inbox,
        "django-sqlite": django_sqlite_inbox,
        "django-postgres": django_postgres_inbox,
    }[request.param]
    yield from factory(clock)


def test_it_satisfies_the_inbox_protocol(inbox: Any) -> None:
    assert isinstance(inbox, Inbox)


def test_a_redelivery_and_a_repeated_event_are_stored_once(inbox: Any) -> None:
    first = inbox.store("/asana/1", [task_changed(1), task_changed(2), task_changed(1)])
    assert (first.stored, first.duplicates) == (2, 1), "an event repeated in one body is one"
    again = inbox.store("/asana/1", [task_changed(2), task_changed(3)])
    assert (again.stored, again.duplicates) == (1, 1)
    assert len(set(first.ids + again.ids)) == 3
    stats = inbox.stats()
    assert (stats.pending, stats.duplicates, stats.stored) == (3, 2, 3)


def test_a_claim_keeps_order_and_one_delivery_together(inbox: Any) -> None:
    inbox.store("/asana/1", [task_changed(1), task_changed(2), task_changed(3)])
    inbox.store("/asana/1", [task_changed(4)])
    claim = inbox.claim("w1", lease=30, limit=2)
    assert claim is not None
    assert [event_key(task_changed(n)) for n in (1, 2, 3)] == [e.key for e in claim.events], (
        "a claim must hold a delivery's events together, in the order they came"
    )
    inbox.complete(claim)
    rest = inbox.claim("w1", lease=30, limit=2)
    assert rest is not None and [e.key for e in rest.events] == [event_key(task_changed(4))]


def test_claims_take_the_oldest_events_first_one_target_at_a_time(inbox: Any) -> None:
    inbox.store("/asana/a", [task_changed(0)])
    inbox.store("/asana/b", [task_changed(10)])
    inbox.store("/asana/a", [task_changed(1)])
    order = []
    while (claim := inbox.claim("w1", lease=30, limit=1)) is not None:
        assert {e.target for e in claim.events} == {claim.target}
        order.append((claim.target, claim.events[0].key))
        inbox.complete(claim)
    assert order == [
        ("/asana/a", event_key(task_changed(0))),
        ("/asana/b", event_key(task_changed(10))),
        ("/asana/a", event_key(task_changed(1))),
    ], "claims must hand out the oldest available events first"


def test_a_dead_workers_claim_is_taken_over_after_its_lease(inbox: Any, clock: Clock) -> None:
    inbox.store("/asana/1", [task_changed(1), task_changed(2)])
    dead = inbox.claim("dead-worker", lease=30)
    assert dead is not None
    assert inbox.claim("w2", lease=30) is None, "a live claim must not be handed out twice"
    assert inbox.stats().in_progress == 2
    clock.now += 31
    assert inbox.stats().in_progress == 0, "a lease that ran out is not in progress"
    taken = inbox.claim("w2", lease=30)
    assert taken is not None, "events of a worker whose lease ran out must be claimable"
    assert [e.id for e in taken.events] == [e.id for e in dead.events]
    assert not inbox.renew(dead, lease=30), "the dead worker's claim belongs to w2 now"
    inbox.complete(dead)  # a late worker: must not settle what w2 holds
    assert inbox.stats().handled == 0
    inbox.complete(taken)
    assert inbox.stats().handled == 2


def test_renewing_keeps_a_slow_handlers_events(inbox: Any, clock: Clock) -> None:
    inbox.store("/asana/1", [task_changed(1)])
    claim = inbox.claim("slow", lease=10)
    assert claim is not None
    for _ in range(5):
        clock.now += 8
        assert inbox.renew(claim, lease=10)
    assert inbox.claim("other", lease=10) is None, "a renewed claim must stay with its worker"


def test_many_workers_racing_handle_each_event_once(inbox: Any) -> None:
    for delivery in range(60):
        target = f"/asana/{delivery % 5}"
        inbox.store(target, [task_changed(delivery * 3 + i) for i in range(3)])
    handled: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        box = another(inbox)
        try:
            while (claim := box.claim(name, lease=60, limit=4)) is not None:
                with lock:
                    handled.extend(e.key for e in claim.events)
                box.complete(claim)
        except BaseException as exc:
            errors.append(exc)
        finally:
            box.close()
            close_thread_connections()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, f"a worker failed: {errors[0]!r}"
    twice = [key for key, count in Counter(handled).items() if count > 1]
    assert not twice, f"{len(twice)} events were claimed by two workers"
    assert len(handled) == 180
    assert inbox.stats().handled == 180


def test_a_failed_handler_is_retried_after_its_delay(inbox: Any, clock: Clock) -> None:
    inbox.store("/asana/1", [task_changed(1)])
    inbox.store("/asana/1", [task_changed(2)])
    claim = inbox.claim("w1", lease=30, limit=1)
    assert claim is not None
    inbox.retry(claim, "ValueError: boom", delay=60)
    other = inbox.claim("w1", lease=30)
    assert other is not None and other.events[0].key == event_key(task_changed(2)), (
        "an event waiting to retry must not hold up the next one"
    )
    inbox.complete(other)
    assert inbox.claim("w1", lease=30) is None, "retried before its delay"
    assert inbox.stats().pending == 1
    clock.now += 61
    again = inbox.claim("w1", lease=30)
    assert again is not None
    (event,) = again.events
    assert (event.attempts, event.error) == (1, "ValueError: boom")
    assert inbox.stats().retried == 1


def test_parked_events_keep_their_error_and_can_be_replayed(inbox: Any) -> None:
    inbox.store("/asana/1", [task_changed(1), task_changed(2)])
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    good, poison = claim.events
    inbox.complete(claim.only([good]))
    inbox.park(claim.only([poison]), "KeyError: 'name'")
    (parked,) = inbox.failed()
    assert (parked.id, parked.error, parked.attempts) == (poison.id, "KeyError: 'name'", 1)
    assert parked.target == "/asana/1" and parked.raw
    stats = inbox.stats()
    assert (stats.failed, stats.parked, stats.handled, stats.pending) == (1, 1, 1, 0)
    assert inbox.store("/asana/1", [task_changed(2)]).duplicates == 1, (
        "a parked event's key must still drop redeliveries"
    )
    assert inbox.replay([parked.id, "no-such-id", "999999"]) == 1
    replayed = inbox.claim("w1", lease=30)
    assert replayed is not None and replayed.events[0].attempts == 0
    assert replayed.events[0].error is None


def test_a_partly_settled_claim_of_a_dead_worker_is_still_taken_over(
    inbox: Any, clock: Clock
) -> None:
    inbox.store("/asana/1", [task_changed(1), task_changed(2)])
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    inbox.complete(claim.only(claim.events[:1]))
    assert inbox.renew(claim, lease=30), "the rest of the claim is still held"
    clock.now += 31  # w1 dies before settling the rest
    rest = inbox.claim("w2", lease=30)
    assert rest is not None and [e.id for e in rest.events] == [claim.events[1].id]


def test_purge_drops_parked_events_but_keeps_their_keys(inbox: Any, clock: Clock) -> None:
    inbox.store("/asana/1", [task_changed(1)])
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    inbox.park(claim, "boom")
    assert inbox.purge() == 1
    assert inbox.failed() == [] and inbox.stats().failed == 0
    assert inbox.store("/asana/1", [task_changed(1)]).stored == 0
    clock.now += inbox.dedupe_window + 1
    assert inbox.prune() == 1
    assert inbox.store("/asana/1", [task_changed(1)]).stored == 1


def test_prune_forgets_handled_keys_after_the_window_only(inbox: Any, clock: Clock) -> None:
    inbox.store("/asana/1", [task_changed(1)])
    inbox.store("/asana/1", [task_changed(2)])
    claim = inbox.claim("w1", lease=30, limit=1)
    assert claim is not None
    inbox.complete(claim)
    clock.now += 3600
    assert inbox.prune() == 0, "pruned inside the 48 hour window"
    assert inbox.store("/asana/1", [task_changed(1)]).duplicates == 1
    clock.now += 48 * 3600
    assert inbox.prune() == 1, "only the handled event's key may go; event 2 is pending"
    assert inbox.store("/asana/1", [task_changed(1)]).stored == 1
    assert inbox.store("/asana/1", [task_changed(2)]).duplicates == 1


def test_stats_count_what_a_site_graphs(inbox: Any, clock: Clock) -> None:
    assert inbox.stats().oldest_pending_age is None
    inbox.store("/asana/1", [task_changed(1)])
    clock.now += 5
    inbox.store("/asana/2", [task_changed(2)])
    clock.now += 5
    stats = inbox.stats()
    assert (stats.pending, stats.in_progress, stats.oldest_pending_age) == (2, 0, 10.0)
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    stats = inbox.stats()
    assert (stats.pending, stats.in_progress) == (1, 1)
    assert stats.oldest_pending_age == 10.0, "an event in progress is not handled yet"
    inbox.note_gap("1200", since=clock.now - 100)
    assert inbox.stats().gaps == 1


def test_polled_events_and_their_sync_token_are_stored_together(inbox: Any) -> None:
    assert inbox.sync_token("1200") is None
    inbox.store("/asana/1", [task_changed(1)])
    result = inbox.store_polled("1200", [task_changed(1), task_changed(2)], "sync-2")
    assert (result.stored, result.duplicates) == (1, 1), "polled events dedupe with webhooks"
    assert inbox.sync_token("1200") == "sync-2"
    assert inbox.store_polled("1200", [], "sync-3").stored == 0
    assert inbox.sync_token("1200") == "sync-3", "a poll with no events still moves the token"
    first = inbox.claim("w1", lease=30)
    second = inbox.claim("w1", lease=30)
    assert first is not None and second is not None
    assert {first.target, second.target} == {"/asana/1", "events:1200"}
