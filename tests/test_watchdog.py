"""The receiver's record of contact, and webhook_health's judgement, over real sockets."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    Configuration,
    HealthMetrics,
    SQLiteSecretStore,
    WebhookReceiver,
    WebhooksApi,
    ensure_webhooks,
    parse_declared,
    webhook_health,
)
from asana_webhooks._metrics import prometheus_text
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana


class CountingStore(SQLiteSecretStore):
    """A real SQLite store that counts the receiver's records (and can be made to fail them)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.records: list[bool] = []
        self.fail = False
        self._count_lock = threading.Lock()

    def record_contact(self, target: str, *, heartbeat: bool, at: float) -> None:
        with self._count_lock:
            self.records.append(heartbeat)
        if self.fail:
            raise OSError("disk full")
        super().record_contact(target, heartbeat=heartbeat, at=at)


class Site:
    def __init__(self, fake: FakeAsana, tmp_path: Path, **receiver: Any) -> None:
        self.fake = fake
        self.store = CountingStore(tmp_path / "secrets.sqlite3")
        self.receiver = WebhookReceiver(self.store, **receiver)
        self.server = ReceiverServer.for_receiver(self.receiver).start()
        self.client = ApiClient(Configuration(host=fake.url, access_token=fake.access_token))
        self.api = WebhooksApi(self.client)

    def declare(self, count: int) -> list[dict[str, Any]]:
        entries = []
        for index in range(count):
            resource = self.fake.add_resource(f"13000000000{index:05d}", name=f"P{index}")
            entries.append(
                {
                    "workspace": self.fake.workspace_gid,
                    "resource": resource,
                    "target": f"{self.server.url}/asana/webhooks/{resource}",
                    "filters": [{"resource_type": "task", "action": "changed"}],
                }
            )
        assert ensure_webhooks(self.api, self.store, entries).ok
        return entries

    def gid(self, target: str) -> str:
        return next(w["gid"] for w in self.fake.webhooks if w["target"] == target)

    def close(self) -> None:
        self.server.stop()
        self.client.close()


@pytest.fixture
def site(asana_fake: FakeAsana, tmp_path: Path) -> Iterator[Site]:
    site = Site(asana_fake, tmp_path)
    yield site
    site.close()


def test_every_heartbeat_is_recorded(site: Site) -> None:
    [entry] = site.declare(1)
    gid = site.gid(entry["target"])
    before = time.time()
    assert site.fake.heartbeat(gid) == 200
    first = site.store.last_contact(entry["target"]).last_heartbeat
    assert first is not None and before <= first <= time.time(), "the heartbeat was not recorded"
    assert site.fake.heartbeat(gid) == 200
    assert site.store.records == [True, True], "each heartbeat must be written"
    assert site.store.last_contact(entry["target"]).last_heartbeat >= first


def test_deliveries_are_recorded_at_most_once_a_minute_per_target(site: Site) -> None:
    one, two = site.declare(2)
    for _ in range(5):
        assert site.fake.deliver(site.gid(one["target"]), [site.fake.make_event()]) == 200
    assert site.fake.deliver(site.gid(two["target"]), [site.fake.make_event()]) == 200
    assert site.store.records == [False, False], "deliveries must be throttled per target"
    assert site.store.last_contact(one["target"]).last_delivery is not None
    assert site.store.last_contact(two["target"]).last_delivery is not None


def test_a_failing_record_is_logged_and_the_delivery_still_answered_200(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    [entry] = site.declare(1)
    site.store.fail = True
    with caplog.at_level(logging.ERROR, logger="asana_webhooks"):
        assert site.fake.heartbeat(site.gid(entry["target"])) == 200
        assert site.fake.deliver(site.gid(entry["target"]), [site.fake.make_event()]) == 200
    assert "Could not record the heartbeat" in caplog.text
    assert "Could not record the delivery" in caplog.text
    site.store.fail = False
    assert site.fake.deliver(site.gid(entry["target"]), [site.fake.make_event()]) == 200
    assert site.store.last_contact(entry["target"]).last_delivery is not None, (
        "a failed record must be tried again at the next delivery, not after a minute"
    )


def test_health_states_from_asana_and_the_receivers_record(site: Site) -> None:
    entries = site.declare(5)
    ok, failing, silent, drifted, missing = entries
    site.fake.heartbeat(site.gid(ok["target"]))
    site.fake.take_offline(failing["target"])
    assert site.fake.deliver(site.gid(failing["target"]), [site.fake.make_event()]) != 200
    site.api.delete_webhook(site.gid(missing["target"]))
    declared = parse_declared(entries)
    declared[3] = parse_declared(
        [{**drifted, "filters": [{"resource_type": "task", "action": "added"}]}]
    )[0]
    # The silent one heard nothing for 10 hours (the receiver's record says so).
    site.store.record_contact(silent["target"], heartbeat=True, at=time.time() - 10 * 3600)
    for entry in (ok, failing, drifted):
        site.store.record_contact(entry["target"], heartbeat=True, at=time.time())

    metrics = HealthMetrics()
    told: list[str] = []
    results = webhook_health(
        site.api, site.store, declared, metrics=metrics, on_unhealthy=lambda h: told.append(h.state)
    )

    states = {h.target: h.state for h in results}
    assert states == {
        ok["target"]: "ok",
        failing["target"]: "failing",
        silent["target"]: "silent",
        drifted["target"]: "drifted",
        missing["target"]: "missing",
    }, results
    by_target = {h.target: h for h in results}
    assert by_target[failing["target"]].deletion_at is not None, "when Asana deletes it"
    assert "Asana deletes it at" in by_target[failing["target"]].detail
    assert sorted(told) == ["drifted", "failing", "missing", "silent"]
    text = prometheus_text(health=metrics).decode()
    for state in ("ok", "failing", "silent", "missing", "drifted"):
        assert f'asana_webhooks_webhooks{{state="{state}"}} 1.0' in text, text
    assert "asana_webhooks_health_checked_timestamp_seconds" in text


def test_no_health_gauges_before_the_first_run() -> None:
    assert b"asana_webhooks_webhooks" not in prometheus_text(health=HealthMetrics())


def test_a_silence_margin_is_respected(site: Site) -> None:
    [entry] = site.declare(1)
    site.store.record_contact(entry["target"], heartbeat=True, at=time.time() - 8.5 * 3600)
    declared = parse_declared([entry])
    [within] = webhook_health(site.api, site.store, declared)
    [beyond] = webhook_health(site.api, site.store, declared, silence_margin=dt.timedelta(0))
    assert (within.state, beyond.state) == ("ok", "silent")
