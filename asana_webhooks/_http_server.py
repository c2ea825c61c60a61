"""A small HTTP/1.1 server for WSGI apps that holds up against slow and hostile clients.

``ReceiverServer`` is what ``asana-webhooks serve``, the demo and the tests run the receiver
on. Requests are read by one thread with non-blocking sockets, so a client that sends a byte
every few seconds costs a file descriptor and a few bytes of memory, never a thread. Only a
request that has arrived whole (line, headers and body) goes to a small pool of threads that
run the application. Three limits keep it standing:

- a deadline for the whole request (``request_timeout``), however slowly it trickles in;
- a cap on connections (``max_connections``): beyond it, new ones get 503 and are closed;
- when ``accept()`` runs out of file descriptors (EMFILE), accepting pauses with a backoff
  instead of spinning.

Refused requests are logged as one line each at most (repeats within a few seconds are
counted into the next line), without tracebacks. Each request gets its own connection
(``Connection: close``), as Asana's deliveries do.

It is not a hardened edge server: in production put it behind a reverse proxy or load
balancer that terminates TLS (Asana only delivers to HTTPS) and limits clients.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import io
import logging
import re
import selectors
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from asana_webhooks._receiver import WebhookReceiver

logger = logging.getLogger("asana_webhooks")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Seconds a client has for its whole request, line, headers and body, once connected.
REQUEST_TIMEOUT = 10.0
#: Connections open at once (being read, waiting or being answered); more get 503.
DEFAULT_MAX_CONNECTIONS = 512
#: Threads running the application; requests are read without one.
DEFAULT_WORKERS = 8
#: The largest body read when the app does not say (``wsgi_app`` apps say their limit).
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: The largest request line plus headers.
MAX_HEAD_BYTES = 32 * 1024
#: Seconds to write an answer to a client that does not read it.
WRITE_TIMEOUT = 10.0
#: Seconds ``stop`` waits for the serving thread.
_STOP_TIMEOUT = 5.0
#: Pauses of ``accept`` while out of file descriptors: from the first to the longest.
_ACCEPT_BACKOFF = (0.05, 1.0)
#: Seconds during which repeats of one kind of refusal are counted rather than logged.
_LOG_INTERVAL = 5.0
#: After a refusal, how long (and for how many sockets at most) what the client still sends
#: is read and dropped, so that closing does not reset the connection before the client
#: has read the refusal.
_LINGER_SECONDS = 1.0
_MAX_LINGERING = 256

_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")

_PHRASES = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class _Refusal(Exception):
    """A request answered by the server itself, with ``status`` and a reason for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _RefusalLog:
    """One line per refused request at most; repeats of a kind within a few seconds are
    counted and reported with the next line of that kind."""

    def __init__(self, interval: float = _LOG_INTERVAL) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        more = f" ({held} more like it in the last {self._interval:g}s)" if held else ""
        logger.warning("receiver: %s%s", message, more)


class _Connection:
    __slots__ = ("body", "continued", "deadline", "environ", "peer", "received", "sock")

    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self.received = bytearray()
        self.environ: Optional[dict[str, Any]] = None  # set once the head is in
        self.body: Optional[bytes] = None
        self.continued = False


