"""Concurrent ``establish_webhook`` calls for one target (issue #12 item 1), against FakeAsana
over real sockets, from threads and from processes, on the SQLite and Django stores.

Whatever the interleaving, every round must end with exactly one webhook for the target,
every establisher returning that webhook, the store holding the secret Asana signs with,
and a delivery to it verified (200).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from _establishers import child, establish_once, make_api, open_store, take_turns
from secret_store_contract import BUSY_MACHINE_TIMEOUT, django_sqlite_alias

from asana_webhooks import (
    AmbiguousCreateError,
    AsanaError,
    ForbiddenError,
    MemorySecretStore,
    SecretStore,
    SecretStoreError,
    SQLiteSecretStore,
    WebhookReceiver,
    WebhookResponse,
    establish_webhook,
)
from asana_webhooks._errors import Error
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana, make_event

# More for a longer run: ASANA_WEBHOOKS_ESTABLISH_THREADS=16 ..._THREAD_ROUNDS=20 and so on.
pytestmark = pytest.mark.timeout(900)  # processes and many rounds: slow on a busy machine

THREADS = int(os.environ.get("ASANA_WEBHOOKS_ESTABLISH_THREADS", "8"))
THREAD_ROUNDS = int(os.environ.get("ASANA_WEBHOOKS_ESTABLISH_THREAD_ROUNDS", "8"))
PROCESSES = int(os.environ.get("ASANA_WEBHOOKS_ESTABLISH_PROCESSES", "4"))
PROCESS_ROUNDS = int(os.environ.get("ASANA_WEBHOOKS_ESTABLISH_PROCESS_ROUNDS", "6"))


def _django_spec(alias: str) -> dict[str, Any]:
    from django.db import connections

    database = dict(connections[alias].settings_dict)
    if database["ENGINE"].endswith("sqlite3"):
        database = {
            "ENGINE": database["ENGINE"],
            "NAME": database["NAME"],
            "OPTIONS": {"timeout": BUSY_MACHINE_TIMEOUT},
        }
    return {"kind": "django", "database": database}


@pytest.fixture(params=["sqlite", "django-sqlite", "django-postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        path = str(tmp_path / "secrets.sqlite3")
        yield {"kind": "sqlite", "path": path, "timeout": BUSY_MACHINE_TIMEOUT}
        return
    from django_databases import postgres_alias

    alias = django_sqlite_alias() if request.param == "django-sqlite" else postgres_alias()
    from asana_webhooks.contrib.django.models import WebhookAnnouncement, WebhookSecret

    WebhookSecret.objects.using(alias).all().delete()
    WebhookAnnouncement.objects.using(alias).all().delete()
    yield {**_django_spec(alias), "alias": alias}


def _parent_store(spec: dict[str, Any]) -> SecretStore:
    if spec["kind"] == "sqlite":
        return open_store(spec)
    from asana_webhooks.contrib.django import DjangoSecretStore

    return DjangoSecretStore(using=spec["alias"])


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana(handshake_timeout=30.0) as running:
        yield running


def _check_round(
    fake: FakeAsana, store: SecretStore, target: str, outcomes: list[tuple[str, str]]
) -> None:
    failures = [outcome for outcome in outcomes if outcome[0] != "ok"]
    assert not failures, f"{target}: establishers failed: {failures}"
    webhooks = [webhook for webhook in fake.webhooks if webhook["target"] == target]
    assert len(webhooks) == 1, f"{target}: {len(webhooks)} webhooks, wanted exactly one"
    gid = webhooks[0]["gid"]
    assert {result for _, result in outcomes} == {gid}, (
        f"{target}: establishers returned {sorted({r for _, r in outcomes})}, "
        f"but the live webhook is {gid}"
    )
    assert store.get(target) == fake.secret_for(gid), (
        f"{target}: the stored secret is not the one Asana signs with"
    )
    status = fake.deliver(gid, [make_event()])
    assert status == 200, f"{target}: a delivery to the established webhook got {status}"


def test_concurrent_establishers_in_threads_make_one_webhook(
    fake: FakeAsana, store_spec: dict[str, Any]
) -> None:
    store = _parent_store(store_spec)
    with ReceiverServer.for_receiver(WebhookReceiver(store)) as server:
        apis = [make_api(fake.url, fake.access_token) for _ in range(THREADS)]
        for round_ in range(THREAD_ROUNDS):
            target = f"{server.url}/asana/threads/{round_}"
            resource = str(1_300_000_000_000_000 + round_)
            outcomes = _establish_in_threads(apis, store, resource, target, fake.workspace_gid)
            _check_round(fake, store, target, outcomes)


def _establish_in_threads(
    apis: list[Any], store: SecretStore, resource: str, target: str, workspace: str
) -> list[tuple[str, str]]:
    barrier = threading.Barrier(len(apis))
    outcomes: list[Any] = [("not run", "")] * len(apis)

    def run(n: int) -> None:
        barrier.wait(timeout=60)
        outcomes[n] = establish_once(apis[n], store, resource, target, workspace)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(apis))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "an establisher hung"
    return outcomes


def test_concurrent_establishers_in_processes_make_one_webhook(
    fake: FakeAsana, store_spec: dict[str, Any]
) -> None:
    store = _parent_store(store_spec)
    context = multiprocessing.get_context("spawn")
    with ReceiverServer.for_receiver(WebhookReceiver(store)) as server:
        jobs = [
            (str(1_400_000_000_000_000 + round_), f"{server.url}/asana/processes/{round_}")
            for round_ in range(PROCESS_ROUNDS)
        ]
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        spec = {key: value for key, value in store_spec.items() if key != "alias"}
        processes = [
            context.Process(
                target=child,
                args=(n, spec, fake.url, fake.access_token, fake.workspace_gid, jobs, barrier),
                kwargs={"results": results},
            )
            for n in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        outcomes: dict[str, list[tuple[str, str]]] = {target: [] for _, target in jobs}
        try:
            for _ in range(PROCESSES * PROCESS_ROUNDS):
                _, target, kind, detail = results.get(timeout=300)
                outcomes[target].append((kind, detail))
        finally:
            for process in processes:
                process.join(timeout=60)
                if process.is_alive():
                    process.kill()
        assert all(process.exitcode == 0 for process in processes), [
            process.exitcode for process in processes
        ]
        for _, target in jobs:
            _check_round(fake, store, target, outcomes[target])


# --- store faults during establish_webhook (issue #12 item 3) ----------------------------


def _hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Take the SQLite file's write lock in another connection for ``seconds``."""
    import sqlite3

    taken = threading.Event()

    def hold() -> None:
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10), "the blocker never got the lock"
    return thread


