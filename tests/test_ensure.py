"""ensure_webhooks against the stand-in, over real sockets: create, update, repair, prune, race."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    Configuration,
    SQLiteSecretStore,
    WebhookReceiver,
    WebhooksApi,
    ensure_webhooks,
)
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana


class World:
    """The stand-in, a receiver serving every target with a SQLite store, and a client."""

    def __init__(self, fake: FakeAsana, tmp_path: Path) -> None:
        self.fake = fake
        self.store_path = tmp_path / "secrets.sqlite3"
        self.store = SQLiteSecretStore(self.store_path)
        self.server = ReceiverServer.for_receiver(WebhookReceiver(self.store)).start()
        self.client = ApiClient(Configuration(host=fake.url, access_token=fake.access_token))
        self.api = WebhooksApi(self.client)
        self.workspace = fake.workspace_gid

    def entries(self, count: int, **filters: Any) -> list[dict[str, Any]]:
        entries = []
        for index in range(count):
            resource = self.fake.add_resource(f"12000000000{index:05d}", name=f"P{index}")
            entries.append(
                {
                    "workspace": self.workspace,
                    "resource": resource,
                    "target": f"{self.server.url}/asana/webhooks/{resource}",
                    "filters": [{"resource_type": "task", "action": "changed", **filters}],
                }
            )
        return entries

    def close(self) -> None:
        self.server.stop()
        self.client.close()


@pytest.fixture
def world(asana_fake: FakeAsana, tmp_path: Path) -> Iterator[World]:
    world = World(asana_fake, tmp_path)
    yield world
    world.close()


def actions(result: Any) -> list[str]:
    return sorted(change.action for change in result.pending)


def test_twenty_declared_webhooks_are_created_once_and_a_second_run_does_nothing(
    world: World,
) -> None:
    entries = world.entries(20)
    first = ensure_webhooks(world.api, world.store, entries)
    assert actions(first) == ["create"] * 20 and first.ok, first.failed
    assert len(world.fake.webhooks) == 20, "each declared webhook must exist exactly once"
    for entry in entries:
        assert world.store.get(entry["target"]) is not None, "the handshake stored no secret"
    second = ensure_webhooks(world.api, world.store, entries)
    assert second.pending == () and second.ok, f"a second run changed {second.pending}"
    assert len(world.fake.webhooks) == 20


def test_a_changed_filter_is_one_update_and_a_deleted_webhook_one_create(world: World) -> None:
    entries = world.entries(5)
    ensure_webhooks(world.api, world.store, entries)
    entries[1]["filters"] = [{"resource_type": "task", "action": "changed", "fields": ["name"]}]
    gone = next(w for w in world.fake.webhooks if w["target"] == entries[3]["target"])
    world.api.delete_webhook(gone["gid"])

    result = ensure_webhooks(world.api, world.store, entries)
    assert actions(result) == ["create", "update"] and result.ok, result.failed
    updated = next(w for w in world.fake.webhooks if w["target"] == entries[1]["target"])
    sent = [{k: v for k, v in f.items() if v is not None} for f in updated["filters"]]
    assert sent == [{"resource_type": "task", "action": "changed", "fields": ["name"]}], (
        "Asana's PUT replaces the filters: the whole declared list must be sent"
    )
    assert ensure_webhooks(world.api, world.store, entries).pending == ()


def test_a_webhook_whose_secret_is_lost_is_created_again(world: World) -> None:
    entries = world.entries(2)
    ensure_webhooks(world.api, world.store, entries)
    before = {w["target"]: w["gid"] for w in world.fake.webhooks}
    world.store.delete(entries[0]["target"])  # a store restored from an old backup

    repaired: list[tuple[str, Any]] = []
    result = ensure_webhooks(
        world.api, world.store, entries, on_repaired=lambda item, since: repaired.append(
            (item.target, since)
        )
    )  # fmt: skip
    assert [c.reason for c in result.pending] == ["no secret stored for its target"]
    after = {w["target"]: w["gid"] for w in world.fake.webhooks}
    assert after[entries[0]["target"]] != before[entries[0]["target"]], "not re-created"
    assert after[entries[1]["target"]] == before[entries[1]["target"]], "a good one was touched"
    assert world.store.get(entries[0]["target"]) is not None
    assert [target for target, _ in repaired] == [entries[0]["target"]]


def test_dry_run_plans_without_changing_anything(world: World) -> None:
    entries = world.entries(3)
    result = ensure_webhooks(world.api, world.store, entries, dry_run=True)
    assert actions(result) == ["create"] * 3
    assert not result.ok, "a dry run with work to do must not report that all matches"
    assert world.fake.webhooks == [], "a dry run created webhooks"


def test_prune_deletes_only_undeclared_webhooks_on_the_declared_hosts(world: World) -> None:
    entries = world.entries(3)
    ensure_webhooks(world.api, world.store, entries)
    stray = world.fake.add_resource("1200000000099999")
    world.fake.add_webhook(stray, f"{world.server.url}/asana/webhooks/old")
    elsewhere = world.fake.add_webhook(stray, "https://other.example/asana/webhooks/x")

    without_prune = ensure_webhooks(world.api, world.store, entries)
    assert without_prune.pending == (), "without prune nothing undeclared may be deleted"
    result = ensure_webhooks(world.api, world.store, entries, prune=True)
    assert [(c.action, c.target) for c in result.pending] == [
        ("delete", f"{world.server.url}/asana/webhooks/old")
    ]
    gids = {w["gid"] for w in world.fake.webhooks}
    assert elsewhere["gid"] in gids, "prune touched a webhook on another host"
    assert len(gids) == 4


def test_a_bad_declaration_makes_no_request(world: World) -> None:
    from asana_webhooks import DeclarationError

    world.fake.clear_requests()
    bad = [{"workspace": world.workspace, "resource": "1", "target": "http://example.com/x"}]
    with pytest.raises(DeclarationError, match="webhook 1, target"):
        ensure_webhooks(world.api, world.store, bad)
    assert world.fake.requests == [], "a refused file must not reach Asana"


def test_a_run_that_lost_its_lock_changes_nothing_more(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asana_webhooks._ensure as ensure_module

    entries = world.entries(2)
    # A lock that lapses at once stands for a step that outlived the ttl: by the first step,
    # another run may hold the lock, so this one must stop changing things.
    monkeypatch.setattr(ensure_module, "DEFAULT_LOCK_TTL", 0.001)
    result = ensure_webhooks(world.api, world.store, entries)
    assert [c.done for c in result.changes] == [False, False], result
    assert all("lost the store's lock" in (c.error or "") for c in result.changes)
    assert world.fake.webhooks == [], "a run without the lock created webhooks"


def test_a_long_run_renews_its_lock_so_no_other_run_gets_in(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asana_webhooks._ensure as ensure_module

    monkeypatch.setattr(ensure_module, "DEFAULT_LOCK_TTL", 1.5)
    entries = world.entries(3)
    seen: list[Any] = []
    original = world.store.renew_lock

    def renew(name: str, token: str, ttl: float) -> bool:
        renewed = original(name, token, ttl)
        seen.append((renewed, world.store.acquire_lock(name, 60)))
        return renewed

    monkeypatch.setattr(world.store, "renew_lock", renew)
    slow = ensure_module._carry_out

    def carry_out(*args: Any) -> Any:
        time.sleep(0.6)  # each step takes over a third of the ttl
        return slow(*args)

    monkeypatch.setattr(ensure_module, "_carry_out", carry_out)
    result = ensure_webhooks(world.api, world.store, entries)
    assert result.ok, result.failed
    assert seen and all(renewed and other is None for renewed, other in seen), seen


def test_a_deleted_webhook_is_handed_over_with_when_its_target_last_heard_from_asana(
    world: World,
) -> None:
    entries = world.entries(3)
    ensure_webhooks(world.api, world.store, entries)
    heard, never, _ = entries
    world.store.record_contact(heard["target"], heartbeat=True, at=1_700_000_000.0)
    world.store.record_contact(heard["target"], heartbeat=False, at=1_700_000_060.0)
    for entry in (heard, never):
        gone = next(w for w in world.fake.webhooks if w["target"] == entry["target"])
        world.api.delete_webhook(gone["gid"])  # as Asana does after 24 hours of failures

    repaired: list[tuple[str, Any]] = []
    result = ensure_webhooks(
        world.api, world.store, entries,
        on_repaired=lambda item, since: repaired.append((item.target, since)),
    )  # fmt: skip

    assert actions(result) == ["create", "create"] and result.ok, result.failed
    assert sorted(repaired) == sorted(
        [(heard["target"], 1_700_000_060.0), (never["target"], None)]
    ), "the window starts at the last heartbeat or delivery; unknown when none was recorded"
