"""The reconciler end to end: FakeAsana over real sockets, a real receiver writing to a real
SQLite inbox, real workers, and real reconciler processes killed with SIGKILL.

Each test checks what a team that must not miss an Asana change depends on: the handler ends
with every generated event exactly once, a gap is reported with when it began, a killed
reconciler loses nothing and doubles nothing, and one resource's 429 does not stall the rest.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from inbox_contract import BACKENDS

from asana_webhooks import (
    ApiClient,
    Configuration,
    CreateWebhookRequest,
    Event,
    EventsApi,
    Inbox,
    InvalidSyncTokenError,
    MemorySecretStore,
    Reconciler,
    SQLiteInbox,
    WebhookReceiver,
    WebhookRequest,
    WebhooksApi,
    Worker,
    event_key,
)
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "_reconcile_child.py"
PROCESS_TIMEOUT = 120.0


class Handled:
    """The application's handler: records the key of every event it is given."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.targets: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[Event], target: str) -> None:
        with self._lock:
            self.keys.extend(event_key(event) for event in events)
            self.targets.add(target)

    def assert_exactly(self, expected: set[str]) -> None:
        duplicates = len(self.keys) - len(set(self.keys))
        assert duplicates == 0, f"{duplicates} events reached the handler twice"
        missing = expected - set(self.keys)
        assert not missing, f"{len(missing)} of {len(expected)} events never reached the handler"
        extra = set(self.keys) - expected
        assert not extra, f"{len(extra)} events the stand-in never generated reached the handler"


class Site:
    """A receiver with an SQLite inbox behind a webhook on one project of a running FakeAsana."""

    def __init__(self, fake: FakeAsana, tmp_path: Path, inbox: Optional[Inbox] = None) -> None:
        self.fake = fake
        self.inbox_path = tmp_path / "inbox.sqlite3"  # for the processes: SQLite only
        self.inbox: Inbox = inbox if inbox is not None else SQLiteInbox(self.inbox_path)
        self.client = ApiClient(Configuration(host=fake.url, access_token=fake.access_token))
        self.project = fake.add_resource(resource_type="project", name="Launch")
        self.receiver = WebhookReceiver(
            MemorySecretStore(), inbox=self.inbox, accept_unannounced_handshakes=True
        )
        self.server = ReceiverServer.for_receiver(self.receiver).start()
        self.target = f"{self.server.url}/asana/{self.project}"
        WebhooksApi(self.client).create_webhook(
            CreateWebhookRequest(data=WebhookRequest(resource=self.project, target=self.target))
        )
        self.handled = Handled()
        self.worker = Worker(self.inbox, self.handled, lease=30.0)

    def drain(self) -> None:
        result = self.worker.drain()
        assert result.parked == 0, "the handler never fails here; nothing may be parked"

    def close(self) -> None:
        self.server.stop()
        self.inbox.close()
        self.client.close()


@pytest.fixture(params=BACKENDS)
def any_site(request: pytest.FixtureRequest, fake: FakeAsana, tmp_path: Path) -> Iterator[Site]:
    """A site on each inbox backend: SQLite, Redis, Django on SQLite and on PostgreSQL."""
    factory: Callable[[Path], Iterator[Inbox]] = request.param
    inboxes = factory(tmp_path)
    running = Site(fake, tmp_path, next(inboxes))
    yield running
    running.server.stop()
    running.client.close()
    for _ in inboxes:  # the factory's clean-up
        pass


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana() as running:
        yield running


@pytest.fixture
def site(fake: FakeAsana, tmp_path: Path) -> Iterator[Site]:
    running = Site(fake, tmp_path)
    yield running
    running.close()


def delivered_and_dropped(fake: FakeAsana) -> tuple[int, int]:
    outcomes = [d for d in fake.deliveries if d.kind == "delivery"]
    delivered = sum(d.events for d in outcomes if d.outcome == "delivered")
    dropped = sum(d.events for d in outcomes if d.outcome == "dropped")
    return delivered, dropped


# -- one pass makes the handler whole ------------------------------------------------------


