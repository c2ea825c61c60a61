"""The inbox contract: what every backend (SQLite, Redis, Django) must do, one suite for all.

``test_inbox_contract.py`` collects these tests. To run them against another backend, write a
factory (a generator taking ``tmp_path`` that yields a fresh, empty inbox and cleans up) and
add one line to ``BACKENDS``. Leases and retry delays are short real times, so the suite
needs no clock hook in the backend.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from asana_webhooks import Claim, Inbox, SQLiteInbox, event_key
from asana_webhooks._inbox import LEASE_LOST


def sqlite_inbox(tmp_path: Path) -> Iterator[Inbox]:
    inbox = SQLiteInbox(tmp_path / "inbox.sqlite3")
    yield inbox
    inbox.close()


def redis_inbox(tmp_path: Path) -> Iterator[Inbox]:
    from inbox_servers import redis_inbox

    yield from redis_inbox()


def django_sqlite_inbox(tmp_path: Path) -> Iterator[Inbox]:
    from inbox_servers import django_sqlite_inbox

    yield from django_sqlite_inbox()


def django_postgres_inbox(tmp_path: Path) -> Iterator[Inbox]:
    from inbox_servers import django_postgres_inbox

    yield from django_postgres_inbox()


#: One line per backend: pytest.param(factory, id=name).
BACKENDS: list[Any] = [
    pytest.param(sqlite_inbox, id="sqlite"),
    pytest.param(redis_inbox, id="redis"),
    pytest.param(django_sqlite_inbox, id="django-sqlite"),
    pytest.param(django_postgres_inbox, id="django-postgres"),
]

LEASE = 0.4  # short, so that expiry can be waited for; long enough for a slow machine's call


@pytest.fixture(params=BACKENDS)
def inbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Inbox]:
    factory: Callable[[Path], Iterator[Inbox]] = request.param
    yield from factory(tmp_path)


def make_event(
    n: int, *, resource: str = "1201", created_at: str = "", action: str = "changed"
) -> dict[str, Any]:
    """A raw event as Asana sends it; ``n`` makes it unique (it is in created_at)."""
    return {
        "user": {"gid": "9001", "resource_type": "user"},
        "created_at": created_at or f"2026-03-01T10:{n // 60 % 60:02d}:{n % 60:02d}.{n:06d}Z",
        "action": action,
        "resource": {"gid": resource, "resource_type": "task", "resource_subtype": "default_task"},
        "parent": None,
        "change": {"field": "name", "action": "changed"},
    }


def keys_of(claim: Claim) -> list[str]:
    return [stored.key for stored in claim.events]


def test_the_backend_satisfies_the_protocol(inbox: Inbox) -> None:
    assert isinstance(inbox, Inbox)


def test_an_empty_inbox_has_nothing_to_claim_and_zero_stats(inbox: Inbox) -> None:
    assert inbox.claim("w1", lease=LEASE) is None
    stats = inbox.stats()
    assert (stats.pending, stats.in_progress, stats.failed, stats.handled) == (0, 0, 0, 0)
    assert stats.oldest_pending_age is None


def test_stored_events_keep_target_time_and_raw_json(inbox: Inbox) -> None:
    before = time.time()
    result = inbox.store("/hooks/1?team=a", [make_event(1), make_event(2)])
    assert (result.stored, result.duplicates, len(result.ids)) == (2, 0, 2)
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None and claim.target == "/hooks/1?team=a"
    assert [json.loads(stored.raw) for stored in claim.events] == [make_event(1), make_event(2)]
    assert keys_of(claim) == [event_key(make_event(1)), event_key(make_event(2))]
    assert [stored.id for stored in claim.events] == list(result.ids)
    for stored in claim.events:
        assert before - 1 <= stored.received_at <= time.time() + 1
        assert stored.attempts == 0 and stored.error is None


def test_a_redelivery_and_an_overlapping_delivery_store_each_event_once(inbox: Inbox) -> None:
    assert inbox.store("/h", [make_event(1), make_event(2)]).stored == 2
    again = inbox.store("/h", [make_event(1), make_event(2)])
    assert (again.stored, again.duplicates, again.ids) == (0, 2, ())
    # Same event, different key order and whitespace in the body it came in.
    reordered = json.loads(json.dumps(dict(reversed(list(make_event(2).items()))), indent=3))
    overlap = inbox.store("/h", [reordered, make_event(3)])
    assert (overlap.stored, overlap.duplicates) == (1, 1)
    # The same event twice in one delivery is stored once.
    twice = inbox.store("/h", [make_event(4), make_event(4)])
    assert (twice.stored, twice.duplicates) == (1, 1)
    assert inbox.stats().pending == 4
    assert inbox.stats().duplicates == 4


def test_a_handled_event_is_still_a_duplicate_within_the_window(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None
    inbox.complete(claim)
    assert inbox.store("/h", [make_event(1)]).stored == 0
    assert inbox.claim("w1", lease=LEASE) is None


def test_a_claim_takes_one_targets_events_oldest_first(inbox: Inbox) -> None:
    inbox.store("/a", [make_event(1), make_event(2)])
    inbox.store("/b", [make_event(3)])
    inbox.store("/a", [make_event(4)])
    first = inbox.claim("w1", lease=LEASE)
    assert first is not None
    assert first.target == "/a"
    assert keys_of(first) == [event_key(make_event(n)) for n in (1, 2, 4)]
    second = inbox.claim("w2", lease=LEASE)
    assert second is not None and second.target == "/b"
    assert inbox.claim("w3", lease=LEASE) is None, "claimed events were handed out twice"


def test_a_claim_keeps_a_delivery_whole_past_the_limit(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(n) for n in range(5)])
    inbox.store("/h", [make_event(n) for n in range(5, 8)])
    claim = inbox.claim("w1", lease=LEASE, limit=3)
    assert claim is not None
    assert len(claim.events) == 5, "a delivery's events were split across claims"
    rest = inbox.claim("w1", lease=LEASE, limit=3)
    assert rest is not None and len(rest.events) == 3


def test_complete_marks_events_handled(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1), make_event(2)])
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None
    assert inbox.stats().in_progress == 2
    inbox.complete(claim)
    stats = inbox.stats()
    assert (stats.pending, stats.in_progress, stats.handled) == (0, 0, 2)
    time.sleep(LEASE + 0.2)
    assert inbox.claim("w2", lease=LEASE) is None, "a handled event came back"


def test_an_expired_lease_lets_another_worker_take_the_events(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1), make_event(2)])
    dead = inbox.claim("w1", lease=LEASE)
    assert dead is not None
    assert inbox.claim("w2", lease=LEASE) is None
    time.sleep(LEASE + 0.2)
    assert inbox.stats().pending == 2, "events under a lapsed lease should count as pending"
    taken = inbox.claim("w2", lease=30)
    assert taken is not None and keys_of(taken) == keys_of(dead)
    assert taken.token != dead.token
    # Its worker died with them: that counts as an attempt, so an event that kills every
    # worker is parked in the end instead of going round for ever.
    assert [(e.attempts, e.error) for e in taken.events] == [(1, LEASE_LOST)] * 2
    # The first worker wakes up: it can no longer renew, and its complete leaves them alone.
    assert inbox.renew(dead, lease=30) is False
    inbox.complete(dead)
    assert inbox.stats().handled == 0
    assert inbox.stats().in_progress == 2
    assert inbox.renew(taken, lease=30) is True
    inbox.complete(taken)
    assert inbox.stats().handled == 2


def test_renew_keeps_a_claim_past_its_first_lease(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None
    for _ in range(3):
        time.sleep(LEASE / 2)
        assert inbox.renew(claim, lease=LEASE) is True
    assert inbox.claim("w2", lease=LEASE) is None, "a renewed claim was taken by another worker"


def test_retry_waits_out_the_delay_and_counts_the_attempt(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None
    inbox.retry(claim, "ValueError: boom", delay=0.6)
    assert inbox.stats().pending == 1
    assert inbox.claim("w1", lease=LEASE) is None, "a retry came back before its delay"
    time.sleep(0.8)
    again = inbox.claim("w1", lease=LEASE)
    assert again is not None
    assert again.events[0].attempts == 1
    assert again.events[0].error == "ValueError: boom"
    assert inbox.stats().retried == 1


def test_release_hands_events_back_at_once_without_an_attempt(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    inbox.release(claim)
    again = inbox.claim("w2", lease=30)
    assert again is not None and again.events[0].attempts == 0


def test_part_of_a_claim_is_settled_on_its_own(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1), make_event(2), make_event(3)])
    claim = inbox.claim("w1", lease=30)
    assert claim is not None
    good, poison, later = claim.events
    inbox.complete(claim.only([good]))
    inbox.park(claim.only([poison]), "KeyError: 'x'")
    assert inbox.stats().in_progress == 1
    assert inbox.renew(claim.only([later]), lease=30) is True
    inbox.release(claim.only([later]))
    stats = inbox.stats()
    assert (stats.handled, stats.failed, stats.pending, stats.in_progress) == (1, 1, 1, 0)


def test_parked_events_keep_their_error_and_can_be_replayed(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1), make_event(2)])
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None
    inbox.park(claim, "Traceback ...\nRuntimeError: the CRM is down")
    failed = inbox.failed()
    assert [stored.key for stored in failed] == keys_of(claim)
    assert all(stored.error and "the CRM is down" in stored.error for stored in failed)
    stats = inbox.stats()
    assert (stats.failed, stats.parked, stats.pending) == (2, 2, 0)
    assert inbox.claim("w1", lease=LEASE) is None, "a parked event was handed out"
    # A redelivery of a parked event is still a duplicate.
    assert inbox.store("/h", [make_event(1)]).stored == 0

    assert inbox.replay([failed[0].id, "not-an-id", "999999999"]) == 1
    replayed = inbox.claim("w1", lease=LEASE)
    assert replayed is not None
    assert keys_of(replayed) == [failed[0].key]
    assert replayed.events[0].attempts == 0
    assert inbox.stats().failed == 1


def test_purge_drops_parked_events_but_keeps_their_keys(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    inbox.store("/h", [make_event(2)])
    claim = inbox.claim("w1", lease=LEASE, limit=1)
    assert claim is not None
    inbox.park(claim, "boom")
    assert inbox.purge() == 1
    assert inbox.failed() == []
    assert inbox.stats().failed == 0
    assert inbox.stats().pending == 1, "purge touched a pending event"
    assert inbox.store("/h", [make_event(1)]).stored == 0
    assert inbox.replay([claim.events[0].id]) == 0


def test_prune_forgets_handled_keys_after_the_window_only(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1), make_event(2)])
    claim = inbox.claim("w1", lease=LEASE, limit=1)
    assert claim is not None and len(claim.events) == 2
    inbox.complete(claim.only(claim.events[:1]))
    inbox.park(claim.only(claim.events[1:]), "boom")
    inbox.store("/h", [make_event(3)])
    assert inbox.prune(older_than=3600) == 0
    time.sleep(0.05)
    assert inbox.prune(older_than=0) == 1, "only the handled event may be pruned"
    # Its key is gone: a (very late) redelivery is new again. The parked and pending stay.
    assert inbox.store("/h", [make_event(1)]).stored == 1
    assert inbox.store("/h", [make_event(2), make_event(3)]).stored == 0
    assert inbox.stats().failed == 1


def test_oldest_pending_age_tracks_the_oldest_unhandled_event(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    time.sleep(0.3)
    inbox.store("/h", [make_event(2)])
    age = inbox.stats().oldest_pending_age
    assert age is not None and 0.25 <= age < 30
    claim = inbox.claim("w1", lease=LEASE)
    assert claim is not None
    inbox.complete(claim)
    assert inbox.stats().oldest_pending_age is None


def test_a_store_is_all_or_nothing(inbox: Inbox) -> None:
    with pytest.raises(Exception):  # noqa: PT011  (each backend names it its own way)
        inbox.store("/h", [make_event(1), "not an event", make_event(2)])  # type: ignore[list-item]
    assert inbox.stats().pending == 0
    assert inbox.store("/h", [make_event(1), make_event(2)]).stored == 2


def test_sync_tokens_are_stored_with_the_polled_events(inbox: Inbox) -> None:
    assert inbox.sync_token("1201") is None
    inbox.store("/h", [make_event(1)])  # by webhook
    result = inbox.store_polled("1201", [make_event(1), make_event(2)], "sync-token-a")
    assert (result.stored, result.duplicates) == (1, 1), "polled events must dedupe webhooks'"
    assert inbox.sync_token("1201") == "sync-token-a"
    assert inbox.sync_token("other") is None
    inbox.store_polled("1201", [], "sync-token-b")
    assert inbox.sync_token("1201") == "sync-token-b"
    targets = set()
    while (claim := inbox.claim("w1", lease=LEASE)) is not None:
        targets.add(claim.target)
        inbox.complete(claim)
    assert targets == {"/h", "events:1201"}


def test_sync_state_says_when_the_token_was_stored_and_since_when_the_run_is_unbroken(
    inbox: Inbox,
) -> None:
    assert inbox.sync_state("1201") is None
    before = time.time()
    inbox.store_polled("1201", [], "sync-token-a", restart=True)
    first = inbox.sync_state("1201")
    assert first is not None and first.token == "sync-token-a"
    assert before <= first.stored_at <= time.time() and first.covered_since == first.stored_at
    time.sleep(0.01)
    inbox.store_polled("1201", [make_event(1)], "sync-token-b")
    second = inbox.sync_state("1201")
    assert second is not None and second.token == "sync-token-b"
    assert second.stored_at > first.stored_at, "stored_at moves with every token"
    assert second.covered_since == first.covered_since, "an unbroken run keeps its start"
    time.sleep(0.01)
    inbox.store_polled("1201", [], "sync-token-c", restart=True)
    third = inbox.sync_state("1201")
    assert third is not None and third.covered_since == third.stored_at > second.stored_at
    assert inbox.sync_token("1201") == "sync-token-c"
    inbox.store_polled("1202", [], "sync-token-x")
    fresh = inbox.sync_state("1202")
    assert fresh is not None and fresh.covered_since == fresh.stored_at, "a first token: a run"


def test_a_failed_poll_store_keeps_the_old_token(inbox: Inbox) -> None:
    inbox.store_polled("1201", [make_event(1)], "sync-token-a")
    with pytest.raises(Exception):  # noqa: PT011
        inbox.store_polled("1201", [make_event(2), 42], "sync-token-b")  # type: ignore[list-item]
    assert inbox.sync_token("1201") == "sync-token-a"
    assert inbox.stats().pending == 1


def test_gaps_are_counted(inbox: Inbox) -> None:
    inbox.note_gap("1201", 1_700_000_000.0)
    inbox.note_gap("1202", None)
    assert inbox.stats().gaps == 2


def test_concurrent_claims_never_share_an_event(inbox: Inbox) -> None:
    for n in range(0, 200, 4):
        inbox.store(f"/t{n % 3}", [make_event(n + i) for i in range(4)])
    seen: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while (claim := inbox.claim(name, lease=30, limit=5)) is not None:
                with lock:
                    seen.extend(keys_of(claim))
                inbox.complete(claim)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(seen) == 200
    assert len(set(seen)) == 200, "two workers were handed the same event"
    assert inbox.stats().handled == 200


def test_close_then_use_again(inbox: Inbox) -> None:
    inbox.store("/h", [make_event(1)])
    inbox.close()
    assert inbox.stats().pending == 1


def test_concurrent_stores_are_each_all_or_nothing(inbox: Inbox) -> None:
    results: dict[int, object] = {}
    barrier = threading.Barrier(12)

    def deliver(n: int) -> None:
        events: list[Any] = [make_event(10 * n + i) for i in range(3)]
        if n == 5:
            events.insert(1, "not an event")
        barrier.wait(10)
        try:
            results[n] = inbox.store(f"/t{n % 3}", events)
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert isinstance(results[5], Exception), "the bad delivery was accepted"
    assert all(getattr(results[n], "stored", None) == 3 for n in range(12) if n != 5), results
    assert inbox.stats().pending == 33, "a bad delivery took others down, or left a part behind"
