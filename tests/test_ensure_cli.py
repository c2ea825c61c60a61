"""``asana-webhooks ensure`` and ``health`` as real processes against the stand-in (issue #16).

FakeAsana runs in this process over a real socket; a real receiver (SQLite secret store and
SQLite inbox) serves every target; each command is a real ``asana-webhooks`` subprocess that
opens the same SQLite files, as a cron job beside a web server would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest
from _cli_helpers import COMMAND, Process, Result, run_process

from asana_webhooks import (
    Event,
    SQLiteInbox,
    SQLiteSecretStore,
    WebhookReceiver,
    Worker,
    event_key,
)
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana

HOUR = 3600.0
TIMEOUT = 180.0  # generous: the machine is shared; nothing here is about speed


class Site:
    """The stand-in, a receiver over SQLite files, and a declared-webhooks file."""

    def __init__(self, fake: FakeAsana, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.secrets = tmp_path / "secrets.sqlite3"
        self.inbox_path = tmp_path / "inbox.sqlite3"
        self.store = SQLiteSecretStore(self.secrets)
        self.inbox = SQLiteInbox(self.inbox_path)
        self.server = ReceiverServer.for_receiver(
            WebhookReceiver(self.store, inbox=self.inbox)
        ).start()
        self.file = tmp_path / "webhooks.toml"
        self.env = {**os.environ, "ASANA_HOST": fake.url, "ASANA_ACCESS_TOKEN": fake.access_token}
        self.entries: list[dict[str, Any]] = []

    def declare(self, count: int, filters: Optional[str] = None) -> list[dict[str, Any]]:
        if filters is None:
            filters = '[{ resource_type = "task", action = "changed", fields = ["name"] }]'
        for index in range(count):
            resource = self.fake.add_resource(f"14000000000{index:05d}", name=f"P{index}")
            target = f"{self.server.url}/asana/webhooks/{resource}"
            self.entries.append({"resource": resource, "target": target, "filters": filters})
        self.write()
        return self.entries

    def write(self, extra: str = "") -> None:
        tables = [
            f'[[webhook]]\nworkspace = "{self.fake.workspace_gid}"\nresource = '
            f'"{entry["resource"]}"\ntarget = "{entry["target"]}"\nfilters = {entry["filters"]}\n'
            for entry in self.entries
        ]
        self.file.write_text("\n".join(tables) + extra)

    def run(self, *args: str) -> Result:
        return run_process(list(args), self.env, timeout=TIMEOUT, cwd=self.tmp_path)

    def ensure(self, *args: str) -> Result:
        return self.run("ensure", str(self.file), "--secrets", str(self.secrets), *args)

    def webhooks_by_target(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for webhook in self.fake.webhooks:
            found.setdefault(webhook["target"], []).append(webhook["gid"])
        return found

    def close(self) -> None:
        self.server.stop()
        self.inbox.close()


@pytest.fixture
def site(asana_fake: FakeAsana, tmp_path: Path) -> Iterator[Site]:
    site = Site(asana_fake, tmp_path)
    yield site
    site.close()


def changes(result: Result) -> list[tuple[str, str]]:
    report = json.loads(result.out)
    return sorted((c["action"], c["reason"]) for c in report["changes"] if c["action"] != "keep")


def test_twenty_declared_are_created_and_a_second_run_does_nothing(site: Site) -> None:
    entries = site.declare(20)

    first = site.ensure()
    second = site.ensure("--json")

    assert first.status == 0, first
    assert first.out.count("create") >= 20, first.out
    assert {t: len(g) for t, g in site.webhooks_by_target().items()} == {
        e["target"]: 1 for e in entries
    }, "each declared webhook must exist exactly once"
    assert all(site.store.get(e["target"]) for e in entries), "a handshake stored no secret"
    assert second.status == 0, second
    assert changes(second) == [], f"a second run changed something: {second.out}"
    assert json.loads(second.out)["ok"] is True


def test_a_changed_filter_is_one_update_and_a_deleted_webhook_one_create(site: Site) -> None:
    entries = site.declare(5)
    assert site.ensure().status == 0
    entries[1]["filters"] = '[{ resource_type = "task", action = "added" }]'
    site.write()
    gone = site.webhooks_by_target()[entries[3]["target"]][0]
    site.fake.clear_requests()
    assert site.run("delete", gone).status == 0  # behind ensure's back

    result = site.ensure("--json")

    assert result.status == 0, result
    assert changes(result) == [("create", "missing"), ("update", "filters differ")]
    updated = site.webhooks_by_target()[entries[1]["target"]][0]
    [record] = [w for w in site.fake.webhooks if w["gid"] == updated]
    assert [(f["resource_type"], f["action"]) for f in record["filters"]] == [("task", "added")]
    assert len(site.fake.webhooks) == 5
    assert changes(site.ensure("--json")) == []


def test_two_ensure_processes_started_together_make_each_webhook_once(site: Site) -> None:
    entries = site.declare(20)
    args = [*COMMAND, "ensure", str(site.file), "--secrets", str(site.secrets), "--json"]
    processes = [
        subprocess.Popen(
            args, env=site.env, cwd=site.tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=TIMEOUT) for process in processes]

    statuses = [process.returncode for process in processes]
    assert statuses == [0, 0], f"both runs must succeed: {statuses} {outputs}"
    counts = {target: len(gids) for target, gids in site.webhooks_by_target().items()}
    assert counts == {e["target"]: 1 for e in entries}, f"duplicates or gaps: {counts}"
    made = [sum(c["action"] == "create" for c in json.loads(out)["changes"]) for out, _ in outputs]
    assert sorted(made) == [0, 20], f"the runs did not take turns: creates per run {made}"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (
            '[[webhook]]\nworkspace = "{w}"\nresource = "1400000000000001"\n'
            'target = "{t}"\nfilters = [{{ resource_type = "task", action = "changd" }}]\n',
            "webhook 2, filters[1]",
        ),
        (
            '[[webhook]]\nworkspace = "{w}"\nresource = "1400000000000001"\ntarget = "{t0}"\n',
            "webhook 2, target",
        ),
        (
            '[[webhook]]\nworkspace = "{w}"\nresource = "1400000000000001"\n'
            'target = "{t}"\nfiltres = []\n',
            "webhook 2, filtres",
        ),
    ],
    ids=["bad-filter", "duplicate-target", "unknown-key"],
)
def test_a_bad_file_is_refused_naming_entry_and_field_before_any_request(
    site: Site, extra: str, named: str
) -> None:
    [entry] = site.declare(1)
    site.write(
        "\n"
        + extra.format(
            w=site.fake.workspace_gid, t=f"{site.server.url}/asana/other", t0=entry["target"]
        )
    )
    site.fake.clear_requests()

    for result in (site.ensure(), site.run("health", str(site.file))):
        assert result.status == 2, result
        assert "Traceback" not in result.err, result
        assert result.err.count("\n") == 1 and named in result.err, result
    assert site.fake.requests == [], "a refused file must not reach Asana"
    assert site.fake.webhooks == []


def test_health_and_ensure_exit_codes_as_documented(site: Site) -> None:
    site.declare(2)
    missing = site.run("health", str(site.file), "--secrets", str(site.secrets))
    dry = site.ensure("--dry-run")
    assert (missing.status, dry.status) == (3, 3), (missing, dry)
    assert "2 of 2 webhooks need attention" in missing.out
    assert site.fake.webhooks == [], "--dry-run created webhooks"
    assert site.ensure().status == 0
    well = site.run("health", str(site.file), "--secrets", str(site.secrets))
    workspace = site.run("health", "--workspace", site.fake.workspace_gid, "--json")
    assert well.status == 0, well
    assert well.out == "all 2 webhooks are ok\n"
    assert workspace.status == 0, workspace
    assert {r["state"] for r in json.loads(workspace.out)} == set()  # only those needing care


def handled_keys(inbox: SQLiteInbox) -> list[str]:
    keys: list[str] = []

    def handler(events: Sequence[Event], target: str) -> None:
        keys.extend(event_key(event) for event in events)

    Worker(inbox, handler).drain()
    return keys


def test_a_webhook_deleted_after_a_25_hour_outage_is_reported_recreated_and_its_events_recovered(
    site: Site,
) -> None:
    """The honest set-up: a reconciler watches the resource, as the guide tells users to.

    The stand-in keeps events 24 hours and a sync token expires after 24 hours, as Asana
    does; a token from before a 25-hour outage is refused (a gap). A real deployment polls
    the Events API every few minutes, so here ``reconcile --once`` runs every 5 hours of the
    stand-in's clock while the target is offline. The last events of the outage come after
    the last poll: only ``ensure --inbox`` can bring those back, and it must.
    """
    [entry] = site.declare(1, filters="[]")
    resource, target = entry["resource"], entry["target"]
    assert site.ensure().status == 0
    reconcile = ["reconcile", "--inbox", str(site.inbox_path), "--resource", resource, "--once"]
    assert site.run(*reconcile).status == 0  # the first pass takes the starting token
    generated = list(site.fake.generate_traffic(resource, 5, seed=1))  # delivered
    assert site.store.last_contact(target).last_delivery is not None, "receiver's record"

    site.fake.take_offline(target)
    for step in range(5):
        generated += site.fake.generate_traffic(resource, 4, seed=10 + step)
        site.fake.advance(5 * HOUR)
        if step < 4:
            assert site.run(*reconcile).status == 0
    assert site.fake.webhooks == [], "Asana deletes a webhook after 24 hours of failures"
    # After the last poll; deliveries to the deleted webhook never happen.
    generated += site.fake.generate_traffic(resource, 3, seed=99)

    health = site.run("health", str(site.file), "--secrets", str(site.secrets))
    assert health.status == 3, health
    assert f"{resource} (missing)" in health.out and target in health.out, health.out

    site.fake.bring_online(target)
    repaired = site.ensure("--inbox", str(site.inbox_path), "--json")
    assert repaired.status == 0, repaired
    report = json.loads(repaired.out)
    assert [(c["action"], c["reason"]) for c in report["changes"]] == [("create", "missing")]
    [recovered] = report["recovered"]
    assert recovered["resource"] == resource and not recovered["gap"], recovered
    assert recovered["recovered"] >= 3, f"the events after the last poll: {recovered}"
    assert len(site.webhooks_by_target()[target]) == 1

    # Every event generated, the oldest of which the stand-in has forgotten by now (24 h).
    expected = {event_key(event) for event in generated}
    assert len(expected) == 5 + 5 * 4 + 3
    keys = handled_keys(site.inbox)
    assert len(keys) == len(set(keys)), "an event reached the handler twice"
    assert set(keys) == expected, (
        f"{len(expected - set(keys))} events of the outage never reached the handler"
    )
    assert site.run("health", str(site.file), "--secrets", str(site.secrets)).status == 0


def test_without_a_poll_inside_the_token_lifetime_the_window_is_a_gap(site: Site) -> None:
    """The same outage with nobody polling: ensure re-creates the webhook and says, exit 3,
    that the window cannot be recovered (the token is too old), rather than pretend."""
    [entry] = site.declare(1, filters="[]")
    resource, target = entry["resource"], entry["target"]
    assert site.ensure().status == 0
    reconcile = ["reconcile", "--inbox", str(site.inbox_path), "--resource", resource, "--once"]
    assert site.run(*reconcile).status == 0
    site.fake.generate_traffic(resource, 2, seed=1)
    site.fake.take_offline(target)
    site.fake.generate_traffic(resource, 2, seed=2)
    site.fake.advance(25 * HOUR)
    site.fake.bring_online(target)

    repaired = site.ensure("--inbox", str(site.inbox_path), "--json")

    assert repaired.status == 3, repaired
    [recovered] = json.loads(repaired.out)["recovered"]
    assert recovered["gap"] is True, recovered
    assert len(site.webhooks_by_target()[target]) == 1, "the webhook is re-created regardless"


def test_serve_watch_serves_the_count_per_state_at_metrics(site: Site) -> None:
    """A receiver started with --watch judges the file and /metrics shows the gauges."""
    entries = site.declare(3)
    assert site.ensure().status == 0
    gone = site.webhooks_by_target()[entries[0]["target"]][0]
    assert site.run("delete", gone).status == 0
    serve_args = ["serve", "--port", "0", "--secrets", str(site.secrets)]
    receiver = Process([*serve_args, "--watch", str(site.file)], site.env, cwd=site.tmp_path)
    try:
        url = receiver.wait_for(r"listening on (http://127\.0\.0\.1:\d+)", timeout=60).group(1)
        receiver.wait_for(r"health: 2 ok, 1 need attention", timeout=60)
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:  # noqa: S310
            text = answer.read().decode()
        assert 'asana_webhooks_webhooks{state="ok"} 2.0' in text, text
        assert 'asana_webhooks_webhooks{state="missing"} 1.0' in text, text
        assert 'asana_webhooks_webhooks{state="failing"} 0.0' in text, text
        assert receiver.stop(signal.SIGTERM, 30) == 0
    finally:
        receiver.kill()