def test_one_pass_recovers_every_dropped_delivery_and_doubles_none(any_site: Site) -> None:
    site = any_site
    reconciler = Reconciler(site.client, site.inbox, [site.project])
    assert reconciler.run_once()[site.project].started
    site.fake.drop_deliveries(fraction=0.2, seed=1515)
    generated = site.fake.generate_traffic(site.project, 500, seed=15)
    expected = {event_key(event) for event in generated}
    assert len(expected) == 500, "the generated events must be 500 different events"
    delivered, dropped = delivered_and_dropped(site.fake)
    assert (delivered + dropped, 60 <= dropped <= 140) == (500, True), (delivered, dropped)

    site.drain()
    assert len(site.handled.keys) == delivered, "webhooks alone bring only what was delivered"

    result = reconciler.run_once()[site.project]
    assert (result.recovered, result.already_known, result.ok) == (dropped, delivered, True)
    site.drain()
    site.handled.assert_exactly(expected)
    assert site.handled.targets == {f"/asana/{site.project}", f"events:{site.project}"}

    again = reconciler.run_once()[site.project]
    assert (again.recovered, again.already_known) == (0, 0), "a second pass finds nothing new"


def test_events_webhooks_deliver_late_are_not_handed_over_twice(site: Site) -> None:
    """The other order: the poll comes first, the webhook delivery (a retry) after."""
    reconciler = Reconciler(site.client, site.inbox, [site.project])
    reconciler.run_once()
    site.fake.take_offline(site.target)
    generated = site.fake.generate_traffic(site.project, 40, seed=7)
    result = reconciler.run_once()[site.project]
    assert result.recovered == 40
    site.drain()
    site.fake.bring_online(site.target)
    retried = site.fake.advance(3600)  # Asana retries with backoff; now they get through
    assert any(d.kind == "retry" and d.outcome == "delivered" for d in retried), retried
    site.drain()
    site.handled.assert_exactly({event_key(event) for event in generated})


# -- a gap longer than the token lifetime ----------------------------------------------------


def test_a_site_down_longer_than_the_token_lifetime_gets_on_gap_with_when_it_began(
    any_site: Site,
) -> None:
    site = any_site
    gaps: list[tuple[str, Optional[dt.datetime]]] = []
    reconciler = Reconciler(
        site.client, site.inbox, [site.project], on_gap=lambda r, s: gaps.append((r, s))
    )
    reconciler.run_once()
    site.fake.generate_traffic(site.project, 10, seed=3)
    before = time.time()
    assert reconciler.run_once()[site.project].ok
    after = time.time()
    last_good = site.inbox.sync_state(site.project)
    assert last_good is not None

    site.fake.take_offline(site.target)  # the whole site is down: receiver and reconciler
    site.fake.generate_traffic(site.project, 30, seed=4)
    site.fake.advance(25 * 3600)
    assert not any(w["target"] == site.target for w in site.fake.webhooks), (
        "Asana deletes a webhook after 24 hours of failures"
    )

    result = reconciler.run_once()[site.project]
    began = dt.datetime.fromtimestamp(last_good.stored_at, tz=dt.timezone.utc)
    assert gaps == [(site.project, began)], "on_gap must get the resource and when it began"
    assert before <= began.timestamp() <= after, "the gap began at the last good pass"
    assert result.gap and result.gap_since == began
    assert site.inbox.stats().gaps == 1
    state = site.inbox.sync_state(site.project)
    assert state is not None and state.token != last_good.token, "the fresh token is stored"

    site.fake.generate_traffic(site.project, 5, seed=5)
    assert reconciler.run_once()[site.project].recovered == 5, "and polling goes on from it"
    assert len(gaps) == 1


# -- killed reconcilers -----------------------------------------------------------------------


def run_cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asana_webhooks", "reconcile", *args],
        env=child_env(site),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
        cwd=ROOT,
    )


def child_env(site: Site) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ASANA_ACCESS_TOKEN=site.fake.access_token, ASANA_HOST=site.fake.url)
    return env


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = PROCESS_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the reconciler exited ({process.returncode}) before the mark")
        if time.monotonic() > deadline:
            raise AssertionError(f"the reconciler did not reach the mark in {timeout}s")
        time.sleep(0.02)


