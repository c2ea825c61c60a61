"""Real servers on 127.0.0.1 for the end-to-end tests: a werkzeug server in a thread, a
round-robin proxy standing in for a load balancer, and a thread-safe ``on_events`` recorder.
Nothing starts at import."""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from asana_webhooks import Event

WSGIApp = Callable[..., Any]


class EventsRecorder:
    """An ``on_events`` that remembers every call (from any server thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[list[Event], str]] = []
        self.handshakes: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[Event], target: str) -> None:
        with self._lock:
            self.calls.append((list(events), target))

    def on_handshake(self, target: str) -> None:
        with self._lock:
            self.handshakes.append(target)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return [event for events, _ in self.calls for event in events]


@contextlib.contextmanager
def werkzeug_server(app: WSGIApp) -> Iterator[str]:
    """Serve ``app`` with werkzeug (threaded) on a free port; yield ``http://127.0.0.1:PORT``."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


class RoundRobinProxy:
    """A load balancer in miniature: forwards each POST to the next backend in turn.

    ``routed`` records ``(backend_index, path, kind)`` per request, ``kind`` being
    ``"handshake"`` or ``"delivery"``, so a test can see which server got what.
    """

    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = list(backends)
        self.routed: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()
        self._next = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def _choose(self, path: str, kind: str) -> int:
        with self._lock:
            index = self._next % len(self.backends)
            self._next += 1
            self.routed.append((index, path, kind))
            return index

    def __enter__(self) -> RoundRobinProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10.0

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                kind = "handshake" if "X-Hook-Secret" in self.headers else "delivery"
                backend = urlsplit(proxy.backends[proxy._choose(self.path, kind)])
                connection = http.client.HTTPConnection(
                    backend.hostname or "127.0.0.1", backend.port, timeout=10.0
                )
                try:
                    headers = {
                        name: value
                        for name, value in self.headers.items()
                        if name.lower() not in ("host", "connection")
                    }
                    connection.request("POST", self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    reply = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in (
                            "connection",
                            "transfer-encoding",
                            "content-length",
                        ):
                            self.send_header(name, value)
                finally:
                    connection.close()
                self.send_header("Content-Length", str(len(reply)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(reply)
                self.close_connection = True

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def backends_for(self, kind: str) -> list[int]:
        with self._lock:
            return [index for index, _, seen in self.routed if seen == kind]