def test_a_store_that_fails_after_the_create_leaves_no_webhook(
    fake: FakeAsana, tmp_path: Path
) -> None:
    path = str(tmp_path / "secrets.sqlite3")
    store = SQLiteSecretStore(path, timeout=0.3)
    blockers: list[threading.Thread] = []
    # Right after the handshake is stored, someone holds the write lock past the store's
    # timeout: establish_webhook's withdrawal fails with "database is locked".
    receiver = WebhookReceiver(
        store, on_handshake=lambda target: blockers.append(_hold_write_lock(path, 3.0))
    )
    with ReceiverServer.for_receiver(receiver) as server:
        api = make_api(fake.url, fake.access_token)
        with pytest.raises(SecretStoreError) as failed:
            establish_webhook(
                api, store, "1500000000000001", f"{server.url}/asana/locked", workspace=None
            )
    assert isinstance(failed.value, AsanaError)
    assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
    assert "database is locked" in str(failed.value)
    assert failed.value.webhook_gid is not None and failed.value.webhook_deleted
    assert fake.webhooks == [], "the webhook whose handshake could not be checked must go"
    for blocker in blockers:
        blocker.join(10)


def test_a_store_that_fails_before_the_create_sends_nothing(
    fake: FakeAsana, tmp_path: Path
) -> None:
    path = str(tmp_path / "secrets.sqlite3")
    store = SQLiteSecretStore(path, timeout=0.3)
    store.set("/warm-up", "x")
    blocker = _hold_write_lock(path, 2.0)
    api = make_api(fake.url, fake.access_token)
    with pytest.raises(SecretStoreError, match="database is locked") as failed:
        establish_webhook(api, store, "1500000000000002", "http://127.0.0.1:9/asana/x")
    assert failed.value.webhook_gid is None
    assert fake.webhooks == [] and fake.requests == [], "nothing may be sent"
    blocker.join(10)


def test_a_duplicate_whose_handshake_stored_a_secret_puts_the_old_one_back() -> None:
    """If Asana ran our handshake and then refused the create as a duplicate, the existing
    webhook still signs with the secret stored before: ours must not replace it."""
    store = MemorySecretStore()
    receiver = WebhookReceiver(store)
    store.set("/asana/dup", "old-secret")
    existing = WebhookResponse(gid="77", target="https://example.com/asana/dup")

    class HandshakeThenDuplicate:
        deleted: list[str] = []

        def create_webhook(self, request: Any, /) -> Any:
            assert (
                receiver.handle(request.data.target, {"X-Hook-Secret": "ours"}, b"").status == 200
            )
            raise ForbiddenError(
                403, errors=[Error(message="Duplicated webhook. You already have one")]
            )

        def delete_webhook(self, gid: str, /) -> Any:
            self.deleted.append(gid)

        def iter_webhooks(self, workspace: str, resource: Optional[str] = None) -> Any:
            return iter([existing])

    api = HandshakeThenDuplicate()
    webhook = establish_webhook(api, receiver, "1", existing.target, workspace="9")
    assert webhook.gid == "77"
    assert store.get("/asana/dup") == "old-secret", "our handshake's secret signs nothing"
    assert api.deleted == []
    with pytest.raises(AmbiguousCreateError):
        establish_webhook(api, receiver, "1", existing.target)
    assert store.get("/asana/dup") == "old-secret"


def test_store_calls_from_many_processes_take_turns_without_lock_errors(
    store_spec: dict[str, Any],
) -> None:
    """Item 3 from processes: announce / handshake / withdraw in a loop from 4 processes."""
    context = multiprocessing.get_context("spawn")
    processes_count, rounds = 4, 15
    barrier = context.Barrier(processes_count)
    results = context.Queue()
    spec = {key: value for key, value in store_spec.items() if key != "alias"}
    processes = [
        context.Process(target=take_turns, args=(n, spec, "/asana/turns", rounds, barrier, results))
        for n in range(processes_count)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    errors = [error for _, errs, _ in reports for error in errs]
    assert not errors, f"{len(errors)} store calls failed, first: {errors[:3]}"
    assert sum(mismatches for _, _, mismatches in reports) == 0, "a turn saw another's secret"


def test_a_store_written_for_the_old_protocol_is_refused_clearly() -> None:
    class OldStore:
        def announce(self, target: str, ttl: float = 300.0) -> None: ...

    with pytest.raises(TypeError, match="current_announcement"):
        establish_webhook(object(), OldStore(), "1", "https://example.com/asana/1")  # type: ignore[arg-type]