@pytest.mark.parametrize("killed_at_store", [1, 2], ids=["first-answer", "second-answer"])
def test_a_reconciler_killed_between_fetching_and_storing_loses_nothing_and_doubles_nothing(
    site: Site, tmp_path: Path, killed_at_store: int
) -> None:
    started = run_cli(site, "--inbox", str(site.inbox_path), "--resource", site.project, "--once")
    assert started.returncode == 0, started.stderr
    site.fake.drop_deliveries(fraction=0.3, seed=99)
    generated = site.fake.generate_traffic(site.project, 150, seed=9)  # two answers: 100 + 50
    delivered, dropped = delivered_and_dropped(site.fake)
    assert dropped > 0
    token_before = site.inbox.sync_token(site.project)
    stored_before = site.inbox.stats().stored

    mark = tmp_path / "fetched"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(site.inbox_path), site.project, str(mark)],
        env={**child_env(site), "PAUSE_AT_STORE": str(killed_at_store)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_for(mark, child)  # it has the events of an answer in hand and not yet stored
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=PROCESS_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    if killed_at_store == 1:
        assert site.inbox.sync_token(site.project) == token_before, "no token ahead of events"
        assert site.inbox.stats().stored == stored_before
    else:
        assert site.inbox.sync_token(site.project) != token_before, "the first answer was stored"

    restarted = run_cli(site, "--inbox", str(site.inbox_path), "--resource", site.project, "--once")
    assert restarted.returncode == 0, restarted.stderr
    site.drain()
    site.handled.assert_exactly({event_key(event) for event in generated})
    assert site.inbox.stats().stored == delivered + dropped


def test_reconcilers_killed_at_random_moments_lose_nothing_and_double_nothing(
    site: Site,
) -> None:
    rng = random.Random(2026)
    started = run_cli(site, "--inbox", str(site.inbox_path), "--resource", site.project, "--once")
    assert started.returncode == 0, started.stderr
    site.fake.drop_deliveries(fraction=0.25, seed=7)
    generated: list[dict[str, Any]] = []
    killed = 0
    for round_ in range(8):
        generated += site.fake.generate_traffic(site.project, 60, seed=100 + round_)
        process = subprocess.Popen(
            [sys.executable, "-m", "asana_webhooks", "reconcile", "--inbox",
             str(site.inbox_path), "--resource", site.project, "--interval", "1"],
            env=child_env(site),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )  # fmt: skip
        time.sleep(rng.uniform(0.2, 2.0))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed += 1
        process.wait(timeout=PROCESS_TIMEOUT)
        if round_ % 3 == 0:
            site.drain()  # workers run meanwhile, as they would
    assert killed == 8, "every reconciler was still running when killed"
    final = run_cli(site, "--inbox", str(site.inbox_path), "--resource", site.project, "--once")
    assert final.returncode == 0, final.stderr
    site.drain()
    site.handled.assert_exactly({event_key(event) for event in generated})


# -- the Events API on the stand-in -----------------------------------------------------------


def test_tokens_on_the_stand_in(site: Site) -> None:
    api = EventsApi(site.client)
    with pytest.raises(InvalidSyncTokenError) as first:
        api.get_events(site.project)
    start = first.value.sync
    assert start, "the first call without a token gives the starting token"
    generated = site.fake.generate_traffic(site.project, 250, seed=1)
    stream = api.iter_events(site.project, start)
    read = list(stream)
    assert [event_key(e) for e in read] == [event_key(e) for e in generated]
    assert stream.exhausted and stream.sync not in (None, start)
    assert api.get_events(site.project, stream.sync).data == [], "the end token reads nothing"

    site.fake.advance(site.fake.sync_token_lifetime + 1)
    with pytest.raises(InvalidSyncTokenError) as stale:
        api.get_events(site.project, stream.sync)
    assert stale.value.sync and stale.value.sync != stream.sync
    assert "events before this point may be missed" in str(stale.value)
    fresh = api.get_events(site.project, stale.value.sync)
    assert (fresh.data, fresh.has_more) == ([], False), "the fresh token is usable at once"


# -- rate limits ---------------------------------------------------------------------------------


def events_requests(fake: FakeAsana, resource: str) -> list[Any]:
    return [r for r in fake.requests if r.path == "/events" and r.query.get("resource") == resource]


def test_a_429_on_one_resource_is_honoured_while_the_others_are_polled(site: Site) -> None:
    others = [site.fake.add_resource(resource_type="project") for _ in range(2)]
    resources = [site.project, *others]
    reconciler = Reconciler(site.client, site.inbox, resources, interval=0.3)
    reconciler.run_once()
    site.fake.clear_requests()
    site.fake.fail_next(429, retry_after=3, path="/events")  # the next /events: site.project's

    stop = threading.Event()
    thread = threading.Thread(target=reconciler.run, args=(stop,))
    thread.start()
    try:
        time.sleep(2.0)
        during = {r: events_requests(site.fake, r) for r in resources}
        time.sleep(3.0)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()

    limited = events_requests(site.fake, site.project)
    assert limited[0].status == 429
    assert len(during[site.project]) == 1, "no request before Retry-After ran out"
    waited = limited[1].received_at - limited[0].received_at
    assert waited >= 3.0, f"asked again after {waited:.2f}s, Retry-After was 3"
    for other in others:
        assert len(during[other]) >= 3, "the other resources went on meanwhile"
        assert all(r.status == 200 for r in during[other])
