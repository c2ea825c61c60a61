"""Secret stores: one contract for memory, SQLite and Django; SQLite's file is owner-only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from asana_webhooks import MemorySecretStore, SecretStore, SQLiteSecretStore, target_key

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
OTHER = "0f" * 32
TARGET = "https://example.com/asana/webhooks/1201?team=a"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _django_store(clock: Clock) -> SecretStore:
    from receiving_django import ensure_django

    ensure_django()
    from asana_webhooks.contrib.django import DjangoSecretStore
    from asana_webhooks.contrib.django.models import WebhookAnnouncement, WebhookSecret

    WebhookSecret.objects.all().delete()
    WebhookAnnouncement.objects.all().delete()
    return DjangoSecretStore(clock=clock)


@pytest.fixture(params=["memory", "sqlite", "django"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[SecretStore]:
    if request.param == "memory":
        yield MemorySecretStore(clock=clock)
    elif request.param == "sqlite":
        yield SQLiteSecretStore(tmp_path / "secrets.sqlite3", clock=clock)
    else:
        yield _django_store(clock)


def test_every_store_satisfies_the_protocol(store: SecretStore) -> None:
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


def test_an_unannounced_handshake_stores_nothing(store: SecretStore) -> None:
    assert not store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) is None


def test_an_announcement_admits_exactly_one_handshake(store: SecretStore) -> None:
    store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) == SECRET
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=True)
    assert not store.accept_handshake(TARGET, OTHER, require_announcement=False)
    assert store.get(TARGET) == SECRET, "a second handshake must not replace the first"
    assert store.withdraw_announcement(TARGET) == SECRET


def test_an_announcement_expires(store: SecretStore, clock: Clock) -> None:
    store.announce(TARGET, 60)
    clock.now += 61
    assert not store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.get(TARGET) is None
    assert store.withdraw_announcement(TARGET) is None


def test_withdrawing_closes_the_window(store: SecretStore) -> None:
    store.announce(TARGET, 60)
    assert store.withdraw_announcement(TARGET) is None, "no handshake arrived"
    assert not store.accept_handshake(TARGET, SECRET, require_announcement=True)
    assert store.withdraw_announcement(TARGET) is None


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


def test_announcing_again_opens_a_new_window(store: SecretStore) -> None:
    store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
    store.announce(TARGET, 60)
    assert store.accept_handshake(TARGET, OTHER, require_announcement=True)
    assert store.withdraw_announcement(TARGET) == OTHER


@pytest.mark.parametrize("ttl", [0, -1.0, float("nan")])
def test_a_non_positive_ttl_is_refused(store: SecretStore, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.announce(TARGET, ttl)


def test_reprs_never_show_secrets(store: SecretStore) -> None:
    store.set(TARGET, SECRET)
    assert SECRET not in repr(store)


def test_concurrent_handshakes_for_one_announcement_admit_one(store: SecretStore) -> None:
    store.announce(TARGET, 60)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def handshake(n: int) -> None:
        barrier.wait(timeout=10)
        try:
            results.append(store.accept_handshake(TARGET, f"{n:064x}", require_announcement=True))
        finally:
            if type(store).__name__ == "DjangoSecretStore":
                from django.db import connections

                connections.close_all()  # each thread has its own Django connection

    threads = [threading.Thread(target=handshake, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 7 + [True]
    assert store.get(TARGET) == store.withdraw_announcement(TARGET)


# --- target keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ("https://example.com/asana/1?team=a", "/asana/1?team=a"),
        ("/asana/1?team=a", "/asana/1?team=a"),
        ("https://example.com", "/"),
        ("https://example.com/?", "/"),
        ("/asana/1#fragment", "/asana/1"),
        ("//asana//1", "//asana//1"),
        ("https://example.com/asana/a%20b", "/asana/a%20b"),
        ("/asana/a b", "/asana/a%20b"),
        ("/asana/%7euser", "/asana/~user"),
        ("/asana/caf\u00e9", "/asana/caf%C3%A9"),
        ("/asana?x=a%2fb", "/asana?x=a%2Fb"),
        ("/asana?x=a b", "/asana?x=a%20b"),
    ],
)
def test_target_key(target: str, key: str) -> None:
    assert target_key(target) == key
    assert target_key(key) == key, "a key must be its own key"


# --- SQLite specifics ------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_creates_owner_only_files(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite3"
    old_umask = os.umask(0o022)  # a typical, permissive umask
    try:
        store = SQLiteSecretStore(path)
        store.set(TARGET, SECRET)
        store.announce(TARGET)
    finally:
        os.umask(old_umask)
    assert _mode(path) == 0o600, f"database file is {oct(_mode(path))}, not 0600"
    for suffix in ("-wal", "-shm"):
        side_file = tmp_path / f"secrets.sqlite3{suffix}"
        if side_file.exists():
            assert _mode(side_file) & 0o077 == 0, f"{side_file.name} is {oct(_mode(side_file))}"


def test_sqlite_construction_touches_nothing(tmp_path: Path) -> None:
    SQLiteSecretStore(tmp_path / "secrets.sqlite3")
    assert not (tmp_path / "secrets.sqlite3").exists()


def test_sqlite_uses_wal_and_keeps_secrets_across_instances(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "secrets.sqlite3"
    SQLiteSecretStore(path).set(TARGET, SECRET)
    assert SQLiteSecretStore(path).get(TARGET) == SECRET
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_sqlite_is_shared_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite3"
    store = SQLiteSecretStore(path)
    store.announce(TARGET)
    child = textwrap.dedent(
        f"""
        from asana_webhooks import SQLiteSecretStore
        store = SQLiteSecretStore({str(path)!r})
        assert store.accept_handshake({TARGET!r}, {SECRET!r}, require_announcement=True)
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    assert store.withdraw_announcement(TARGET) == SECRET
    assert store.get(TARGET) == SECRET


def test_sqlite_gives_up_on_a_lock_after_its_timeout(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "secrets.sqlite3"
    store = SQLiteSecretStore(path, timeout=0.2)
    store.set(TARGET, SECRET)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.set(TARGET, OTHER)
        assert store.get(TARGET) == SECRET, "readers go on beside a writer in WAL mode"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.set(TARGET, OTHER)
    assert store.get(TARGET) == OTHER


def test_sqlite_rolls_back_a_handshake_that_fails_halfway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteSecretStore(tmp_path / "secrets.sqlite3")
    store.announce(TARGET)

    def crash(*args: object) -> None:
        raise RuntimeError("process died here")

    # The announcement is claimed first, then the secret written: die between the two.
    monkeypatch.setattr(store, "_put", crash)
    with pytest.raises(RuntimeError):
        store.accept_handshake(TARGET, OTHER, require_announcement=True)
    monkeypatch.undo()
    assert store.get(TARGET) is None
    assert store.accept_handshake(TARGET, SECRET, require_announcement=True), (
        "the failed handshake must not have used up the announcement"
    )
    assert store.withdraw_announcement(TARGET) == SECRET


@pytest.mark.parametrize("timeout", [0, -1])
def test_sqlite_timeout_must_be_finite_and_positive(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        SQLiteSecretStore(tmp_path / "x.sqlite3", timeout=timeout)


def test_memory_store_factory_signature() -> None:
    make: Callable[[], SecretStore] = MemorySecretStore
    assert make().get(TARGET) is None
