"""establish_webhook: announce, create, compare the handshake's secret with Asana's answer."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from asana_webhooks import (
    ApiClient,
    BadRequestError,
    Configuration,
    CreateWebhook201Response,
    CreateWebhookRequest,
    HandshakeError,
    MemorySecretStore,
    MockTransport,
    Request,
    Response,
    RetryPolicy,
    SecretStore,
    SQLiteSecretStore,
    WebhookFilter,
    WebhookReceiver,
    WebhookResponse,
    WebhooksApi,
    establish_webhook,
)

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
TARGET = "https://example.com/asana/webhooks/1201?team=a"
PATH = "/asana/webhooks/1201?team=a"
WEBHOOK_GID = "12345"


class FakeAsana:
    """Answers the client like Asana: POST /webhooks does the handshake with the target first.

    ``handshake`` decides what reaches the receiver: by default the real secret, in-process.
    """

    def __init__(
        self,
        receiver: WebhookReceiver,
        *,
        reported_secret: Optional[str] = SECRET,
        handshake: Optional[Callable[[str, str], Any]] = None,
        fail_delete: bool = False,
    ) -> None:
        self.receiver = receiver
        self.reported_secret = reported_secret
        self.handshake = handshake or self._handshake_in_process
        self.fail_delete = fail_delete
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def _handshake_in_process(self, target: str, secret: str) -> int:
        answer = self.receiver.handle(target, {"X-Hook-Secret": secret}, b"")
        ok = answer.status in (200, 204) and answer.headers.get("X-Hook-Secret") == secret
        return 200 if ok else answer.status

    def __call__(self, request: Request) -> Response:
        if request.method == "POST" and request.url.split("?")[0].endswith("/webhooks"):
            assert request.body is not None
            data = json.loads(request.body)["data"]
            self.created.append(data)
            status = self.handshake(data["target"], SECRET)
            if status != 200:
                return _error(
                    400, f"The remote server did not respond with the handshake ({status})"
                )
            body: dict[str, Any] = {
                "data": {
                    "gid": WEBHOOK_GID,
                    "resource_type": "webhook",
                    "active": False,
                    "resource": {"gid": data["resource"], "resource_type": "project", "name": "P"},
                    "target": data["target"],
                    "filters": data.get("filters"),
                }
            }
            if self.reported_secret is not None:
                body["X-Hook-Secret"] = self.reported_secret
            return Response(201, {"Content-Type": "application/json"}, json.dumps(body).encode())
        if request.method == "DELETE" and f"/webhooks/{WEBHOOK_GID}" in request.url:
            if self.fail_delete:
                return _error(403, "Forbidden")
            self.deleted.append(WEBHOOK_GID)
            return Response(200, {"Content-Type": "application/json"}, b'{"data": {}}')
        return _error(404, "Not found")


def _error(status: int, message: str) -> Response:
    body = json.dumps({"errors": [{"message": message}]}).encode()
    return Response(status, {"Content-Type": "application/json"}, body)


def make_api(asana: FakeAsana) -> WebhooksApi:
    config = Configuration(access_token="test-token", retry=RetryPolicy.off())
    return WebhooksApi(ApiClient(config, transport=MockTransport(asana)))


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def receiver(store: MemorySecretStore) -> WebhookReceiver:
    return WebhookReceiver(store)


def test_establish_returns_the_webhook_and_the_secret_is_stored(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    asana = FakeAsana(receiver)
    webhook = establish_webhook(make_api(asana), receiver, "1201", TARGET)
    assert isinstance(webhook, WebhookResponse)
    assert webhook.gid == WEBHOOK_GID
    assert store.get(TARGET) == SECRET
    assert asana.created == [{"resource": "1201", "target": TARGET}]
    assert asana.deleted == []


def test_filters_are_sent(receiver: WebhookReceiver) -> None:
    asana = FakeAsana(receiver)
    filters = [WebhookFilter(resource_type="task", action="changed", fields=["due_on"])]
    establish_webhook(make_api(asana), receiver, "1201", TARGET, filters)
    assert asana.created[0]["filters"] == [
        {"resource_type": "task", "action": "changed", "fields": ["due_on"]}
    ]


def test_after_establishing_no_other_handshake_is_accepted(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    establish_webhook(make_api(FakeAsana(receiver)), receiver, "1201", TARGET)
    assert receiver.handle(TARGET, {"X-Hook-Secret": "attacker"}, b"").status == 403
    assert store.get(TARGET) == SECRET


def test_no_handshake_deletes_the_webhook_and_raises(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    # Asana's handshake went somewhere else (say, a proxy that answered for us).
    asana = FakeAsana(receiver, handshake=lambda target, secret: 200)
    with pytest.raises(HandshakeError, match="no handshake") as caught:
        establish_webhook(make_api(asana), receiver, "1201", TARGET)
    assert asana.deleted == [WEBHOOK_GID], "the unverified webhook must be deleted"
    assert caught.value.webhook_gid == WEBHOOK_GID
    assert caught.value.webhook_deleted
    assert store.get(TARGET) is None
    assert receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"").status == 403, (
        "the announcement must be withdrawn afterwards"
    )


def test_a_different_secret_deletes_the_webhook_and_forgets_the_planted_one(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    def attacker_first(target: str, secret: str) -> int:
        answer = receiver.handle(target, {"X-Hook-Secret": "planted-by-a-stranger"}, b"")
        return answer.status

    asana = FakeAsana(receiver, handshake=attacker_first)
    with pytest.raises(HandshakeError, match="differs") as caught:
        establish_webhook(make_api(asana), receiver, "1201", TARGET)
    assert asana.deleted == [WEBHOOK_GID]
    assert store.get(TARGET) is None, "the wrong handshake's secret must not verify deliveries"
    assert "planted-by-a-stranger" not in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_an_answer_without_x_hook_secret_cannot_be_trusted(receiver: WebhookReceiver) -> None:
    asana = FakeAsana(receiver, reported_secret=None)
    with pytest.raises(HandshakeError, match="no X-Hook-Secret"):
        establish_webhook(make_api(asana), receiver, "1201", TARGET)
    assert asana.deleted == [WEBHOOK_GID]


def test_a_failed_delete_is_reported_in_the_error(receiver: WebhookReceiver) -> None:
    asana = FakeAsana(receiver, handshake=lambda target, secret: 200, fail_delete=True)
    with pytest.raises(HandshakeError, match="delete it by hand") as caught:
        establish_webhook(make_api(asana), receiver, "1201", TARGET)
    assert not caught.value.webhook_deleted
    assert caught.value.webhook_gid == WEBHOOK_GID


def test_a_refused_create_propagates_and_withdraws_the_announcement(
    store: MemorySecretStore,
) -> None:
    receiver = WebhookReceiver(store)
    # The receiver refuses the handshake, so Asana refuses the create.
    asana = FakeAsana(receiver, handshake=lambda target, secret: 403)
    with pytest.raises(BadRequestError):
        establish_webhook(make_api(asana), receiver, "1201", TARGET)
    assert receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"").status == 403
    assert asana.deleted == []


def test_a_secret_store_alone_is_enough(store: MemorySecretStore) -> None:
    # The receiver may live elsewhere; only the store is shared.
    serving = WebhookReceiver(store)
    webhook = establish_webhook(make_api(FakeAsana(serving)), store, "1201", TARGET)
    assert webhook.gid == WEBHOOK_GID
    assert store.get(PATH) == SECRET


def test_works_with_a_receiver_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite3"

    def handshake_in_a_worker_process(target: str, secret: str) -> int:
        worker = textwrap.dedent(
            f"""
            from asana_webhooks import SQLiteSecretStore, WebhookReceiver
            receiver = WebhookReceiver(SQLiteSecretStore({str(path)!r}))
            answer = receiver.handle({target!r}, {{"X-Hook-Secret": {secret!r}}}, b"")
            print(answer.status)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", worker], capture_output=True, text=True, timeout=60, check=True
        )
        return int(done.stdout.strip())

    store = SQLiteSecretStore(path)
    asana = FakeAsana(WebhookReceiver(store), handshake=handshake_in_a_worker_process)
    webhook = establish_webhook(make_api(asana), store, "1201", TARGET)
    assert webhook.gid == WEBHOOK_GID
    assert store.get(TARGET) == SECRET


class HandRolledApi:
    """A minimal stand-in for WebhooksApi: only what establish_webhook calls."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.deleted: list[str] = []

    def create_webhook(self, request: CreateWebhookRequest) -> CreateWebhook201Response:
        assert request.data is not None
        answer = self.receiver.handle(request.data.target, {"X-Hook-Secret": SECRET}, b"")
        assert answer.status == 200
        return CreateWebhook201Response(
            data=WebhookResponse(gid="7", target=request.data.target), x_hook_secret=SECRET
        )

    def delete_webhook(self, webhook_gid: str) -> None:
        self.deleted.append(webhook_gid)


def test_any_object_with_create_and_delete_will_do(receiver: WebhookReceiver) -> None:
    api = HandRolledApi(receiver)
    assert establish_webhook(api, receiver, "1201", TARGET).gid == "7"
    assert api.deleted == []


def test_the_announcement_lasts_as_long_as_asked(store: SecretStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        establish_webhook(
            HandRolledApi(WebhookReceiver(store)), store, "1201", TARGET, announcement_ttl=0
        )