class ReceiverServer:
    """Serve a WSGI app (by default ``wsgi_app(receiver)``) on ``host:port`` in a thread.

    ``port=0`` picks a free port; read it from ``port`` or ``url`` after ``start()``. Binds
    127.0.0.1 unless told otherwise. Nothing runs until ``start()`` (or ``with``).

    ``request_timeout`` bounds each whole request; ``max_connections`` caps connections open
    at once (more are answered 503 and closed); ``workers`` is how many threads run the app;
    ``max_body_bytes`` (default: the app's ``max_body_bytes`` attribute, as ``wsgi_app`` sets
    it, else 4 MiB) is the largest body read, a larger one is refused with 413 unread.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        workers: int = DEFAULT_WORKERS,
        max_body_bytes: Optional[int] = None,
    ) -> None:
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be positive seconds, not {request_timeout!r}")
        if max_connections < 1 or workers < 1:
            raise ValueError("max_connections and workers must be at least 1")
        self.app = app
        self.request_timeout = float(request_timeout)
        self.max_connections = int(max_connections)
        self.workers = int(workers)
        limit = max_body_bytes if max_body_bytes is not None else getattr(app, "max_body_bytes", 0)
        self.max_body_bytes = int(limit) if limit else DEFAULT_MAX_BODY_BYTES
        self._host = host
        self._port = port
        self._listener: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._selector: Optional[selectors.BaseSelector] = None
        self._waker: Optional[tuple[socket.socket, socket.socket]] = None
        self._lingering: dict[int, tuple[socket.socket, float]] = {}
        self._stopping = threading.Event()
        self._open = 0  # connections accepted and not yet closed
        self._open_lock = threading.Lock()
        self._refused = _RefusalLog()

    @classmethod
    def for_receiver(
        cls, receiver: WebhookReceiver, *, host: str = "127.0.0.1", port: int = 0, **limits: Any
    ) -> ReceiverServer:
        from asana_webhooks._wsgi import wsgi_app

        return cls(wsgi_app(receiver), host=host, port=port, **limits)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> ReceiverServer:
        if self._listener is not None:
            raise RuntimeError("the receiver server is already running")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._host, self._port))
            listener.listen(min(socket.SOMAXCONN, 1024))
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._selector = selectors.DefaultSelector()
        self._waker = socket.socketpair()
        for end in self._waker:
            end.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._waker[0], selectors.EVENT_READ, "wake")
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.workers, thread_name_prefix=f"asana-webhooks receiver :{self.port}"
        )
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"asana-webhooks receiver :{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close what is open and wait (briefly) for the serving thread."""
        thread, pool, waker = self._thread, self._pool, self._waker
        if thread is None:
            return
        self._stopping.set()
        if waker is not None:
            with contextlib.suppress(OSError):
                waker[1].send(b"x")
        thread.join(_STOP_TIMEOUT)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._thread = self._pool = None

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the receiver server is not running")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash); append a path to make a target."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"http://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        with self._open_lock:
            return self._open

    # --- the reading thread -----------------------------------------------------------------

    def _serve(self) -> None:
        selector, listener = self._selector, self._listener
        assert selector is not None and listener is not None
        reading: dict[int, _Connection] = {}
        self._lingering = {}
        backoff = 0.0
        resume_at: Optional[float] = None
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                wait = 0.5
                if reading:
                    wait = min(wait, max(0.0, min(c.deadline for c in reading.values()) - now))
                if self._lingering:
                    wait = min(wait, _LINGER_SECONDS / 4)
                if resume_at is not None:
                    wait = min(wait, max(0.0, resume_at - now))
                for key, _ in selector.select(wait):
                    if key.data == "accept":
                        paused = self._accept(selector, reading)
                        if paused:
                            backoff = min(_ACCEPT_BACKOFF[1], max(_ACCEPT_BACKOFF[0], backoff * 2))
                            resume_at = time.monotonic() + backoff
                            selector.unregister(listener)
                        else:
                            backoff = 0.0
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            key.fileobj.recv(512)  # type: ignore[union-attr]
                    elif key.data == "linger":
                        self._drop_input(key.fileobj)  # type: ignore[arg-type]
                    else:
                        self._read(selector, reading, key.data)
                now = time.monotonic()
                if resume_at is not None and now >= resume_at:
                    resume_at = None
                    selector.register(listener, selectors.EVENT_READ, "accept")
                for connection in [c for c in reading.values() if c.deadline <= now]:
                    self._forget(selector, reading, connection)
                    self._time_out(connection)
                for sock, until in list(self._lingering.values()):
                    if until <= now:
                        self._end_linger(sock)
        finally:
            for connection in list(reading.values()):
                self._forget(selector, reading, connection)
                self._close(connection.sock)
            for sock, _ in list(self._lingering.values()):
                self._end_linger(sock)
            selector.close()
            listener.close()
            if self._waker is not None:
                for end in self._waker:
                    end.close()
            self._listener = self._selector = self._waker = None

    def _accept(self, selector: selectors.BaseSelector, reading: dict[int, _Connection]) -> bool:
        """Accept what is waiting; True when out of file descriptors (pause accepting)."""
        listener = self._listener
        assert listener is not None
        while True:
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._refused(
                        "descriptors",
                        f"cannot accept connections: {exc.strerror}; pausing (backing off)",
                    )
                    return True
                return False  # ECONNABORTED and the like: that client is gone
            peer = f"{address[0]}:{address[1]}"
            with self._open_lock:
                full = self._open >= self.max_connections
                if not full:
                    self._open += 1
            if full:
                self._refused(
                    "full",
                    f"refused a connection from {peer}: 503, {self.max_connections} "
                    "connections already open",
                )
                _send_quietly(sock, _plain(503, "too many connections", {"Retry-After": "1"}))
                self._linger(sock)
                continue
            sock.setblocking(False)
            connection = _Connection(sock, peer, time.monotonic() + self.request_timeout)
            reading[sock.fileno()] = connection
            selector.register(sock, selectors.EVENT_READ, connection)

    def _read(
        self,
        selector: selectors.BaseSelector,
        reading: dict[int, _Connection],
        connection: _Connection,
    ) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away before its request was whole
            self._forget(selector, reading, connection)
            self._close(connection.sock)
            return
        connection.received += chunk
        try:
            complete = self._parse(connection)
        except _Refusal as refusal:
            self._forget(selector, reading, connection)
            self._refuse(connection, refusal)
            return
        if complete:
            self._forget(selector, reading, connection)
            assert self._pool is not None
            try:
                self._pool.submit(self._answer, connection)
            except RuntimeError:  # stopping
                self._close(connection.sock)

    def _parse(self, connection: _Connection) -> bool:
        """Read what has arrived; True once the request is whole."""
        data = connection.received
        if connection.environ is None:
            end = _END_OF_HEAD.search(data)
            if end is None:
                if len(data) > MAX_HEAD_BYTES:
                    raise _Refusal(431, f"request head over {MAX_HEAD_BYTES} bytes")
                return False
            if end.start() > MAX_HEAD_BYTES:
                raise _Refusal(431, f"request head over {MAX_HEAD_BYTES} bytes")
            connection.environ = self._environ(bytes(data[: end.start()]), connection)
            del data[: end.end()]
        environ = connection.environ
        if environ.get("HTTP_TRANSFER_ENCODING") is not None:
            body = _dechunk(data, self.max_body_bytes)
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = bytes(data[:length]) if len(data) >= length else None
        if body is None:
            expect = environ.get("HTTP_EXPECT", "").lower()
            if expect == "100-continue" and not connection.continued:
                connection.continued = True
                _send_quietly(connection.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        connection.body = body
        if "HTTP_TRANSFER_ENCODING" in environ:
            environ["CONTENT_LENGTH"] = str(len(body))  # the app reads the decoded body
        return True

    def _environ(self, head: bytes, connection: _Connection) -> dict[str, Any]:
        lines = head.split(b"\n")
        parts = lines[0].rstrip(b"\r").split(b" ")
        if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
            raise _Refusal(400, "malformed request line")
        method, raw_target, version = (part.decode("latin-1") for part in parts)
        if not version.startswith("HTTP/"):
            raise _Refusal(400, "malformed request line")
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refusal(505, f"unsupported protocol {version[:16]!r}")
        if not raw_target.startswith("/"):
            raise _Refusal(400, "the request target is not a path")
        path, _, query = raw_target.partition("?")
        server_host, server_port = self._host, str(self.port)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            # PEP 3333: the path decoded from %XX, as bytes read as latin-1.
            "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            # The target exactly as sent, for apps that must not decode it twice.
            "RAW_URI": raw_target,
            "REQUEST_URI": raw_target,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": connection.peer.rsplit(":", 1)[0],
            "REMOTE_PORT": connection.peer.rsplit(":", 1)[1],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        lengths: set[str] = set()
        for raw in lines[1:]:
            line = raw.rstrip(b"\r")
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.match(name):
                raise _Refusal(400, "a malformed header line")
            text = value.strip(b" \t").decode("latin-1")
            key = name.decode("latin-1").upper().replace("-", "_")
            if "_" in name.decode("latin-1"):
                continue  # as wsgiref: X_Hook could otherwise pass for X-Hook
            if key == "CONTENT_LENGTH":
                lengths.add(text)
                continue
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = text
                continue
            key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        encoding = environ.get("HTTP_TRANSFER_ENCODING")
        if encoding is not None:
            if lengths:
                raise _Refusal(400, "both Content-Length and Transfer-Encoding")
            if encoding.lower() != "chunked":
                raise _Refusal(501, f"unsupported Transfer-Encoding {encoding[:32]!r}")
        elif lengths:
            length = lengths.pop()
            if lengths or not length.isdigit() or not length.isascii():
                raise _Refusal(400, "an invalid Content-Length")
            if int(length) > self.max_body_bytes:
                raise _Refusal(413, f"a declared body of {length} bytes")
            environ["CONTENT_LENGTH"] = length
        return environ

    def _forget(
        self,
        selector: selectors.BaseSelector,
        reading: dict[int, _Connection],
        connection: _Connection,
    ) -> None:
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(connection.sock)
        reading.pop(connection.sock.fileno(), None)

    def _time_out(self, connection: _Connection) -> None:
        if not connection.received and connection.environ is None:
            logger.debug("receiver: closed an idle connection from %s", connection.peer)
            self._close(connection.sock)
            return
        where = "its body" if connection.environ is not None else "its headers"
        self._refuse(
            connection,
            _Refusal(408, f"the request was not whole within {self.request_timeout:g}s ({where})"),
        )

    def _refuse(self, connection: _Connection, refusal: _Refusal) -> None:
        """Answer from the server itself, then let the connection linger (reading thread)."""
        self._refused(
            str(refusal.status),
            f"refused a request from {connection.peer}: {refusal.status}, {refusal.reason}",
        )
        _send_quietly(connection.sock, _plain(refusal.status, refusal.reason))
        with self._open_lock:
            self._open -= 1  # its place is free at once; lingering is bounded apart
        self._linger(connection.sock)

    def _linger(self, sock: socket.socket) -> None:
        """Close ``sock`` once the client has read the answer: at its EOF or after a moment."""
        selector = self._selector
        if selector is None or len(self._lingering) >= _MAX_LINGERING:
            _close_quietly(sock)
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        try:
            selector.register(sock, selectors.EVENT_READ, "linger")
        except (OSError, ValueError, KeyError):
            _close_quietly(sock)
            return
        self._lingering[sock.fileno()] = (sock, time.monotonic() + _LINGER_SECONDS)

    def _drop_input(self, sock: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            self._end_linger(sock)  # EOF or an error: the client is done

    def _end_linger(self, sock: socket.socket) -> None:
        self._lingering.pop(sock.fileno(), None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        _close_quietly(sock)

    def _close(self, sock: socket.socket) -> None:
        _close_quietly(sock)
        with self._open_lock:
            self._open -= 1

    # --- the application threads ------------------------------------------------------------

    def _answer(self, connection: _Connection) -> None:
        environ, body = connection.environ, connection.body
        assert environ is not None and body is not None
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            answer = self._call_app(environ)
        except Exception:
            # The application's own bug: worth its traceback in the application's log.
            logger.exception(
                "receiver: the application failed on %s %s",
                environ["REQUEST_METHOD"],
                environ.get("RAW_URI", ""),
            )
            answer = _plain(500, "internal server error")
        sock = connection.sock
        try:
            sock.setblocking(True)
            sock.settimeout(WRITE_TIMEOUT)
            sock.sendall(answer)
        except OSError as exc:
            logger.debug("receiver: could not answer %s: %s", connection.peer, exc)
        finally:
            # Answered: its place is free before the client sees the end of the answer.
            with self._open_lock:
                self._open -= 1
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        _drain(sock)
        _close_quietly(sock)

    def _call_app(self, environ: dict[str, Any]) -> bytes:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        result = self.app(environ, start_response)
        try:
            for chunk in result:
                written.append(bytes(chunk))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the application did not call start_response")
        status, headers = started
        payload = b"".join(written)
        if environ["REQUEST_METHOD"] == "HEAD":
            payload = b""
        names = {name.lower() for name, _ in headers}
        extra = [("Connection", "close")]
        if "content-length" not in names:
            extra.append(("Content-Length", str(len(payload))))
        lines = [f"HTTP/1.1 {status}"]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() != "connection"]
        lines += [f"{name}: {value}" for name, value in extra]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _dechunk(data: bytearray, limit: int) -> Optional[bytes]:
    """A chunked body once it is whole, None before; ``_Refusal`` when malformed or too big."""
    body = bytearray()
    position = 0
    while True:
        end = data.find(b"\r\n", position)
        if end < 0:
            if len(data) - position > 1024:
                raise _Refusal(400, "a malformed chunk size")
            return None
        size_text = bytes(data[position:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Refusal(400, "a malformed chunk size") from None
        if size < 0 or len(body) + size > limit:
            raise _Refusal(413, f"a chunked body over {limit} bytes")
        start = end + 2
        if size == 0:
            # The last chunk, then optional trailers and an empty line.
            trailer_end = data.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                if len(data) - end > 8 * 1024:
                    raise _Refusal(431, "chunked trailers too long")
                return None
            return bytes(body)
        if len(data) < start + size + 2:
            return None
        body += data[start : start + size]
        if data[start + size : start + size + 2] != b"\r\n":
            raise _Refusal(400, "a chunk without its line end")
        position = start + size + 2


def _plain(status: int, text: str, headers: Optional[dict[str, str]] = None) -> bytes:
    body = (text + "\n").encode("utf-8")
    lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += [
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """One non-blocking try: a refusal never waits for a client that does not read."""
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(data)


def _drain(sock: socket.socket) -> None:
    """Read what the client sent beyond its request, so closing does not reset the answer."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):  # BlockingIOError: nothing is waiting, the usual case
        for _ in range(16):
            if not sock.recv(65536):
                break


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
