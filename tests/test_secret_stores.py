"""Secret stores beyond the shared contract (``secret_store_contract.py``): target keys, and
SQLite's own promises (owner-only file, WAL, locks, a deleted file, many first users)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from asana_webhooks import MemorySecretStore, SecretStore, SQLiteSecretStore, target_key

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
OTHER = "0f" * 32
TARGET = "https://example.com/asana/webhooks/1201?team=a"


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
        # Escaped reserved characters stay escaped (upper-cased): they are other URLs.
        ("/asana/a%2fb", "/asana/a%2Fb"),
        ("/asana/a%3Bb", "/asana/a%3Bb"),
        ("/asana/%2541", "/asana/%2541"),
        ("/asana/%41%62", "/asana/Ab"),
        ("/asana/100%", "/asana/100%25"),
        ("/asana/%zz", "/asana/%25zz"),
        ("/asana/a%3Fb?q=%3f", "/asana/a%3Fb?q=%3F"),
        ("/asana?x=%7e", "/asana?x=~"),
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
    announcement = store.announce(TARGET)
    child = textwrap.dedent(
        f"""
        from asana_webhooks import SQLiteSecretStore
        store = SQLiteSecretStore({str(path)!r})
        assert store.accept_handshake({TARGET!r}, {SECRET!r}, require_announcement=True)
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
    assert store.withdraw_announcement(TARGET, announcement) == SECRET
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
    announcement = store.announce(TARGET)

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
    assert store.withdraw_announcement(TARGET, announcement) == SECRET


