"""A framework-free WSGI app around ``WebhookReceiver``.

``wsgi_app(receiver)`` answers Asana on every path (each path and query is a target, as in
the Flask and Django adapters); any WSGI server can run it. ``ReceiverServer`` (in
``_http_server``) runs it for ``asana-webhooks serve``, the demo and tests, and for receivers
that live outside a web framework.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Mapping, Optional, Sequence
from urllib.parse import unquote_to_bytes, urlsplit

from asana_webhooks._receiver import ReceiverResponse, WebhookReceiver
from asana_webhooks._secrets import requote_path

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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
