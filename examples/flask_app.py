"""A Flask app that receives Asana webhooks and keeps the events it was sent.

- ``POST /asana/webhooks/<anything>``: Asana's handshake and deliveries (``webhook_blueprint``),
  with secrets in a ``SQLiteSecretStore`` that every worker process shares.
- ``POST /subscriptions`` with ``{"resource": "<gid>"}``: establish a webhook on that resource
  whose target is this app (``establish_webhook``: announce, create, check the secret).
- ``GET /events``: the events received so far, newest last.

Events are stored in SQLite keyed by what they say, so a delivery Asana sends twice is stored
once: ``on_events`` must be idempotent, because an answer that is lost or late makes Asana
deliver again.

Asana sends the handshake *while* ``POST /subscriptions`` waits for ``create_webhook``, so the
server must handle two requests at once: ``flask run`` is threaded by default; with gunicorn
use ``--threads`` or several workers.

Settings (environment variables):

- ``ASANA_ACCESS_TOKEN``: a personal access token (required to create webhooks);
- ``ASANA_HOST``: the API base URL (default Asana's; the stand-in's ``fake.url`` for tests);
- ``PUBLIC_URL``: this app's URL as Asana reaches it, e.g. an ngrok URL;
- ``WEBHOOK_DB``: the SQLite file for secrets and events (default ``webhooks.sqlite3``).

Run it: ``flask --app examples/flask_app.py run``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from asana_webhooks import (
    ApiClient,
    AsanaError,
    Configuration,
    Event,
    SQLiteSecretStore,
    WebhookFilter,
    WebhookReceiver,
    WebhooksApi,
    establish_webhook,
)
from asana_webhooks.contrib.flask import webhook_blueprint

WEBHOOK_PREFIX = "/asana/webhooks"

_EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS received_events (
    event_key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    created_at TEXT,
    action TEXT,
    resource_gid TEXT,
    resource_type TEXT,
    field TEXT,
    user_gid TEXT
)
"""


def event_key(event: Event, target: str) -> str:
    """What makes two deliveries of one event the same: Asana sends no event id."""
    parts = [
        target,
        event.created_at.isoformat() if event.created_at else "",
        event.action or "",
        event.resource.gid if event.resource else "",
        event.parent.gid if event.parent else "",
        event.change.field or "" if event.change else "",
        event.user.gid if event.user else "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class EventLog:
    """Received events in SQLite; storing one twice is a no-op."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self._connect() as db:
            db.execute(_EVENTS_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5.0)

    def store(self, events: Sequence[Event], target: str) -> None:
        rows = [
            (
                event_key(event, target),
                target,
                event.created_at.isoformat() if event.created_at else None,
                event.action,
                event.resource.gid if event.resource else None,
                event.resource.resource_type if event.resource else None,
                event.change.field if event.change else None,
                event.user.gid if event.user else None,
            )
            for event in events
        ]
        with self._connect() as db:
            db.executemany(
                "INSERT OR IGNORE INTO received_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def all(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM received_events ORDER BY rowid").fetchall()
        return [dict(row) for row in rows]


def create_app(settings: Optional[Mapping[str, str]] = None) -> Flask:
    """Build the app; ``settings`` override the environment (tests pass theirs)."""
    config = {**os.environ, **(settings or {})}
    app = Flask(__name__)
    app.config["PUBLIC_URL"] = config.get("PUBLIC_URL", "http://127.0.0.1:5000")
    database = config.get("WEBHOOK_DB", "webhooks.sqlite3")
    token = config.get("ASANA_ACCESS_TOKEN")
    host = config.get("ASANA_HOST")
    configuration = (
        Configuration(host=host, access_token=token) if host else Configuration(access_token=token)
    )
    api = WebhooksApi(ApiClient(configuration))

    events = EventLog(database)
    receiver = WebhookReceiver(SQLiteSecretStore(database), on_events=events.store)
    app.register_blueprint(webhook_blueprint(receiver, url_prefix=WEBHOOK_PREFIX))

    @app.post("/subscriptions")
    def subscribe() -> ResponseReturnValue:
        body = request.get_json(silent=True) or {}
        resource = body.get("resource")
        if not isinstance(resource, str) or not resource.isdigit():
            return jsonify(error="send {'resource': '<gid>'}"), 400
        target = f"{app.config['PUBLIC_URL'].rstrip('/')}{WEBHOOK_PREFIX}/{resource}"
        filters = [WebhookFilter(**item) for item in body.get("filters", [])] or None
        try:
            webhook = establish_webhook(api, receiver, resource, target, filters)
        except AsanaError as exc:
            return jsonify(error=str(exc)), 502
        return jsonify(gid=webhook.gid, target=webhook.target, active=webhook.active), 201

    @app.get("/events")
    def list_events() -> ResponseReturnValue:
        return app.response_class(json.dumps(events.all()), mimetype="application/json")

    return app


if __name__ == "__main__":
    # threaded=True is the default; it is spelled out because the handshake depends on it.
    create_app().run(host="127.0.0.1", port=5000, threaded=True)
