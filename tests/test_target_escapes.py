"""Targets with every reserved character and escape, through real servers (issue #12 item 5).

Each URL is established through FakeAsana (which sends the handshake to the URL exactly as
given), then a signed delivery is sent to it. On a server that offers the raw request target
(``ReceiverServer``, werkzeug for Flask and Django) every handshake must complete and every
delivery be verified. On one that offers only a decoded path (the standard library's plain
``wsgiref``, Django's ``runserver``), a URL whose escaped reserved characters the decoding
erased may be refused, but no other. Everywhere, no two URLs may share a secret.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from _e2e_servers import werkzeug_server
from _establishers import make_api

from asana_webhooks import (
    BadRequestError,
    HandshakeError,
    MemorySecretStore,
    WebhookReceiver,
    establish_webhook,
    target_key,
)
from asana_webhooks._wsgi import ReceiverServer, wsgi_app
from asana_webhooks.testing import FakeAsana, make_event

RESERVED = ":@!$&'()*+,;="
ESCAPED_RESERVED = {"%2F", "%3F", "%23", "%5B", "%5D"} | {f"%{ord(c):02X}" for c in RESERVED}


def _urls() -> list[str]:
    paths = ["a/b", "a%2Fb", "%2541", "%252F", "%25", "%2525", "100%25", "A", "%3F", "%23"]
    paths += ["%5B", "%5D", "a%20b", "caf%C3%A9", "~user"]
    for char in RESERVED:
        paths += [f"r{char}x", f"r%{ord(char):02X}x"]
    queries = ["q?x=a&b", "q?x=a%26b", "q?x=%2B", "q?x=+", "q?x=%2541", "q?x=%25"]
    return [f"/asana/chars/{path}" for path in paths + queries]


URLS = _urls()


def _loses_nothing_when_decoded(url: str) -> bool:
    path = url.partition("?")[0]
    return not any(escape in path.upper() for escape in ESCAPED_RESERVED)


@contextlib.contextmanager
def plain_wsgiref(app: Any) -> Iterator[str]:
    """The standard library's wsgiref as is: PATH_INFO decoded, no raw request target."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    class Threaded(WSGIServer):
        def process_request(self, request: Any, client_address: Any) -> None:
            threading.Thread(
                target=self._finish, args=(request, client_address), daemon=True
            ).start()

        def _finish(self, request: Any, client_address: Any) -> None:
            try:
                self.finish_request(request, client_address)
            finally:
                self.shutdown_request(request)

    server = make_server("127.0.0.1", 0, app, server_class=Threaded, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def receiver_server(app: Any) -> Iterator[str]:
    with ReceiverServer(app) as server:
        yield server.url


@contextlib.contextmanager
def django_runserver(app: Any) -> Iterator[str]:
    """Django's own development server (wsgiref underneath: no raw request target)."""
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = WSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=True)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _flask_app(receiver: WebhookReceiver) -> Any:
    import flask

    from asana_webhooks.contrib.flask import webhook_blueprint

    app = flask.Flask("escapes")
    app.register_blueprint(webhook_blueprint(receiver, url_prefix="/asana"))
    return app


@contextlib.contextmanager
def _django_app(receiver: WebhookReceiver) -> Iterator[Any]:
    from receiving_django import ensure_django, urlconf

    ensure_django()
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings
    from django.urls import path

    from asana_webhooks.contrib.django import webhook_view

    urls = urlconf(path("asana/<path:rest>", webhook_view(receiver)))
    with override_settings(ROOT_URLCONF=urls):
        yield get_wsgi_application()


Serve = Callable[[WebhookReceiver], Any]

SETUPS: dict[str, tuple[bool, Callable[[WebhookReceiver], Any]]] = {
    # name: (the server offers the raw target, receiver -> context manager yielding a URL)
    "wsgiref-ReceiverServer": (True, lambda r: receiver_server(wsgi_app(r))),
    "wsgiref-plain": (False, lambda r: plain_wsgiref(wsgi_app(r))),
    "flask-werkzeug": (True, lambda r: werkzeug_server(_flask_app(r))),
}


@contextlib.contextmanager
def _django_on(serve: Callable[[Any], Any], receiver: WebhookReceiver) -> Iterator[str]:
    with _django_app(receiver) as app, serve(app) as url:
        yield url


SETUPS["django-ReceiverServer"] = (True, lambda r: _django_on(receiver_server, r))
SETUPS["django-werkzeug"] = (True, lambda r: _django_on(werkzeug_server, r))
SETUPS["django-runserver"] = (False, lambda r: _django_on(django_runserver, r))


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_every_reserved_character_and_escape_gets_its_own_secret(setup: str) -> None:
    raw_offered, serve = SETUPS[setup]
    store = MemorySecretStore()
    receiver = WebhookReceiver(store)
    with FakeAsana(handshake_timeout=30.0) as fake, serve(receiver) as base:
        api = make_api(fake.url, fake.access_token)
        established: dict[str, str] = {}
        refused: list[str] = []
        for n, url in enumerate(URLS):
            try:
                webhook = establish_webhook(api, store, str(1_600_000_000_000_000 + n), base + url)
            except (HandshakeError, BadRequestError):
                refused.append(url)
                continue
            established[url] = str(webhook.gid)
        if raw_offered:
            assert refused == [], f"{setup}: handshakes refused for {refused}"
        else:
            wrongly = [url for url in refused if _loses_nothing_when_decoded(url)]
            assert wrongly == [], f"{setup}: handshakes refused for {wrongly}"
        keys = {target_key(base + url) for url in established}
        assert len(keys) == len(established), "two URLs got one key"
        for url, gid in established.items():
            assert store.get(base + url) == fake.secret_for(gid), f"{setup}: {url} lost its secret"
            status = fake.deliver(gid, [make_event()])
            assert status == 200, f"{setup}: a delivery to {url} got {status}"
