"""HTTP plumbing for FakeAsana: a threading HTTP/1.1 server on 127.0.0.1 that reads requests,
applies injected faults at the right moment and writes responses with exact Content-Length
(so clients can keep connections alive and pool them).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

from asana_webhooks.testing._app import ApiRequest, AsanaApp, split_base_path
from asana_webhooks.testing._control import CONTROL_PATH
from asana_webhooks.testing._faults import Fault, FaultKind, FaultStage
from asana_webhooks.testing._oauth import TOKEN_PATH
from asana_webhooks.testing._records import Headers, RecordedRequest
from asana_webhooks.testing._responses import Response, error_response

logger = logging.getLogger("asana_webhooks.testing")

#: Idle keep-alive connections are closed after this many seconds without a request.
IDLE_TIMEOUT = 30.0
MAX_BODY_BYTES = 10 * 1024 * 1024

_EARLY = frozenset({FaultKind.DROP})
_DELAYS = frozenset({FaultKind.DELAY})
_BEFORE = frozenset({FaultKind.DROP, FaultKind.FAIL})
_AFTER = frozenset({FaultKind.DROP, FaultKind.FAIL, FaultKind.TRUNCATE})


#: Answers the control endpoint: (method, path, headers, body) -> response.
ControlHandler = Callable[[str, str, Headers, bytes], Response]


class _BadRequestBody(Exception):
    pass


class FakeAsanaServer(ThreadingHTTPServer):
    """Serves an ``AsanaApp``; tracks open connections so ``close()`` can end them at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # 16+ clients connect at once in load tests

    def __init__(self, port: int, app: AsanaApp, control: Optional[ControlHandler] = None) -> None:
        self.app = app
        self.control = control
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away is normal here (timeouts, drops); keep stderr quiet.
        logger.debug("FakeAsana: connection from %s ended with an error", client_address)

    def close(self) -> None:
        """Stop serving, wake delayed handlers and end every open connection."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: FakeAsanaServer
    _responded = False

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return "FakeAsana"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("FakeAsana: %s", format % args)

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        # Malformed request lines and unknown methods get Asana's JSON error shape too.
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # The stdlib assumes 0.9 before it could parse a version, and 0.9 has no headers.
            self.request_version = "HTTP/1.1"
        self._write(error_response(code, message))

    def do_GET(self) -> None:
        self._responded = False
        try:
            self._serve()
        except Exception:
            # A bug here must not leave the client hanging: answer 500 if nothing was sent yet.
            logger.exception("FakeAsana failed on %s %s", self.command, self.path)
            self.close_connection = True
            if not self._responded:
                self._write(error_response(500))

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, PROPFIND...) is answered as an API does: 405 with
        # Allow on a known path, 404 elsewhere; the stdlib would say 501 Not Implemented.
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)

    # --- one request --------------------------------------------------------------------

    def _serve(self) -> None:
        app = self.server.app
        received_at = time.time()
        split = urlsplit(self.path)
        route = split_base_path(split.path)
        fault_path = route if route is not None else split.path
        method = self.command
        headers = Headers(self.headers.items())
        query = parse_qs(split.query, keep_blank_values=True)
        body = b""

        def record(status: Optional[int], fault: Optional[str]) -> None:
            app.record_request(
                RecordedRequest(
                    method=method,
                    path=fault_path,
                    raw_path=self.path,
                    query={name: values[-1] for name, values in query.items()},
                    headers=headers,
                    body=body,
                    status=status,
                    fault=fault,
                    received_at=received_at,
                    client_port=int(self.client_address[1]),
                )
            )

        control = self.server.control
        if control is not None and (
            split.path == CONTROL_PATH or split.path.startswith(CONTROL_PATH + "/")
        ):
            # The control endpoint is the test's lever, never subject to injected faults.
            try:
                body = self._read_body()
            except _BadRequestBody as exc:
                self.close_connection = True
                self._write(error_response(400, str(exc)))
                return
            self._write(control(method, split.path, headers, body))
            return

        faults = app.faults
        early = faults.take(FaultStage.ON_HEADERS, method, fault_path, _EARLY)
        if early is not None:
            record(None, "drop")
            self._drop(early)
            return
        try:
            body = self._read_body()
        except _BadRequestBody as exc:
            self.close_connection = True
            response = error_response(400, str(exc))
            record(response.status, None)
            self._write(response)
            return

        fault_name: Optional[str] = None
        delay = faults.take(FaultStage.BEFORE_HANDLING, method, fault_path, _DELAYS)
        if delay is not None:
            fault_name = "delay"
            if self.server.stopping.wait(delay.seconds):
                record(None, "delay")
                self._drop(delay)
                return

        before = faults.take(FaultStage.BEFORE_HANDLING, method, fault_path, _BEFORE)
        if before is not None:
            self._apply(before, None, record)
            return

        if route is None and split.path == TOKEN_PATH:
            response = app.oauth.token_endpoint(method, headers, body)
        elif route is None:
            response = error_response(404, "No matching route for request")
        else:
            request = ApiRequest(
                method=method,
                raw_path=self.path,
                path=route,
                query=query,
                headers=headers,
                body=body,
            )
            response, handled_fault = app.handle(request)
            fault_name = handled_fault or fault_name

        after = faults.take(FaultStage.AFTER_HANDLING, method, fault_path, _AFTER)
        if after is not None:
            self._apply(after, response, record)
            return
        record(response.status, fault_name)
        self._write(response)

    def _apply(
        self,
        fault: Fault,
        handled: Optional[Response],
        record: Callable[[Optional[int], Optional[str]], None],
    ) -> None:
        """Answer as ``fault`` says, recording first (a client that got the answer finds it)."""
        if fault.kind is FaultKind.DROP:
            record(None, fault.kind.value)
            self._drop(fault)
        elif fault.kind is FaultKind.TRUNCATE and handled is not None:
            record(handled.status, fault.kind.value)
            self.close_connection = True
            keep = fault.keep_bytes if fault.keep_bytes is not None else len(handled.body) // 2
            self._write(handled, truncate_to=keep)
        else:
            response = self._fault_response(fault)
            record(response.status, fault.kind.value)
            self._write(response)

    @staticmethod
    def _fault_response(fault: Fault) -> Response:
        headers = () if fault.retry_after is None else (("Retry-After", fault.retry_after),)
        if fault.body is None:
            return error_response(fault.status, fault.message, headers=headers)
        content_type = fault.content_type or (
            "text/html; charset=utf-8"
            if fault.body.lstrip()[:1] == b"<"
            else "text/plain; charset=utf-8"
        )
        return Response(
            status=fault.status, body=fault.body, content_type=content_type, headers=headers
        )

    def _drop(self, fault: Fault) -> None:
        self._responded = True
        self.close_connection = True
        if fault.reset:
            # SO_LINGER 0 makes close() send RST instead of FIN: "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise _BadRequestBody("Invalid Content-Length header") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise _BadRequestBody("Request body too large or Content-Length invalid")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequestBody("Request body shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadRequestBody("Malformed chunked request body") from None
            if size == 0:
                # Skip trailers up to the blank line.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequestBody("Request body too large")
            chunk = self.rfile.read(size)
            self.rfile.readline(1024)
            if len(chunk) != size:
                raise _BadRequestBody("Chunked request body ended early")
            chunks.append(chunk)

    def _write(self, response: Response, *, truncate_to: Optional[int] = None) -> None:
        body = response.body
        self._responded = True
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            if truncate_to is None:
                self.wfile.write(body)
            else:
                # Never the whole body: the client must see fewer bytes than announced.
                self.wfile.write(body[: max(0, min(truncate_to, len(body) - 1))])
        except OSError:
            # The client gave up (e.g. its read timeout fired during a delay).
            self.close_connection = True
