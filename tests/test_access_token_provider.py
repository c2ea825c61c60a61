"""Configuration(access_token=callable): a token provider, never a repr on the wire."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    AuthenticationError,
    Configuration,
    HTTPClientTransport,
    RetryPolicy,
    WebhooksApi,
)

BODY = b'{"data": {"gid": "1", "resource_type": "webhook"}}'


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api/1.0", seen
    httpd.shutdown()
    httpd.server_close()


def api_for(host: str, token: Any) -> WebhooksApi:
    configuration = Configuration(host=host, access_token=token, retry=RetryPolicy.off())
    return WebhooksApi(ApiClient(configuration, transport=HTTPClientTransport()))


def test_a_callable_access_token_is_asked_before_every_request(
    server: tuple[str, list[str]],
) -> None:
    host, seen = server
    counter = itertools.count(1)
    api = api_for(host, lambda: f"0/token-{next(counter)}")
    api.get_webhook("1")
    api.get_webhook("1")
    assert seen == ["Bearer 0/token-1", "Bearer 0/token-2"]


def test_assigning_a_callable_later_works_as_in_the_generated_client(
    server: tuple[str, list[str]],
) -> None:
    host, seen = server
    configuration = Configuration(host=host, retry=RetryPolicy.off())
    configuration.access_token = lambda: "0/assigned"  # type: ignore[assignment]
    WebhooksApi(ApiClient(configuration, transport=HTTPClientTransport())).get_webhook("1")
    assert seen == ["Bearer 0/assigned"]


@pytest.mark.parametrize("returned", [None, b"0/bytes", 12345, ""])
def test_a_provider_returning_no_string_sends_nothing(
    server: tuple[str, list[str]], returned: Any
) -> None:
    host, seen = server
    with pytest.raises(AuthenticationError, match="expected a non-empty str"):
        api_for(host, lambda: returned).get_webhook("1")
    assert seen == [], "a request went out without a proper token"


@pytest.mark.parametrize("token", [b"0/bytes", 12345, ["0/token"]])
def test_a_token_of_another_type_is_refused_at_construction(token: Any) -> None:
    with pytest.raises(TypeError, match="access_token must be a token string"):
        Configuration(access_token=token)


def test_the_provider_never_shows_in_the_repr() -> None:
    def token_from_vault() -> str:
        return "0/secret-from-vault"

    configuration = Configuration(access_token=token_from_vault)
    assert "vault" not in repr(configuration) and "secret" not in repr(configuration)


@pytest.mark.parametrize("name", ["verify_ssl", "trust_env", "fast_json"])
def test_a_switch_given_as_text_is_refused(name: str) -> None:
    """'false' is truthy: a switch that reads it as on would be silently wrong."""
    with pytest.raises(TypeError, match=name):
        Configuration(**{name: "false"})


@pytest.mark.parametrize("headers", [{"Asana-Enable": 1}, [("Asana-Enable", "x")], {1: "x"}])
def test_default_headers_of_another_shape_are_refused(headers: Any) -> None:
    with pytest.raises(TypeError, match="default_headers"):
        Configuration(default_headers=headers)
