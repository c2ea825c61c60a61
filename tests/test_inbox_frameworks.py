"""Flask and Django take the inbox through the receiver: events stored, the answer at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from _e2e_servers import werkzeug_server
from _inbox_helpers import SECRET, body_of, event, post

from asana_webhooks import (
    Event,
    MemorySecretStore,
    SQLiteInbox,
    WebhookReceiver,
    Worker,
    event_key,
    sign_body,
)


def receiver_with_inbox(tmp_path: Path, target: str) -> WebhookReceiver:
    store = MemorySecretStore()
    store.set(target, SECRET)
    return WebhookReceiver(store, inbox=SQLiteInbox(tmp_path / "inbox.sqlite3"))


def handled_keys(receiver: WebhookReceiver) -> list[str]:
    keys: list[str] = []

    def handler(events: Sequence[Event], target: str) -> None:
        keys.extend(event_key(e) for e in events)

    assert receiver.inbox is not None
    Worker(receiver.inbox, handler).drain()
    return keys


def test_the_flask_blueprint_stores_deliveries_in_the_inbox(tmp_path: Path) -> None:
    flask = pytest.importorskip("flask")
    from asana_webhooks.contrib.flask import webhook_blueprint

    receiver = receiver_with_inbox(tmp_path, "/asana/1201")
    app = flask.Flask("inbox-test")
    app.register_blueprint(webhook_blueprint(receiver), url_prefix="/asana")
    body = body_of([event(1), event(2)])
    with werkzeug_server(app) as url:
        assert post(url + "/asana/1201", body)[0] == 200
        assert post(url + "/asana/1201", body)[0] == 200  # a redelivery
    assert handled_keys(receiver) == [event_key(event(1)), event_key(event(2))]


def test_the_django_view_stores_deliveries_in_the_inbox(tmp_path: Path) -> None:
    pytest.importorskip("django")
    from django.test import Client, override_settings
    from django.urls import path
    from receiving_django import ensure_django, urlconf

    ensure_django()
    from asana_webhooks.contrib.django import webhook_view

    receiver = receiver_with_inbox(tmp_path, "/asana/1201")
    view = webhook_view(receiver)
    body = body_of([event(1), event(2)])
    client = Client(enforce_csrf_checks=True)
    with override_settings(ROOT_URLCONF=urlconf(path("asana/<path:rest>", view))):
        for _ in range(2):
            answer = client.post(
                "/asana/1201",
                data=body,
                content_type="application/json",
                headers={"X-Hook-Signature": sign_body(body, SECRET)},
            )
            assert answer.status_code == 200
    assert handled_keys(receiver) == [event_key(event(1)), event_key(event(2))]
