"""A framework-free WSGI app around ``WebhookReceiver``, and a small threaded server for it.

``wsgi_app(receiver)`` answers Asana on every path (each path and query is a target, as in
the Flask and Django adapters); any WSGI server can run it. ``ReceiverServer`` runs it on the
standard library's ``wsgiref`` with one thread per connection: enough for ``asana-webhooks
serve``, the demo and tests, and for receivers that live outside a web framework.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence
from urllib.parse import unquote_to_bytes, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from asana_webhooks._receiver import ReceiverResponse, WebhookReceiver
from asana_webhooks._secrets import requote_path

logger = logging.getLogger("asana_webhooks")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Seconds a connection may stay silent (while sending its request) before it is closed.
CONNECTION_TIMEOUT = 30.0
#: Seconds ``ReceiverServer.stop`` waits for the serving thread to end.
_STOP_TIMEOUT = 5.0


def request_target(environ: Mapping[str, Any]) -> str:
    """The path and query string a WSGI request came in on, as the client sent them.

    The raw request target (``RAW_URI`` from gunicorn, werkzeug and ``ReceiverServer``;
    ``REQUEST_URI`` from uWSGI and mod_wsgi) is used where the server offers it: it is still
    escaped, so ``target_key`` sees exactly the URL given to Asana (with ``SCRIPT_NAME`` put
    in front when a proxy stripped it). Otherwise the decoded ``SCRIPT_NAME`` + ``PATH_INFO``
    is escaped again (see ``requote_path``): never decoded twice, which made a target with
    ``%25`` in it unreachable and let different URLs share a secret.
    """
    return join_target(
        raw_targets(environ),
        wsgi_text(environ.get("SCRIPT_NAME", "")),
        wsgi_text(environ.get("PATH_INFO", "")),
        wsgi_text(environ.get("QUERY_STRING", "")),
    )


def raw_targets(environ: Mapping[str, Any]) -> list[str]:
    """The raw request targets a server put in a WSGI environ (``RAW_URI``, ``REQUEST_URI``)."""
    return [wsgi_text(environ[name]) for name in ("RAW_URI", "REQUEST_URI") if environ.get(name)]


def join_target(raws: Sequence[str], script: str, path_info: str, query: str) -> str:
    """The request target for ``target_key``, from what a server tells about a request.

    ``raws`` are raw request targets (still escaped); ``script`` and ``path_info`` the
    decoded ``SCRIPT_NAME`` and ``PATH_INFO``; ``query`` the query string as sent.
    """
    path = _raw_path(raws, script, path_info) or requote_path(script + path_info) or "/"
    return f"{path}?{query}" if query else path


def _raw_path(raws: Sequence[str], script: str, path_info: str) -> Optional[str]:
    for raw in raws:
        if raw[:8].lower().startswith(("http://", "https://")):  # absolute-form
            raw = urlsplit(raw).path
        raw_path = raw.partition("?")[0].partition("#")[0]
        if not raw_path.startswith("/"):
            continue
        # Trust it only if it is the path the server decoded: whole, or without the script
        # name (a proxy that strips a prefix and passes it as SCRIPT_NAME).
        decoded = unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
        if decoded == script + path_info:
            return raw_path
        if decoded == path_info:
            return requote_path(script) + raw_path
    return None


def wsgi_text(text: str) -> str:
    """A WSGI string (bytes decoded as latin-1, PEP 3333) as the UTF-8 text it carries."""
    # PEP 3333 hands bytes over decoded with latin-1; undo that to get UTF-8 (bytes that are
    # not UTF-8 survive as surrogates, which target_key escapes).
    try:
        return text.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a server that handed over real text already
        return text


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers, with their HTTP names, from a WSGI environ."""
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = environ.get(key)
        if value:
            headers[key.replace("_", "-").title()] = str(value)
    return headers


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    stream = environ["wsgi.input"]
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if length:
        # reject_early has checked it is digits and within the limit.
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        # No declared length (chunked): read one byte past the limit, never the whole.
        return bytes(stream.read(limit + 1))
    return b""  # PEP 3333: without CONTENT_LENGTH there is no body to read


def wsgi_app(receiver: WebhookReceiver) -> WSGIApp:
    """A WSGI application that hands every request to ``receiver``."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = request_headers(environ)
        answer = receiver.reject_early(environ.get("REQUEST_METHOD", ""), headers)
        if answer is None:
            body = _read_body(environ, receiver.max_body_bytes)
            answer = receiver.handle(request_target(environ), headers, body)
        return _respond(answer, start_response)

    return application


def _respond(answer: ReceiverResponse, start_response: StartResponse) -> list[bytes]:
    status = f"{answer.status} {_PHRASES.get(answer.status, 'Unknown')}"
    headers = [(name, value) for name, value in answer.headers.items()]
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(answer.body))))
    start_response(status, headers)
    return [answer.body]


_PHRASES = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
}


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 makes a burst of new connections wait a second
    # (a SYN retransmit) or be reset; Asana and load balancers open many at once.
    request_queue_size = 128

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's full name, which can hang; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("receiver: the connection from %s ended with an error", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT  # a socket timeout: a silent client cannot hold a thread

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        # wsgiref decodes PATH_INFO; keep the target as sent, as gunicorn and werkzeug do.
        environ["RAW_URI"] = self.path
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("receiver: %s - %s", self.address_string(), format % args)


class ReceiverServer:
    """Serve a WSGI app (by default ``wsgi_app(receiver)``) on ``host:port`` in a thread.

    ``port=0`` picks a free port; read it from ``port`` or ``url`` after ``start()``. Binds
    127.0.0.1 unless told otherwise. Nothing runs until ``start()`` (or ``with``).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = app
        self._host = host
        self._port = port
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def for_receiver(
        cls, receiver: WebhookReceiver, *, host: str = "127.0.0.1", port: int = 0
    ) -> ReceiverServer:
        return cls(wsgi_app(receiver), host=host, port=port)

    def start(self) -> ReceiverServer:
        if self._server is not None:
            raise RuntimeError("the receiver server is already running")
        server_class = _Server6 if ":" in self._host else _Server
        server = server_class((self._host, self._port), _Handler)
        server.set_app(self.app)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"asana-webhooks receiver :{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections and wait (briefly) for the serving thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(_STOP_TIMEOUT)

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
        if self._server is None:
            raise RuntimeError("the receiver server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash); append a path to make a target."""
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"http://{host}:{self.port}"
