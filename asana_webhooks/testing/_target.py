"""``RecordingTarget``: a minimal webhook receiver on 127.0.0.1 for tests of webhook creation.

It answers the handshake by echoing ``X-Hook-Secret`` and records every POST it gets. It does
not verify signatures: tests do that on ``received`` with the secret they were given.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Optional

from asana_webhooks.testing._records import Headers

logger = logging.getLogger("asana_webhooks.testing")

_MAX_BODY_BYTES = 10 * 1024 * 1024


class _TargetServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, target: RecordingTarget) -> None:
        self.target = target
        super().__init__(("127.0.0.1", port), _TargetHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("RecordingTarget: connection from %s ended with an error", client_address)


class _TargetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30.0
    server: _TargetServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("RecordingTarget: %s", format % args)

    def do_POST(self) -> None:
        target = self.server.target
        try:
            length = min(int(self.headers.get("Content-Length", "0")), _MAX_BODY_BYTES)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        headers = Headers(self.headers.items())
        secret = headers.get("X-Hook-Secret")
        target._record(self.path, headers, body)
        if target.delay and target._stopping.wait(target.delay):
            self.close_connection = True
            return
        if secret is not None:
            status = target.handshake_status
            reply_headers = {"X-Hook-Secret": secret} if target.echo_secret else {}
        else:
            status, reply_headers = target.status, {}
        reply = target.response_body
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class ReceivedPost:
    """One POST the target got: its path (with query), headers and raw body."""

    __slots__ = ("body", "headers", "path")

    def __init__(self, path: str, headers: Headers, body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body

    @property
    def is_handshake(self) -> bool:
        return "X-Hook-Secret" in self.headers

    def __repr__(self) -> str:
        return f"<ReceivedPost {self.path} {len(self.body)} bytes handshake={self.is_handshake}>"


class RecordingTarget:
    """A loopback webhook target: ``with RecordingTarget() as target:`` then use ``target.url``.

    Attributes a test may change at any time: ``status`` (for deliveries, default 200),
    ``handshake_status`` (default 200), ``echo_secret`` (default True), ``delay`` (seconds to
    wait before answering, default 0) and ``response_body``.
    """

    def __init__(self, *, path: str = "/receive-webhook", port: int = 0) -> None:
        self._path = path if path.startswith("/") else f"/{path}"
        self._port = port
        self.status = 200
        self.handshake_status = 200
        self.echo_secret = True
        self.delay = 0.0
        self.response_body = b""
        self._lock = threading.Lock()
        self._received: list[ReceivedPost] = []
        self._stopping = threading.Event()
        self._server: Optional[_TargetServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> RecordingTarget:
        if self._server is not None:
            raise RuntimeError("RecordingTarget is already running")
        self._stopping.clear()
        self._server = _TargetServer(self._port, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="RecordingTarget",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)

    def __enter__(self) -> RecordingTarget:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("RecordingTarget is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._path}"

    def _record(self, path: str, headers: Headers, body: bytes) -> None:
        with self._lock:
            self._received.append(ReceivedPost(path, headers, body))

    @property
    def received(self) -> list[ReceivedPost]:
        """Every POST received (handshakes included), oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def deliveries(self) -> list[ReceivedPost]:
        """POSTs without ``X-Hook-Secret``: event deliveries and heartbeats."""
        return [post for post in self.received if not post.is_handshake]

    @property
    def handshake_secrets(self) -> list[str]:
        """The ``X-Hook-Secret`` of every handshake received, oldest first."""
        return [post.headers["X-Hook-Secret"] for post in self.received if post.is_handshake]

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not running"
        return f"<RecordingTarget {where}, {len(self.received)} received>"
