"""Asana-shaped HTTP responses: the ``{"data": ...}`` envelope and ``{"errors": [...]}`` bodies."""

from __future__ import annotations

import http
import json
import secrets
from typing import Any, Optional

import attrs

#: The ``help`` text Asana puts beside every error message.
ERROR_HELP = (
    "For more information on API status codes and how to handle them, "
    "read the docs on errors: https://developers.asana.com/docs/errors"
)

#: Asana's documented 429 message (developer docs, "Rate limits").
RATE_LIMIT_MESSAGE = (
    "You've made too many requests and hit a rate limit. "
    "Please retry after the given amount of time."
)

_DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "Not Authorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    429: RATE_LIMIT_MESSAGE,
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"

# Asana's 500 bodies carry a "phrase" made by node-asana-phrase, like "6 sad squid snuggle softly".
_ADJECTIVES = ("sad", "happy", "sleepy", "brave", "quiet", "fuzzy", "eager", "calm")
_NOUNS = ("squid", "otters", "pandas", "geese", "lemurs", "koalas", "moths", "crabs")
_VERBS = ("snuggle", "wander", "giggle", "ponder", "tumble", "whistle", "dance", "nap")
_ADVERBS = ("softly", "boldly", "quickly", "gently", "wildly", "calmly", "oddly", "slowly")


@attrs.frozen
class Response:
    """A complete response the server writes: status, body bytes and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()


class ApiError(Exception):
    """Raised inside request handling; becomes an Asana error response."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def default_message(status: int) -> str:
    """The message used when a fault or error gives none."""
    if status in _DEFAULT_MESSAGES:
        return _DEFAULT_MESSAGES[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def make_phrase() -> str:
    """An error phrase in the style Asana attaches to 500 errors."""
    words = [secrets.choice(group) for group in (_ADJECTIVES, _NOUNS, _VERBS, _ADVERBS)]
    return f"{2 + secrets.randbelow(20)} {' '.join(words)}"


def dump_json(payload: Any, *, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(
    status: int,
    payload: Any,
    *,
    pretty: bool = False,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    return Response(status=status, body=dump_json(payload, pretty=pretty), headers=headers)


def error_payload(status: int, message: Optional[str] = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message or default_message(status), "help": ERROR_HELP}
    if status >= 500:
        error["phrase"] = make_phrase()
    return {"errors": [error]}


def error_response(
    status: int,
    message: Optional[str] = None,
    *,
    pretty: bool = False,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    return json_response(status, error_payload(status, message), pretty=pretty, headers=headers)
