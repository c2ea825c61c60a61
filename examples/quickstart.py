"""Your first webhook, start to finish, against the Asana stand-in: no account needed.

Run it: ``python examples/quickstart.py`` (needs Flask: ``pip install 'asana-webhooks[flask]'``).

It starts ``FakeAsana`` (plays Asana on 127.0.0.1) and a Flask receiver in a thread, then
establishes a webhook (the handshake reaches the receiver while the create waits), receives
a signed delivery, and lists, reads, updates and deletes the webhook. Against the real Asana
only the configuration changes: your token, Asana's host, and a public target URL.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

from asana_webhooks import (
    ApiClient,
    Configuration,
    Event,
    SQLiteSecretStore,
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookReceiver,
    WebhooksApi,
    WebhookUpdateRequest,
    establish_webhook,
)
from asana_webhooks.contrib.flask import webhook_blueprint
from asana_webhooks.testing import FakeAsana

received: list[Event] = []


def on_events(events: Sequence[Event], target: str) -> None:
    # Called once per verified delivery. Keep it quick and idempotent: raising makes Asana
    # deliver the same events again.
    for event in events:
        print(f"  event at {target}: {event.action} {event.resource}")
    received.extend(events)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="asana-quickstart-"))
    with FakeAsana() as fake:
        # --- the receiver -----------------------------------------------------------------
        store = SQLiteSecretStore(folder / "secrets.sqlite3")
        receiver = WebhookReceiver(store, on_events=on_events)
        app = Flask(__name__)
        app.register_blueprint(webhook_blueprint(receiver, url_prefix="/asana/webhooks"))
        # threaded=True: the handshake arrives while create_webhook is still waiting.
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        target = f"http://127.0.0.1:{server.server_port}/asana/webhooks/project-1"

        # --- the client -------------------------------------------------------------------
        configuration = Configuration(host=fake.url, access_token=fake.access_token)
        with ApiClient(configuration) as api_client:
            api = WebhooksApi(api_client)
            project = fake.add_resource(name="Roadmap", resource_type="project")

            # Announce the target, create the webhook, check the handshake's secret.
            webhook = establish_webhook(
                api,
                receiver,
                resource=project,
                target=target,
                filters=[WebhookFilter(resource_type="task", action="changed")],
                workspace=fake.workspace_gid,
            )
            print(f"created webhook {webhook.gid} -> {webhook.target}")

            # FakeAsana delivers a signed event, as Asana would after a change.
            status = fake.deliver(webhook.gid, [fake.make_event("changed", field="due_on")])
            print(f"delivery answered {status}; {len(received)} event(s) received")

            # Read, list, update, delete.
            full = api.get_webhook(webhook.gid).data
            assert full is not None
            print(f"last success at {full.last_success_at}")
            for listed in api.iter_webhooks(fake.workspace_gid, resource=project):
                print(f"listed {listed.gid} active={listed.active}")
            api.update_webhook(
                webhook.gid,
                UpdateWebhookRequest(
                    data=WebhookUpdateRequest(
                        filters=[WebhookFilter(resource_type="task", action="added")]
                    )
                ),
            )
            api.delete_webhook(webhook.gid)
            store.delete(target)
            print(f"deleted; {len(fake.webhooks)} webhooks left")
        server.shutdown()


if __name__ == "__main__":
    main()
