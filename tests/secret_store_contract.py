"""The secret store contract: what every store (memory, SQLite, Django, Redis...) must do.

``test_secret_store_contract.py`` collects these tests. To run them against another store,
write a factory (a generator taking ``tmp_path`` that yields a fresh, empty store and cleans
up) and add one line to ``BACKENDS``. Announcement expiry is tested with short real times,
so a store needs no clock hook. A store used from several threads may need each thread to
let go of its connection: give the factory's store to ``end_thread`` (Django does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from asana_webhooks import (
    Contact,
    MemorySecretStore,
    RecordsContact,
    SecretStore,
    SQLiteSecretStore,
    SupportsLocks,
)

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
OTHER = "0f" * 32
TARGET = "https://example.com/asana/webhooks/1201?team=a"
SHORT = 0.5  # an announcement that expires during the test; long for one store call


def memory_store(tmp_path: Path) -> Iterator[SecretStore]:
    yield MemorySecretStore()


def sqlite_store(tmp_path: Path) -> Iterator[SecretStore]:
    # A generous lock timeout, as for Django below: a busy machine is not the defect.
    yield SQLiteSecretStore(tmp_path / "secrets.sqlite3", timeout=60.0)


def sqlite_memory_store(tmp_path: Path) -> Iterator[SecretStore]:
    yield SQLiteSecretStore(":memory:")


def _django_store(alias: str) -> Iterator[SecretStore]:
    from django.db import connections

    from asana_webhooks.contrib.django import DjangoSecretStore
    from asana_webhooks.contrib.django.models import (
        WebhookAnnouncement,
        WebhookContact,
        WebhookLock,
        WebhookSecret,
    )

    for model in (WebhookSecret, WebhookAnnouncement, WebhookLock, WebhookContact):
        model.objects.using(alias).all().delete()
    yield DjangoSecretStore(using=alias)
    connections[alias].close()


#: SQLite's busy timeout in these tests. The default (5 s) is plenty for the
#: lock waits these tests cause, but not on a machine shared with other test runs, where a
#: thread holding the lock can wait seconds for a CPU. A call failing *at once* with
#: "database is locked" (the defect of issue #12 item 3) fails these tests all the same.
BUSY_MACHINE_TIMEOUT = 60.0


def django_sqlite_alias() -> str:
    """The Django SQLite alias, with a busy timeout generous enough for a busy machine."""
    from django.db import connections
    from django_databases import sqlite_alias

    alias = sqlite_alias()
    options = connections[alias].settings_dict.setdefault("OPTIONS", {})
    if options.get("timeout") != BUSY_MACHINE_TIMEOUT:
        options["timeout"] = BUSY_MACHINE_TIMEOUT
        connections[alias].close()  # reopened with the new timeout
    return alias


def django_sqlite_store(tmp_path: Path) -> Iterator[SecretStore]:
    yield from _django_store(django_sqlite_alias())


def django_postgres_store(tmp_path: Path) -> Iterator[SecretStore]:
    from django_databases import postgres_alias

    yield from _django_store(postgres_alias())


def redis_store(tmp_path: Path) -> Iterator[SecretStore]:
    from inbox_servers import redis_secret_store

    yield from redis_secret_store()


#: One line per store: pytest.param(factory, id=name).
BACKENDS: list[Any] = [
    pytest.param(memory_store, id="memory"),
    pytest.param(sqlite_store, id="sqlite"),
    pytest.param(sqlite_memory_store, id="sqlite-memory"),
    pytest.param(django_sqlite_store, id="django-sqlite"),
    pytest.param(django_postgres_store, id="django-postgres"),
    pytest.param(redis_store, id="redis"),
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretStore]:
    factory: Callable[[Path], Iterator[SecretStore]] = request.param
    yield from factory(tmp_path)


def end_thread(store: SecretStore) -> None:
    """What a thread that used ``store`` must do before it ends (Django: close its connection)."""
    if type(store).__name__ == "DjangoSecretStore":
        from django.db import connections

        connections.close_all()


def run_threads(store: SecretStore, count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(n)`` for n in range(count), each in its own thread, all released at once.

    Returns the results in order; an exception in any thread is re-raised here.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[n] = work(n)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            end_thread(store)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a store call hung"
    if errors:
        raise errors[0]
    return results


# --- secrets ----------------------------------------------------------------------------


def test_the_store_satisfies_the_protocol(store: SecretStore) -> None:
    assert isinstance(store, SecretStore)


def test_set_get_delete(store: SecretStore) -> None:
    assert store.get(TARGET) is None
    store.set(TARGET, SECRET)
    assert store.get(TARGET) == SECRET
    store.set(TARGET, OTHER)
    assert store.get(TARGET) == OTHER, "set must replace the previous secret"
    store.delete(TARGET)
    assert store.get(TARGET) is None
    store.delete(TARGET)  # forgetting an unknown target is no error


def test_a_url_and_its_path_and_query_are_the_same_target(store: SecretStore) -> None:
    store.set(TARGET, SECRET)
    assert store.get("/asana/webhooks/1201?team=a") == SECRET
    assert store.get("http://other-host:8080/asana/webhooks/1201?team=a") == SECRET
    assert store.get("/asana/webhooks/1201") is None, "the query string is part of the key"
    assert store.get("/asana/webhooks/1201?team=b") is None


def test_an_escaped_slash_is_another_target(store: SecretStore) -> None:
    store.set("/asana/a%2Fb", SECRET)
    assert store.get("/asana/a/b") is None, "/a%2Fb and /a/b are different URLs"
    assert store.get("/asana/a%2fb") == SECRET


def test_reprs_never_show_secrets(store: SecretStore) -> None:
    store.set(TARGET, SECRET)
    store.announce(TARGET)
    assert store.accept_handshake(TARGET, OTHER, require_announcement=True)
    assert SECRET not in repr(store) and OTHER not in repr(store)


# --- handshakes and announcements ---------------------------------------------------------


def test_an_unannounced_handshake_stores_nothing(store: SecretStore) -> None:
    assert not store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) is None
    assert store.current_announcement(TARGET) is None


def test_an_announcement_admits_exactly_one_handshake(store: SecretStore) -> None:
    announcement = store.announce(TARGET, 60)
    assert isinstance(announcement, str) and announcement
    assert store.current_announcement(TARGET) == announcement
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) == SECRET
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=True)
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=False)
    assert store.get(TARGET) == SECRET, "a second handshake must not replace the first"
    assert store.withdraw_announcement(TARGET, announcement) == SECRET
    assert store.current_announcement(TARGET) is None


def test_an_announcement_expires(store: SecretStore) -> None:
    announcement = store.announce(TARGET, SHORT)
    time.sleep(SHORT + 0.2)
    assert store.current_announcement(TARGET) is None
    assert not store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) is None
    assert store.withdraw_announcement(TARGET, announcement) is None


def test_a_handshake_secret_survives_the_expiry_until_withdrawn(store: SecretStore) -> None:
    announcement = store.announce(TARGET, SHORT)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    time.sleep(SHORT + 0.2)
    assert store.withdraw_announcement(TARGET, announcement) == SECRET, (
        "a slow create must still learn which secret its handshake stored"
    )


def test_withdrawing_closes_the_window(store: SecretStore) -> None:
    announcement = store.announce(TARGET, 60)
    assert store.withdraw_announcement(TARGET, announcement) is None, "no handshake arrived"
    assert not store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.withdraw_announcement(TARGET, announcement) is None


def test_an_announced_handshake_replaces_an_old_secret(store: SecretStore) -> None:
    store.set(TARGET, OTHER)
    store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) == SECRET


def test_unannounced_mode_admits_only_a_target_without_a_secret(store: SecretStore) -> None:
    assert store.accept_handshake(TARGET, SECRET, require_announcement=False)
    assert store.get(TARGET) == SECRET
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=False)
    assert store.get(TARGET) == SECRET, "a stranger must not replace a stored secret"


def test_announcing_again_after_withdrawing_opens_a_new_window(store: SecretStore) -> None:
    first = store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.withdraw_announcement(TARGET, first) == SECRET
    second = store.announce(TARGET, 60)
    assert second != first, "every announcement has its own id"
    assert store.accept_handshake(TARGET, OTHER, require_announcement=True)
    assert store.withdraw_announcement(TARGET, second) == OTHER


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_a_non_positive_ttl_is_refused(store: SecretStore, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.announce(TARGET, ttl)


# --- announcements of one target by several callers (issue #12 item 1) ------------------


def test_announcements_queue_and_only_the_oldest_admits_a_handshake(store: SecretStore) -> None:
    first = store.announce(TARGET, 60)
    second = store.announce(TARGET, 60)
    assert len({first, second}) == 2
    assert store.current_announcement(TARGET) == first
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=True), (
        "the second announcement must wait until the first is withdrawn"
    )
    assert store.get(TARGET) == SECRET
    assert store.withdraw_announcement(TARGET, first) == SECRET
    assert store.current_announcement(TARGET) == second
    assert store.accept_handshake(TARGET, OTHER, require_announcement=True)
    assert store.withdraw_announcement(TARGET, second) == OTHER


def test_withdrawing_acts_on_that_announcement_only(store: SecretStore) -> None:
    # The race of issue #12 item 1: A's handshake is in; B announces; A withdraws.
    first = store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    second = store.announce(TARGET, 60)
    assert store.withdraw_announcement(TARGET, second) is None, "B's own had no handshake"
    assert store.current_announcement(TARGET) == first, "B's withdrawal must not end A's"
    assert store.withdraw_announcement(TARGET, first) == SECRET, "A must find its handshake"


def test_withdrawing_an_unknown_or_foreign_id_does_nothing(store: SecretStore) -> None:
    announcement = store.announce(TARGET, 60)
    assert store.withdraw_announcement(TARGET, "0" * 32) is None
    assert store.withdraw_announcement("/some/other/target", announcement) is None
    assert store.current_announcement(TARGET) == announcement
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.withdraw_announcement(TARGET, announcement) == SECRET


def test_an_expired_announcement_gives_way_to_the_next(store: SecretStore) -> None:
    stale = store.announce(TARGET, SHORT)  # its caller died
    fresh = store.announce(TARGET, 60)
    assert store.current_announcement(TARGET) == stale
    time.sleep(SHORT + 0.2)
    assert store.current_announcement(TARGET) == fresh
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.withdraw_announcement(TARGET, fresh) == SECRET
    assert store.withdraw_announcement(TARGET, stale) is None


def test_unannounced_mode_refuses_while_an_announcement_is_live(store: SecretStore) -> None:
    announcement = store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=False)
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=False)
    assert store.withdraw_announcement(TARGET, announcement) == SECRET


def test_other_targets_do_not_queue_behind(store: SecretStore) -> None:
    store.announce(TARGET, 60)
    other = store.announce("/asana/webhooks/other", 60)
    assert store.current_announcement("/asana/webhooks/other") == other
    assert store.accept_handshake("/asana/webhooks/other", SECRET, require_announcement=True)


# --- concurrency --------------------------------------------------------------------------


def test_concurrent_handshakes_for_one_announcement_admit_one(store: SecretStore) -> None:
    announcement = store.announce(TARGET, 60)
    results = run_threads(
        store,
        8,
        lambda n: store.accept_handshake(TARGET, f"{n:064x}", require_announcement=True),
    )
    assert sorted(results) == [False] * 7 + [True]
    assert store.get(TARGET) == store.withdraw_announcement(TARGET, announcement)


def test_concurrent_callers_take_turns_without_lock_errors(store: SecretStore) -> None:
    """Many threads, each: announce, wait for its turn, handshake, withdraw (issue #12 item 3).

    Every call must succeed (no "database is locked"), each caller must get its own turn,
    and each must read back exactly the secret of its own handshake.
    """
    rounds, threads = 4, 8
    inside = [0]
    most_inside = [0]
    lock = threading.Lock()

    def establish(n: int) -> list[tuple[str, str]]:
        seen = []
        for r in range(rounds):
            secret = f"{n:032x}{r:032x}"
            announcement = store.announce(TARGET, 60)
            deadline = time.monotonic() + 60
            while store.current_announcement(TARGET) != announcement:
                assert time.monotonic() < deadline, "the turn never came"
                time.sleep(0.005)
            with lock:
                inside[0] += 1
                most_inside[0] = max(most_inside[0], inside[0])
            time.sleep(0.01)  # a create takes a while: let an overlapping turn show
            assert store.accept_handshake(TARGET, secret, require_announcement=True)
            assert store.get(TARGET) == secret
            with lock:
                inside[0] -= 1
            seen.append((secret, str(store.withdraw_announcement(TARGET, announcement))))
        return seen

    results = run_threads(store, threads, establish)
    pairs = [pair for per_thread in results for pair in per_thread]
    assert len(pairs) == rounds * threads
    assert most_inside[0] == 1, f"{most_inside[0]} callers believed it was their turn at once"
    assert all(secret == received for secret, received in pairs), "a turn read another's secret"
    assert store.current_announcement(TARGET) is None


def test_simultaneous_announcements_see_one_current(store: SecretStore) -> None:
    """Announcements made at the same moment must queue in one order that all callers see.

    On PostgreSQL a sequence number is drawn at INSERT but shown at COMMIT, so without a
    lock two announcements could each find itself the oldest, and both callers create.
    """
    for round_ in range(20):
        target = f"/asana/simultaneous/{round_}"

        def announce_and_look(n: int, target: str = target) -> bool:
            announcement = store.announce(target, 60)
            return store.current_announcement(target) == announcement

        firsts = run_threads(store, 8, announce_and_look)
        assert sum(firsts) <= 1, f"round {round_}: {sum(firsts)} announcements saw themselves first"


# --- the ensure lock (issue #16) -------------------------------------------------------------


def test_the_store_holds_locks_and_records_contact(store: SecretStore) -> None:
    assert isinstance(store, SupportsLocks), "ensure_webhooks could not serialise its runs"
    assert isinstance(store, RecordsContact), "the receiver could not record heartbeats"


def test_a_lock_is_held_by_one_holder_until_released(store: Any) -> None:
    token = store.acquire_lock("ensure", 60)
    assert token is not None, "a free lock was refused"
    assert store.acquire_lock("ensure", 60) is None, "a held lock was handed out twice"
    assert store.acquire_lock("other", 60) is not None, "locks of other names must not block"
    store.release_lock("ensure", token)
    again = store.acquire_lock("ensure", 60)
    assert again is not None and again != token, "a released lock must be free, with a new token"


def test_a_lock_whose_holder_died_expires(store: Any) -> None:
    dead = store.acquire_lock("ensure", SHORT)
    assert dead is not None
    assert store.acquire_lock("ensure", 60) is None
    time.sleep(SHORT + 0.2)
    taken = store.acquire_lock("ensure", 60)
    assert taken is not None, "an expired lock was never free again"
    store.release_lock("ensure", dead)  # the late holder's release must not free it
    assert store.acquire_lock("ensure", 60) is None, "a stale token released another's lock"
    store.release_lock("ensure", taken)
    assert store.acquire_lock("ensure", 60) is not None


def test_a_renewed_lock_outlives_its_first_ttl_and_a_lost_one_cannot_be_renewed(
    store: Any,
) -> None:
    token = store.acquire_lock("ensure", SHORT)
    time.sleep(SHORT / 2)
    assert store.renew_lock("ensure", token, 60) is True, "the holder could not renew"
    time.sleep(SHORT / 2 + 0.2)
    assert store.acquire_lock("ensure", 60) is None, "a renewed lock expired at its first ttl"
    assert store.renew_lock("ensure", "not-the-token", 60) is False
    store.release_lock("ensure", token)
    lapsed = store.acquire_lock("ensure", SHORT)
    time.sleep(SHORT + 0.2)
    assert store.renew_lock("ensure", lapsed, 60) is False, "an expired lock was renewed"
    assert store.acquire_lock("ensure", 60) is not None


def test_a_bad_lock_ttl_or_name_is_refused(store: Any) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.acquire_lock("ensure", 0)
    with pytest.raises(ValueError, match="name"):
        store.acquire_lock("", 60)


def test_concurrent_callers_get_one_lock(store: Any) -> None:
    for round_ in range(5):
        tokens = run_threads(store, 8, lambda n, r=round_: store.acquire_lock(f"race{r}", 60))
        held = [token for token in tokens if token is not None]
        assert len(held) == 1, f"round {round_}: {len(held)} callers got the lock at once"


# --- the receiver's record of contact (issue #16) ----------------------------------------------


def test_contact_is_unknown_until_recorded(store: Any) -> None:
    assert store.last_contact(TARGET) == Contact()
    assert store.last_contact(TARGET).last is None


def test_heartbeats_and_deliveries_are_recorded_apart_and_keep_the_latest(store: Any) -> None:
    store.record_contact(TARGET, heartbeat=True, at=1000.5)
    store.record_contact(TARGET, heartbeat=False, at=2000.25)
    store.record_contact(TARGET, heartbeat=True, at=900.0)  # late news from another server
    contact = store.last_contact("/asana/webhooks/1201?team=a")  # the same target, as a path
    assert contact == Contact(last_heartbeat=1000.5, last_delivery=2000.25)
    assert contact.last == 2000.25
    store.record_contact(TARGET, heartbeat=True, at=3000.0)
    assert store.last_contact(TARGET).last_heartbeat == 3000.0
    assert store.last_contact("/asana/webhooks/other") == Contact(), "targets must not mix"


def test_concurrent_records_keep_the_latest(store: Any) -> None:
    run_threads(store, 8, lambda n: store.record_contact(TARGET, heartbeat=False, at=100.0 + n))
    assert store.last_contact(TARGET).last_delivery == 107.0
