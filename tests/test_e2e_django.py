"""End to end over real sockets: FakeAsana -> a load balancer -> two servers of one Django site.

``get_wsgi_application()`` is served by two threaded ``wsgiref`` servers on their own ports,
like two workers of one site, routing ``asana/<path:rest>`` to ``webhook_view(receiver)``.
The secret store is shared: the site's database (``DjangoSecretStore``) or one SQLite file.
Django is configured once per test process by ``receiving_django`` (as the adapter tests do);
this module only swaps the URLconf in for its own tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

from _e2e_servers import EventsRecorder, RoundRobinProxy
from receiving_django import ensure_django, urlconf

from asana_webhooks import (
    ApiClient,
    Configuration,
    Event,
    SecretStore,
    SQLiteSecretStore,
    WebhookFilter,
    WebhookReceiver,
    WebhooksApi,
    establish_webhook,
)
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana, make_event

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def django_configured() -> None:
    ensure_django()


@pytest.fixture(params=["django-orm", "sqlite-file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretStore]:
    if request.param == "sqlite-file":
        yield SQLiteSecretStore(tmp_path / "secrets.sqlite3")
        return
    from asana_webhooks.contrib.django import DjangoSecretStore
    from asana_webhooks.contrib.django.models import WebhookAnnouncement, WebhookSecret

    yield DjangoSecretStore()
    WebhookSecret.objects.all().delete()
    WebhookAnnouncement.objects.all().delete()


class Site:
    """One Django site served by two wsgiref servers behind a round-robin proxy."""

    def __init__(self, store: SecretStore, stack: contextlib.ExitStack) -> None:
        from django.core.wsgi import get_wsgi_application
        from django.test import override_settings
        from django.urls import path

        from asana_webhooks.contrib.django import webhook_view

        self.store = store
        self.recorder = EventsRecorder("django")
        receiver = WebhookReceiver(store, self.recorder, on_handshake=self.recorder.on_handshake)
        urls = urlconf(path("asana/<path:rest>", webhook_view(receiver)))
        # Settings are process-wide: the server threads see this URLconf while it is enabled.
        stack.enter_context(override_settings(ROOT_URLCONF=urls))
        application: Any = get_wsgi_application()
        servers = [stack.enter_context(ReceiverServer(application)) for _ in range(2)]
        self.proxy = stack.enter_context(RoundRobinProxy([server.url for server in servers]))

    def target(self, name: str) -> str:
        return f"{self.proxy.url}/asana/{name}"


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
def site(store: SecretStore) -> Iterator[Site]:
    with contextlib.ExitStack() as stack:
        yield Site(store, stack)


def test_django_receives_the_handshake_and_verified_deliveries_on_both_servers(
    fake: FakeAsana, api: WebhooksApi, site: Site
) -> None:
    project = fake.add_resource(name="Roadmap", resource_type="project")
    target = site.target(f"projects/{project}?env=prod")
    filters = [WebhookFilter(resource_type="task", action="added")]

    webhook = establish_webhook(api, site.store, project, target, filters)

    assert site.proxy.backends_for("handshake") == [0]
    assert site.recorder.handshakes == [f"/asana/projects/{project}?env=prod"]
    assert site.store.get(target) == fake.secret_for(webhook.gid)

    task = "1209000000000011"
    deliveries = [
        [make_event("added", task, parent=project)],
        [make_event("changed", task, field="due_on"), make_event("removed", task, parent=project)],
    ]
    statuses = [fake.deliver(webhook.gid, events) for events in deliveries]

    assert statuses == [200, 200]
    assert site.proxy.backends_for("delivery") == [1, 0], "each server verified one delivery"
    assert [len(events) for events, _ in site.recorder.calls] == [1, 2], (
        "on_events is called exactly once per delivery, with all of its events"
    )
    received = site.recorder.events
    assert all(isinstance(event, Event) for event in received)
    assert [event.action for event in received] == ["added", "changed", "removed"]
    assert received[1].change is not None and received[1].change.field == "due_on"
    assert {target for _, target in site.recorder.calls} == {f"/asana/projects/{project}?env=prod"}
    state = fake.get_webhook(webhook.gid)
    assert state is not None
    assert state["last_success_at"] is not None and state["delivery_retry_count"] == 0


def test_django_refuses_tampered_deliveries_and_passes_heartbeats(
    fake: FakeAsana, api: WebhooksApi, site: Site
) -> None:
    webhook = establish_webhook(api, site.store, "1209000000000012", site.target("tasks/12"))
    event = make_event("deleted", "1209000000000012")

    tampered = [fake.deliver(webhook.gid, [event], signature="ab" * 32) for _ in range(2)]
    assert tampered == [401, 401], "a wrong X-Hook-Signature is refused on both servers"
    assert site.recorder.calls == []
    state = fake.get_webhook(webhook.gid)
    assert state is not None
    assert state["last_failure_at"] is not None and state["delivery_retry_count"] == 2

    heartbeats = [fake.heartbeat(webhook.gid) for _ in range(2)]
    assert heartbeats == [200, 200]
    assert site.recorder.calls == [], "heartbeats must not call on_events"
    assert sorted(set(site.proxy.backends_for("delivery"))) == [0, 1]
    state = fake.get_webhook(webhook.gid)
    assert state is not None
    assert state["delivery_retry_count"] == 0 and state["failure_deletion_timestamp"] is None
