"""End to end over real sockets: FakeAsana -> a load balancer -> two Flask servers.

Two Flask apps, each with its own ``WebhookReceiver``, run on their own werkzeug servers
and share one ``SQLiteSecretStore`` file, as two workers of one site would. The handshake
reaches one of them (through ``establish_webhook`` and the real client); deliveries reach
both, and both verify them with the secret the other stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from _e2e_servers import EventsRecorder, RoundRobinProxy, werkzeug_server

from asana_webhooks import (
    ApiClient,
    Configuration,
    Event,
    SQLiteSecretStore,
    WebhookFilter,
    WebhookReceiver,
    WebhooksApi,
    establish_webhook,
    sign_body,
)
from asana_webhooks.testing import FakeAsana, make_event

pytestmark = pytest.mark.timeout(60)

flask = pytest.importorskip("flask")
from asana_webhooks.contrib.flask import webhook_blueprint  # noqa: E402


def flask_app(receiver: WebhookReceiver) -> flask.Flask:
    app = flask.Flask(f"e2e-{id(receiver)}")
    app.register_blueprint(webhook_blueprint(receiver, "/asana/webhooks"))
    return app


class Site:
    """Two Flask servers behind a round-robin proxy, over one SQLite secret file."""

    def __init__(self, secrets: Path, stack: contextlib.ExitStack) -> None:
        self.store = SQLiteSecretStore(secrets)
        self.recorders = [EventsRecorder("first"), EventsRecorder("second")]
        self.receivers = [
            WebhookReceiver(SQLiteSecretStore(secrets), rec, on_handshake=rec.on_handshake)
            for rec in self.recorders
        ]
        urls = [stack.enter_context(werkzeug_server(flask_app(r))) for r in self.receivers]
        self.proxy = stack.enter_context(RoundRobinProxy(urls))

    def target(self, name: str) -> str:
        return f"{self.proxy.url}/asana/webhooks/{name}"

    @property
    def calls(self) -> list[tuple[list[Event], str]]:
        return [call for recorder in self.recorders for call in recorder.calls]


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana(handshake_timeout=10.0, delivery_timeout=10.0) as running:
        yield running


@pytest.fixture
def api(fake: FakeAsana) -> Iterator[WebhooksApi]:
    configuration = Configuration(host=fake.url, access_token=fake.access_token, timeout=15.0)
    with ApiClient(configuration) as client:
        yield WebhooksApi(client)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with contextlib.ExitStack() as stack:
        yield Site(tmp_path / "secrets.sqlite3", stack)


def test_a_handshake_on_one_server_lets_the_other_verify_deliveries(
    fake: FakeAsana, api: WebhooksApi, site: Site
) -> None:
    project = fake.add_resource(name="Launch", resource_type="project")
    target = site.target(f"projects/{project}?team=a")
    filters = [WebhookFilter(resource_type="task", action="changed", fields=["name"])]

    webhook = establish_webhook(api, site.store, project, target, filters)

    assert site.proxy.backends_for("handshake") == [0], "the handshake went to the first server"
    assert site.recorders[0].handshakes == [f"/asana/webhooks/projects/{project}?team=a"]
    assert site.recorders[1].handshakes == [], "the second server must not see a handshake"
    assert site.store.get(target) == fake.secret_for(webhook.gid), (
        "the shared store holds the secret FakeAsana signs with"
    )

    task = "1209000000000001"
    first = [make_event("changed", task, field="name"), make_event("added", task, parent=project)]
    second = [make_event("deleted", task)]
    assert fake.deliver(webhook.gid, first) == 200
    assert fake.deliver(webhook.gid, second) == 200

    assert site.proxy.backends_for("delivery") == [1, 0], "deliveries alternate between servers"
    assert [len(events) for events, _ in site.recorders[1].calls] == [2], (
        "the second server verified the first delivery with the first server's secret"
    )
    assert [len(events) for events, _ in site.recorders[0].calls] == [1]
    received = site.recorders[1].calls[0][0] + site.recorders[0].calls[0][0]
    assert all(isinstance(event, Event) for event in received)
    assert [(e.action, e.resource and e.resource.gid) for e in received] == [
        ("changed", task),
        ("added", task),
        ("deleted", task),
    ]
    assert received[0].change is not None and received[0].change.field == "name"
    assert received[1].parent is not None and received[1].parent.gid == project
    assert {target for _, target in site.calls} == {f"/asana/webhooks/projects/{project}?team=a"}

    state = fake.get_webhook(webhook.gid)
    assert state is not None
    assert state["last_success_at"] is not None, "FakeAsana recorded the successful deliveries"
    assert state["last_failure_at"] is None
    assert state["delivery_retry_count"] == 0


def test_heartbeats_pass_on_both_servers_without_calling_on_events(
    fake: FakeAsana, api: WebhooksApi, site: Site
) -> None:
    webhook = establish_webhook(api, site.store, "1209000000000002", site.target("t/2"))

    assert [fake.heartbeat(webhook.gid) for _ in range(4)] == [200, 200, 200, 200]

    assert sorted(set(site.proxy.backends_for("delivery"))) == [0, 1]
    assert site.calls == [], "a heartbeat carries no events: on_events must not be called"
    state = fake.get_webhook(webhook.gid)
    assert state is not None and state["last_success_at"] is not None


def test_tampered_deliveries_are_refused_on_both_servers_and_asana_records_it(
    fake: FakeAsana, api: WebhooksApi, site: Site
) -> None:
    webhook = establish_webhook(api, site.store, "1209000000000003", site.target("t/3"))
    secret = fake.secret_for(webhook.gid)
    event = make_event("changed", "1209000000000004")

    forged = "0" * 64
    wrong_key = sign_body(b'{"events":[]}', "f" * 64)
    statuses = [
        fake.deliver(webhook.gid, [event], signature=forged),
        fake.deliver(webhook.gid, [event], signature=wrong_key),
        fake.deliver(webhook.gid, [event], signature=""),  # no signature at all
    ]

    assert statuses == [401, 401, 401], "forged, wrongly keyed and unsigned deliveries are 401"
    assert sorted(set(site.proxy.backends_for("delivery"))) == [0, 1]
    assert site.calls == [], "a refused delivery must never reach on_events"
    state = fake.get_webhook(webhook.gid)
    assert state is not None
    assert state["delivery_retry_count"] == 3
    assert state["last_failure_content"].startswith("401"), state["last_failure_content"]
    assert state["failure_deletion_timestamp"] is not None
    assert secret not in state["last_failure_content"]

    assert fake.deliver(webhook.gid, [event]) == 200, "a properly signed delivery still passes"
    assert len(site.calls) == 1, "the good delivery reached on_events exactly once"
    state = fake.get_webhook(webhook.gid)
    assert state is not None
    assert state["delivery_retry_count"] == 0, "a success ends the failure streak"
    assert state["failure_deletion_timestamp"] is None


def test_a_handshake_for_an_unannounced_target_is_refused_on_either_server(
    fake: FakeAsana, api: WebhooksApi, site: Site
) -> None:
    from asana_webhooks import CreateWebhookRequest, WebhookRequest
    from asana_webhooks._errors import BadRequestError

    request = CreateWebhookRequest(
        data=WebhookRequest(resource="1209000000000005", target=site.target("stranger"))
    )
    with pytest.raises(BadRequestError, match="handshake"):
        api.create_webhook(request)

    assert fake.webhooks == [], "FakeAsana keeps no webhook whose handshake failed"
    assert site.store.get(site.target("stranger")) is None, "nothing was stored"
