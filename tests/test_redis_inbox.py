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
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from _services import require_redis, unique_name

from asana_webhooks._inbox import Inbox, InboxError, event_key

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


def drop_keys(url: str, prefix: str) -> None:
    # Only this test's own keys: other engineers' tests share the server.
    client = redis.Redis.from_url(url, socket_timeout=5)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


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
    drop_keys(redis_url, prefix)


def test_it_satisfies_the_inbox_protocol(inbox: RedisInbox) -> None:
    assert isinstance(inbox, Inbox)


def test_a_redelivery_and_a_repeated_event_are_stored_once(inbox: RedisInbox) -> None:
    first = inbox.store("/asana/1", [task_changed(1), task_changed(2), task_changed(1)])
    assert (first.stored, first.duplicates) == (2, 1), "an event repeated in one body is one"
    again = inbox.store("/asana/1", [task_changed(2), task_changed(3)])
    assert (again.stored, again.duplicates) == (1, 1)
    assert len(set(first.ids + again.ids)) == 3
    stats = inbox.stats()
    assert (stats.pending, stats.duplicates, stats.stored) == (3, 2, 3)


def test_a_claim_keeps_order_and_one_delivery_together(inbox: RedisInbox) -> None:
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


def test_a_claim_holds_one_target_and_targets_take_turns(inbox: RedisInbox) -> None:
    for n in range(4):
        inbox.store("/asana/a", [task_changed(n)])
    inbox.store("/asana/b", [task_changed(10)])
    first = inbox.claim("w1", lease=30, limit=1)
    second = inbox.claim("w2", lease=30, limit=1)
    assert first is not None and second is not None
    assert {e.target for e in first.events} == {"/asana/a"}
    assert second.target == "/asana/b", "a busy target must not starve the others"


def test_a_dead_workers_claim_is_taken_over_after_its_lease(
    inbox: RedisInbox, clock: Clock
) -> None:
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


def test_renewing_keeps_a_slow_handlers_events(inbox: RedisInbox, clock: Clock) -> None:
    inbox.store("/asana/1", [task_changed(1)])
    claim = inbox.claim("slow", lease=10)
    assert claim is not None
    for _ in range(5):
        clock.now += 8
        assert inbox.renew(claim, lease=10)
    assert inbox.claim("other", lease=10) is None, "a renewed claim must stay with its worker"


def test_many_workers_racing_handle_each_event_once(redis_url: str, inbox: RedisInbox) -> None:
    for delivery in range(60):
        target = f"/asana/{delivery % 5}"
        inbox.store(target, [task_changed(delivery * 3 + i) for i in range(3)])
    handled: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        box = RedisInbox(redis_url, prefix=inbox.prefix)
        try:
            while (claim := box.claim(name, lease=60, limit=4)) is not None:
                with lock:
                    handled.extend(e.key for e in claim.events)
                box.complete(claim)
        finally:
            box.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    twice = [key for key, count in Counter(handled).items() if count > 1]
    assert not twice, f"{len(twice)} events were claimed by two workers"
    assert len(handled) == 180
    assert inbox.stats().handled == 180


def test_a_failed_handler_is_retried_after_its_delay(inbox: RedisInbox, clock: Clock) -> None:
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


def test_parked_events_keep_their_error_and_can_be_replayed(inbox: RedisInbox) -> None:
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
    inbox: RedisInbox, clock: Clock
) -> None:
    inbox.store("/asana/1", [task_changed(1), task_changed(2)])
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    inbox.complete(claim.only(claim.events[:1]))
    assert inbox.renew(claim, lease=30), "the rest of the claim is still held"
    clock.now += 31  # w1 dies before settling the rest
    rest = inbox.claim("w2", lease=30)
    assert rest is not None and [e.id for e in rest.events] == [claim.events[1].id]


def test_purge_drops_parked_events_but_keeps_their_keys(inbox: RedisInbox, clock: Clock) -> None:
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


def test_prune_forgets_handled_keys_after_the_window_only(inbox: RedisInbox, clock: Clock) -> None:
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


def test_stats_count_what_a_site_graphs(inbox: RedisInbox, clock: Clock) -> None:
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


def test_polled_events_and_their_sync_token_are_stored_together(inbox: RedisInbox) -> None:
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


def test_two_prefixes_are_two_inboxes(redis_url: str, inbox: RedisInbox) -> None:
    other_prefix = unique_name("aw_test")
    other = RedisInbox(redis_url, prefix=other_prefix)
    try:
        inbox.store("/asana/1", [task_changed(1)])
        assert other.store("/asana/1", [task_changed(1)]).stored == 1
        assert other.stats().pending == 1 and inbox.stats().pending == 1
    finally:
        other.close()
        drop_keys(redis_url, other_prefix)


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
        drop_keys(redis_url, prefix)


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