@pytest.mark.parametrize("timeout", [0, -1])
def test_sqlite_timeout_must_be_finite_and_positive(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        SQLiteSecretStore(tmp_path / "x.sqlite3", timeout=timeout)


def test_memory_store_factory_signature() -> None:
    make: Callable[[], SecretStore] = MemorySecretStore
    assert make().get(TARGET) is None


def test_different_urls_never_share_a_key() -> None:
    urls = ["/a/b", "/a%2Fb", "/a%252Fb", "/a%25", "/a%2525", "/a;b", "/a%3Bb", "/a?b", "/a%3Fb"]
    keys = [target_key(url) for url in urls]
    assert len(set(keys)) == len(urls), dict(zip(urls, keys))


# --- SQLite: store faults (issue #12 items 9, 10, 11) ------------------------------------


def test_sqlite_file_deleted_while_running_is_made_again_owner_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.sqlite3"
    store = SQLiteSecretStore(path)
    store.set(TARGET, SECRET)
    for name in os.listdir(tmp_path):
        os.unlink(tmp_path / name)
    old_umask = os.umask(0o022)
    try:
        with caplog.at_level(logging.WARNING, logger="asana_webhooks"):
            assert store.get(TARGET) is None, "the secrets went with the file"
            store.set(TARGET, OTHER)
            announcement = store.announce(TARGET)
            assert store.accept_handshake(TARGET, SECRET, require_announcement=True)
            assert store.withdraw_announcement(TARGET, announcement) == SECRET
    finally:
        os.umask(old_umask)
    assert _mode(path) == 0o600, f"the new file is {oct(_mode(path))}, not 0600"
    warnings = [r for r in caplog.records if "was deleted while in use" in r.getMessage()]
    assert len(warnings) == 1, f"expected one warning, got {[r.getMessage() for r in warnings]}"
    assert SECRET not in caplog.text and OTHER not in caplog.text


def test_sqlite_file_replaced_by_an_empty_one_gets_its_tables_again(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite3"
    store = SQLiteSecretStore(path)
    store.set(TARGET, SECRET)
    os.unlink(path)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    assert store.get(TARGET) is None
    store.set(TARGET, OTHER)
    assert SQLiteSecretStore(path).get(TARGET) == OTHER


def test_sqlite_file_deleted_under_many_threads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "secrets.sqlite3"
    store = SQLiteSecretStore(path)
    for round_ in range(5):
        store.set(TARGET, SECRET)
        for name in os.listdir(tmp_path):
            os.unlink(tmp_path / name)
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def use(
            n: int, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors
        ) -> None:
            try:
                barrier.wait(timeout=10)
                store.set(f"/asana/{n}", SECRET)
                assert store.get(f"/asana/{n}") == SECRET
            except BaseException as exc:
                errors.append(exc)

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asana_webhooks"):
            threads = [threading.Thread(target=use, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert not errors, f"round {round_}: {errors}"
        warnings = [r for r in caplog.records if "while in use" in r.getMessage()]
        assert len(warnings) == 1, f"round {round_}: {len(warnings)} warnings, wanted one"
        assert _mode(path) == 0o600


_FIRST_USE = textwrap.dedent(
    """
    import os, sys, time
    from asana_webhooks import SQLiteSecretStore
    path, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    store = SQLiteSecretStore(path)
    time.sleep(max(0.0, start - time.time()))
    announcement = store.announce(f"/asana/{n}")
    assert store.accept_handshake(f"/asana/{n}", f"{n:064x}", require_announcement=True)
    assert store.withdraw_announcement(f"/asana/{n}", announcement) == f"{n:064x}"
    """
)


def test_sqlite_first_use_by_many_processes_at_once(tmp_path: Path) -> None:
    """Item 10: a fresh file opened by many processes at the same moment, several rounds."""
    processes, rounds = 8, 5
    for round_ in range(rounds):
        path = tmp_path / f"fresh-{round_}.sqlite3"
        start = time.time() + 1.5  # all past their imports, then released together
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _FIRST_USE, str(path), str(start), str(n)],
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(processes)
        ]
        failures = []
        for child in children:
            _, stderr = child.communicate(timeout=120)
            if child.returncode != 0:
                failures.append(stderr.strip().splitlines()[-1:])
        assert not failures, f"round {round_}: {failures}"
        store = SQLiteSecretStore(path)
        assert [store.get(f"/asana/{n}") for n in range(processes)] == [
            f"{n:064x}" for n in range(processes)
        ]
        assert _mode(path) == 0o600


def test_sqlite_in_memory_is_shared_by_the_store_s_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteSecretStore(":memory:")
    store.set(TARGET, SECRET)
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(store.get(TARGET)))
    thread.start()
    thread.join(timeout=10)
    assert seen == [SECRET], "another thread must see the same in-memory secrets"
    assert SQLiteSecretStore(":memory:").get(TARGET) is None, "each store has its own memory"
    assert os.listdir(tmp_path) == [], "no file named ':memory:' (or any other) is left"


@pytest.mark.parametrize("path", ["", "file:secrets.sqlite3?mode=memory"])
def test_sqlite_refuses_paths_it_cannot_share(path: str) -> None:
    with pytest.raises(ValueError, match="SQLiteSecretStore"):
        SQLiteSecretStore(path)


# --- Django on SQLite: every write path writes first (issue #12 item 3) ------------------


def test_django_store_on_sqlite_with_delete_signals_connected(tmp_path: Path) -> None:
    """Delete signals make Django read rows before deleting them: still no lock errors."""
    from secret_store_contract import django_sqlite_alias, run_threads

    alias = django_sqlite_alias()
    from django.db.models.signals import pre_delete

    from asana_webhooks.contrib.django import DjangoSecretStore

    store = DjangoSecretStore(using=alias)
    deleted: list[object] = []

    def note(sender: object, **kwargs: object) -> None:
        deleted.append(sender)

    pre_delete.connect(note, dispatch_uid="h-stores-test")
    try:

        def churn(n: int) -> int:
            for round_ in range(10):
                target = f"/asana/churn/{n % 2}"
                announcement = store.announce(target, 60)
                store.set(target, f"{n:032x}{round_:032x}")
                store.delete(target)
                store.withdraw_announcement(target, announcement)
            return n

        assert run_threads(store, 8, churn) == list(range(8))
    finally:
        pre_delete.disconnect(dispatch_uid="h-stores-test")


def test_sqlite_set_up_waits_out_an_immediate_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite answers a lock upgrade between two connections that both read first (two
    processes switching a fresh file to WAL) with "database is locked" at once, without its
    busy timeout. Timing that from a test is luck, so the answer is injected twice here: the
    set-up must retry within its timeout instead of failing the first call."""
    import sqlite3

    store = SQLiteSecretStore(tmp_path / "secrets.sqlite3")
    set_up = store._set_up
    refusals = [sqlite3.OperationalError("database is locked")] * 2

    def busy_at_first(connection: sqlite3.Connection) -> None:
        if refusals:
            connection.close()
            raise refusals.pop()
        set_up(connection)

    monkeypatch.setattr(store, "_set_up", busy_at_first)
    store.set(TARGET, SECRET)
    assert store.get(TARGET) == SECRET
    assert refusals == []
