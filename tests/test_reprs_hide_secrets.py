"""No repr or str of any object of this package shows a token or a secret.

A life runs over real sockets (the stand-in, a receiver served over HTTP, every transport):
establish, handshakes accepted and refused, the ``*_with_http_info`` answers, token providers,
OAuth tokens, errors. Then every live object whose class comes from ``asana_webhooks`` (found
through the garbage collector, so a class added later is covered without being listed here)
has its ``repr`` and ``str`` searched for each secret in its obvious encodings.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    AsanaError,
    Configuration,
    CreateWebhookRequest,
    HTTPClientTransport,
    MemorySecretStore,
    OAuthToken,
    RequestsTransport,
    RetryPolicy,
    SQLiteSecretStore,
    Urllib3Transport,
    WebhookReceiver,
    WebhookRequest,
    WebhooksApi,
    establish_webhook,
)
from asana_webhooks._wsgi import ReceiverServer, wsgi_app
from asana_webhooks.testing import FakeAsana
from tests.test_secrets_never_leak import STRANGER_SECRET, TOKEN, WRONG_TOKEN, encodings

pytestmark = pytest.mark.timeout(120)

REFRESH_TOKEN = "1/1209000000000042:refresh-0f3a9c1d2e4b5a6978c0d1e2f3a4b5c6"
CLIENT_SECRET = "client-secret-7d1e2f3a4b5c6d7e8f90a1b2c3d4e5f6"


def ours(obj: Any) -> bool:
    try:
        return type(obj).__module__.startswith("asana_webhooks")
    except Exception:  # an object whose type misbehaves is not one of ours
        return False


def test_no_repr_or_str_of_a_live_object_shows_a_secret(tmp_path: Path) -> None:
    kept: list[Any] = []  # keeps every object of the life alive for the search
    secrets = {
        "token": TOKEN,
        "wrong token": WRONG_TOKEN,
        "stranger": STRANGER_SECRET,
        "refresh": REFRESH_TOKEN,
        "client secret": CLIENT_SECRET,
    }
    with FakeAsana(access_token=TOKEN) as fake:
        store = SQLiteSecretStore(tmp_path / "secrets.sqlite3")
        receiver = WebhookReceiver(store)
        open_door = WebhookReceiver(MemorySecretStore(), accept_unannounced_handshakes=True)
        with (
            ReceiverServer(wsgi_app(receiver)) as server,
            ReceiverServer(wsgi_app(open_door)) as door,
        ):
            for kind in (RequestsTransport, Urllib3Transport, HTTPClientTransport):
                name = kind.__name__
                for token in (TOKEN, lambda: TOKEN):
                    config = Configuration(host=fake.url, access_token=token)
                    client = ApiClient(config, transport=kind())
                    api = WebhooksApi(client)
                    kept += [config, client, api, client.transport]
                webhook = establish_webhook(
                    api, receiver, "1209000000000001", f"{server.url}/{name}"
                )
                secrets[f"secret {name}"] = fake.secret_for(webhook.gid)
                kept += [webhook, api.get_webhook_with_http_info(webhook.gid)]
                request = CreateWebhookRequest(
                    data=WebhookRequest(resource="1209000000000002", target=f"{door.url}/{name}")
                )
                created = api.create_webhook_with_http_info(request)
                assert created.data.data is not None and created.data.x_hook_secret
                secrets[f"created {name}"] = created.data.x_hook_secret
                kept += [created, created.data]
                kept.append(api.get_webhooks_with_http_info(fake.workspace_gid))
                wrong = WebhooksApi(
                    ApiClient(
                        Configuration(
                            host=fake.url, access_token=WRONG_TOKEN, retry=RetryPolicy.off()
                        ),
                        transport=kind(),
                    )
                )
                try:
                    wrong.get_webhook(webhook.gid)
                except AsanaError as exc:
                    kept.append(exc)
            # A handshake answered by a receiver echoes the secret in its header.
            answer = open_door.handle(
                "https://example.com/h", {"X-Hook-Secret": STRANGER_SECRET}, b""
            )
            assert answer.headers.get("X-Hook-Secret") == STRANGER_SECRET
            kept.append(answer)
            kept.append(
                OAuthToken(
                    TOKEN, REFRESH_TOKEN, client_id="1209000000000099", client_secret=CLIENT_SECRET
                )
            )
            kept.append(Configuration(token_provider=kept[-1]))
            live = [obj for obj in gc.get_objects() if ours(obj)] + kept
            assert any(type(obj).__name__ == "ReceiverResponse" for obj in live)
            texts = []
            for obj in live:
                texts.append((type(obj).__qualname__, repr(obj)))
                texts.append((type(obj).__qualname__, str(obj)))
    assert len({name for name, _ in texts}) > 15, "the search found too few kinds of object"
    for label, value in secrets.items():
        for form, encoded in encodings(value).items():
            for kind_name, text in texts:
                assert encoded not in text, (
                    f"the {label} ({form}) shows in a {kind_name}'s repr or str: {text[:300]!r}"
                )


@pytest.mark.parametrize("order", ["secret first", "secret last"])
def test_a_broken_create_answer_never_quotes_its_secret_in_the_error(order: str) -> None:
    """A truncated 201 is an InvalidResponseError; its message shows no part of the secret."""
    from asana_webhooks import InvalidResponseError, Response
    from tests._client_helpers import make_api

    secret = f'"X-Hook-Secret": "{STRANGER_SECRET}"'.encode()
    data = b'"data": {"gid": "1", "resource_type": "webhook"'
    body = b"{" + (secret + b", " + data if order == "secret first" else data + b", " + secret)
    api, _ = make_api(Response(201, {}, body[:-3]))  # cut short: not JSON
    request = CreateWebhookRequest(data=WebhookRequest(resource="1", target="https://e.com/h"))
    with pytest.raises(InvalidResponseError) as caught:
        api.create_webhook(request)
    for text in (str(caught.value), repr(caught.value)):
        assert STRANGER_SECRET[:8] not in text, text
