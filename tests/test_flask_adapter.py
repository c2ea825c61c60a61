"""The Flask blueprint, through Flask's own test client, over a real SQLite store file."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from asana_webhooks import Event, SQLiteSecretStore, WebhookReceiver, sign_body  # noqa: E402
from asana_webhooks.contrib.flask import webhook_blueprint  # noqa: E402

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
BODY = json.dumps(
    {"events": [{"resource": {"gid": "2", "resource_type": "task"}, "action": "changed"}]}
).encode()


class Harness:
    def __init__(self, tmp_path: Path, **receiver_options: Any) -> None:
        self.store = SQLiteSecretStore(tmp_path / "secrets.sqlite3")
        self.calls: list[tuple[list[Event], str]] = []
        self.receiver = WebhookReceiver(self.store, self.on_events, **receiver_options)
        self.app = flask.Flask("receiving-tests")
        self.app.register_blueprint(webhook_blueprint(self.receiver, url_prefix="/asana"))
        self.client = self.app.test_client()

    def on_events(self, events: Sequence[Event], target: str) -> None:
        self.calls.append((list(events), target))

    def establish(self, target: str) -> None:
        self.store.announce(target)
        answer = self.client.post(target, headers={"X-Hook-Secret": SECRET})
        assert answer.status_code == 200, answer.get_data(as_text=True)


def call_wsgi(app: Any, path: str, body: Any, **environ: Any) -> tuple[int, bytes]:
    """Call the app as any WSGI server would, with an input stream we control."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    base = EnvironBuilder(path=path, method="POST").get_environ()
    base.pop("CONTENT_LENGTH", None)
    base.update(environ, **{"wsgi.input": body})
    app_iter, status, _ = run_wsgi_app(app, base, buffered=True)
    return int(status.split()[0]), b"".join(app_iter)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_handshake_echoes_the_secret_and_stores_it(harness: Harness) -> None:
    harness.store.announce("https://example.com/asana/1201?team=a")
    answer = harness.client.post("/asana/1201?team=a", headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 200
    assert answer.headers["X-Hook-Secret"] == SECRET
    assert harness.store.get("/asana/1201?team=a") == SECRET


def test_an_unannounced_handshake_is_forbidden(harness: Harness) -> None:
    answer = harness.client.post("/asana/1201", headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 403
    assert harness.store.get("/asana/1201") is None


def test_a_signed_delivery_reaches_the_app_with_its_target(harness: Harness) -> None:
    harness.establish("/asana/1201?team=a")
    answer = harness.client.post(
        "/asana/1201?team=a",
        data=BODY,
        headers={"X-Hook-Signature": sign_body(BODY, SECRET), "Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    ((events, target),) = harness.calls
    assert target == "/asana/1201?team=a"
    assert events[0].action == "changed"


def test_the_query_string_tells_targets_apart(harness: Harness) -> None:
    harness.establish("/asana/hooks?team=a")
    answer = harness.client.post(
        "/asana/hooks?team=b", data=BODY, headers={"X-Hook-Signature": sign_body(BODY, SECRET)}
    )
    assert answer.status_code == 401
    assert harness.calls == []


def test_the_raw_body_is_verified_even_when_sent_as_a_form(harness: Harness) -> None:
    # Flask would parse a form body on request.form; the adapter must read raw bytes first.
    harness.establish("/asana/1201")
    answer = harness.client.post(
        "/asana/1201",
        data=BODY,
        headers={
            "X-Hook-Signature": sign_body(BODY, SECRET),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status_code == 200
    assert len(harness.calls) == 1


def test_a_bad_signature_is_unauthorized(harness: Harness) -> None:
    harness.establish("/asana/1201")
    answer = harness.client.post(
        "/asana/1201", data=BODY, headers={"X-Hook-Signature": sign_body(BODY, "wrong")}
    )
    assert answer.status_code == 401
    assert harness.calls == []


def test_a_heartbeat_is_answered(harness: Harness) -> None:
    harness.establish("/asana/1201")
    heartbeat = b'{"events":[]}'
    answer = harness.client.post(
        "/asana/1201", data=heartbeat, headers={"X-Hook-Signature": sign_body(heartbeat, SECRET)}
    )
    assert answer.status_code == 200
    assert harness.calls == []


@pytest.mark.parametrize("path", ["/asana", "/asana/", "/asana/a/b/c"])
def test_every_path_under_the_prefix_is_a_target(harness: Harness, path: str) -> None:
    harness.store.announce(path)
    answer = harness.client.post(path, headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 200, f"{path} should be served without a redirect"


def test_a_percent_encoded_target_matches_the_decoded_path(harness: Harness) -> None:
    harness.store.announce("https://example.com/asana/a%20b")
    answer = harness.client.post("/asana/a%20b", headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(harness: Harness, method: str) -> None:
    assert harness.client.open("/asana/1201", method=method).status_code == 405


class Unreadable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the adapter read a body it should have refused")


def test_a_declared_length_over_the_limit_is_refused_without_reading(tmp_path: Path) -> None:
    harness = Harness(tmp_path, max_body_bytes=1024)
    harness.establish("/asana/1201")
    status, _ = call_wsgi(
        harness.app,
        "/asana/1201",
        Unreadable(),
        CONTENT_LENGTH=str(50 * 1024 * 1024),
        HTTP_X_HOOK_SIGNATURE="0" * 64,
    )
    assert status == 413


def test_a_body_over_the_limit_without_a_length_is_refused(tmp_path: Path) -> None:
    harness = Harness(tmp_path, max_body_bytes=1024)
    harness.establish("/asana/1201")
    big = b'{"events": [' + b" " * 4096 + b"]}"
    status, _ = call_wsgi(
        harness.app,
        "/asana/1201",
        io.BytesIO(big),
        HTTP_X_HOOK_SIGNATURE=sign_body(big, SECRET),
        **{"wsgi.input_terminated": True},  # chunked: the server knows where the body ends
    )
    assert status == 413
    assert harness.calls == []


def test_a_body_within_the_limit_without_a_length_is_read(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.establish("/asana/1201")
    status, _ = call_wsgi(
        harness.app,
        "/asana/1201",
        io.BytesIO(BODY),
        HTTP_X_HOOK_SIGNATURE=sign_body(BODY, SECRET),
        **{"wsgi.input_terminated": True},
    )
    assert status == 200
    assert len(harness.calls) == 1


def test_the_blueprint_respects_the_script_root(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.store.announce("https://example.com/app/asana/1201")
    answer = harness.client.post(
        "/asana/1201", headers={"X-Hook-Secret": SECRET}, base_url="http://localhost/app"
    )
    assert answer.status_code == 200
    assert harness.store.get("/app/asana/1201") == SECRET


def test_two_blueprints_can_be_mounted_with_different_names(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    harness.app.register_blueprint(
        webhook_blueprint(harness.receiver, url_prefix="/other", name="other_hooks")
    )
    harness.store.announce("/other/1")
    assert harness.client.post("/other/1", headers={"X-Hook-Secret": SECRET}).status_code == 200


def test_end_to_end_over_http_with_a_stand_in_asana(tmp_path: Path) -> None:
    """establish_webhook against FakeAsana, which handshakes and delivers over real sockets."""
    import threading

    from werkzeug.serving import make_server

    from asana_webhooks import ApiClient, Configuration, WebhooksApi, establish_webhook
    from asana_webhooks.testing import FakeAsana

    harness = Harness(tmp_path)
    server = make_server("127.0.0.1", 0, harness.app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    try:
        with FakeAsana() as fake:
            project = fake.add_resource(name="Roadmap")
            api = WebhooksApi(
                ApiClient(Configuration(host=fake.url, access_token=fake.access_token))
            )
            target = f"http://127.0.0.1:{server.server_port}/asana/{project}?team=a"
            webhook = establish_webhook(api, harness.receiver, project, target)
            assert harness.store.get(target) == fake.secret_for(webhook.gid)
            assert fake.heartbeat(webhook.gid) == 200
            assert fake.deliver(webhook.gid, [fake.make_event()]) == 200
            assert fake.deliver(webhook.gid, [fake.make_event()], signature="0" * 64) == 401
    finally:
        server.shutdown()
        serving.join(timeout=10)
    assert len(harness.calls) == 1, "exactly the one signed delivery with events is dispatched"
    assert harness.calls[0][1] == f"/asana/{project}?team=a"


@pytest.mark.parametrize("prefix", ["/", ""])
def test_the_blueprint_can_serve_the_whole_site(prefix: str, tmp_path: Path) -> None:
    """Issue #12 item 14: url_prefix="/" raised "URL rule '' must start with a slash"."""
    store = SQLiteSecretStore(tmp_path / "secrets.sqlite3")
    app = flask.Flask("root-prefix")
    app.register_blueprint(webhook_blueprint(WebhookReceiver(store), url_prefix=prefix))
    client = app.test_client()
    for path in ("/", "/1201", "/deep/er/1202?team=a"):
        store.announce(path)
        answer = client.post(path, headers={"X-Hook-Secret": SECRET})
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
        assert answer.headers["X-Hook-Secret"] == SECRET
        assert store.get(path) == SECRET
    assert client.get("/1201").status_code == 405
