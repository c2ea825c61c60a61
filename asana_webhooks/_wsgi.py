"""A framework-free WSGI app around ``WebhookReceiver``.

``wsgi_app(receiver)`` answers Asana on every path (each path and query is a target, as in
the Flask and Django adapters); any WSGI server can run it. ``ReceiverServer`` (in
``_http_server``) runs it for ``asana-webhooks serve``, the demo and tests, and for receivers
that live outside a web framework.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from asana_webhooks._receiver import ReceiverResponse, WebhookReceiver

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def request_target(environ: dict[str, Any]) -> str:
    """The path and query string a WSGI request came in on, as the client sent them."""
    # PEP 3333 hands the path over as bytes decoded with latin-1; undo that to get UTF-8.
    raw_path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = raw_path.encode("latin-1").decode("utf-8", "replace") or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


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

    # ReceiverServer refuses a longer body before reading it.
    application.max_body_bytes = receiver.max_body_bytes  # type: ignore[attr-defined]
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


# The server lives in its own module; imported here, where it always was.
# isort: split
from asana_webhooks._http_server import ReceiverServer  # noqa: E402

__all__ = ["ReceiverServer", "StartResponse", "WSGIApp", "request_target", "wsgi_app"]
