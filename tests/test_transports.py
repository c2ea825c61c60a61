"""Both HTTP transports against a real server on 127.0.0.1: answers, and failures mapped."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests.utils

from asana_webhooks import (
    ApiConnectionError,
    ApiTimeoutError,
    HTTPClientTransport,
    InsecureTransportWarning,
    MockTransport,
    Request,
    RequestsTransport,
    Response,
    Timeout,
    Transport,
    Urllib3Transport,
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        # The client may give up first, as the timeout tests intend.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer()

    def _answer(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"data": {"gid": ')
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if self.path == "/hangup":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        body = b'{"data": {"gid": "1"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Asana-Change", "name=x;info=y")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        echo = body + b"|" + self.headers.get("Authorization", "").encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(echo)))
        self.end_headers()
        self.wfile.write(echo)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TRANSPORTS = [RequestsTransport, Urllib3Transport, HTTPClientTransport]
QUICK = Timeout(connect=2.0, read=0.3)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_transport_round_trip(kind: type[Transport], server: str) -> None:
    with kind() as transport:  # type: ignore[attr-defined]
        assert isinstance(transport, Transport)
        response = transport.handle_request(Request("GET", f"{server}/webhooks/1"))
        assert response.status == 200 and response.body == b'{"data": {"gid": "1"}}'
        assert response.headers["asana-change"] == "name=x;info=y", "headers are case-insensitive"
        posted = transport.handle_request(
            Request("POST", f"{server}/webhooks", {"Authorization": "Bearer t"}, b'{"a":1}')
        )
        assert posted.status == 201 and posted.body == b'{"a":1}|Bearer t'


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_connection_refused_is_known_never_to_have_been_sent(kind: type[Transport]) -> None:
    transport = kind()  # type: ignore[call-arg]
    with pytest.raises(ApiConnectionError) as caught:
        transport.handle_request(Request("POST", f"http://127.0.0.1:{closed_port()}/webhooks"))
    assert caught.value.request_sent is False, "a refused connection never reached the server"
    transport.close()


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_read_timeout_may_have_been_received(kind: type[Transport], server: str) -> None:
    transport = kind()  # type: ignore[call-arg]
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError) as caught:
        transport.handle_request(Request("GET", f"{server}/slow", timeout=QUICK))
    assert caught.value.request_sent is True
    assert time.monotonic() - started < 0.9, "the read timeout was not applied"
    assert "read timeout" in str(caught.value)
    transport.close()


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("path", ["/truncated", "/hangup"])
def test_broken_answers_are_connection_errors(
    kind: type[Transport], server: str, path: str
) -> None:
    transport = kind()  # type: ignore[call-arg]
    with pytest.raises(ApiConnectionError) as caught:
        transport.handle_request(Request("GET", f"{server}{path}", timeout=QUICK))
    assert caught.value.request_sent is True
    transport.close()


def test_requests_transport_resolves_environment_settings_once_per_origin(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = requests.utils.get_environ_proxies

    def counting(url: str, no_proxy: object = None) -> dict[str, str]:
        calls.append(url)
        return original(url, no_proxy=no_proxy)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    with RequestsTransport() as transport:
        for _ in range(5):
            transport.handle_request(Request("GET", f"{server}/webhooks/1"))
    assert len(calls) == 1, f"environment read {len(calls)} times for one origin"


def test_mock_transport_records_requests() -> None:
    transport = MockTransport(lambda request: Response(204))
    response = transport.handle_request(Request("DELETE", "https://x/webhooks/1"))
    assert response.status == 204 and response.body == b""
    assert [r.method for r in transport.requests] == ["DELETE"]


def test_request_repr_hides_headers_and_body() -> None:
    request = Request("GET", "https://x/", {"Authorization": "Bearer sekrit"}, b"sekrit-body")
    assert "sekrit" not in repr(request)


@pytest.mark.parametrize("kind", [*TRANSPORTS])
def test_a_transport_built_without_verification_warns_at_the_callers_line(
    kind: type[Transport],
) -> None:
    with pytest.warns(InsecureTransportWarning, match="verification is off") as caught:
        transport = kind(verify=False)  # type: ignore[call-arg]
    assert caught[0].filename == __file__, "the warning should point at the caller's line"
    transport.close()
