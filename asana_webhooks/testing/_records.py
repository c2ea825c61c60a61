"""What the fake saw: requests it received and calls it made to webhook targets."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping, Optional

import attrs

# Header values that must never show up in a repr, a log line or an assertion message.
_SECRET_HEADERS = frozenset({"authorization", "x-hook-secret", "cookie", "proxy-authorization"})


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive HTTP headers; ``repr`` hides credentials and secrets."""

    __slots__ = ("_items", "_lookup")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(items)
        lookup: dict[str, str] = {}
        for name, value in self._items:
            lookup.setdefault(name.lower(), value)
        self._lookup = lookup

    def __getitem__(self, name: str) -> str:
        return self._lookup[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup)

    def __len__(self) -> int:
        return len(self._lookup)

    def items_as_sent(self) -> tuple[tuple[str, str], ...]:
        """Every header line with its original name and order (repeats included)."""
        return self._items

    def __repr__(self) -> str:
        shown = {
            name: ("<redacted>" if name.lower() in _SECRET_HEADERS else value)
            for name, value in self._items
        }
        return f"Headers({shown!r})"


def _decode_json(body: bytes) -> Any:
    return json.loads(body.decode("utf-8")) if body else None


@attrs.frozen
class RecordedRequest:
    """One request FakeAsana received, and what it did with it.

    ``path`` is relative to the ``/api/1.0`` base (``/webhooks/123``); ``raw_path`` is the
    request target exactly as sent. ``query`` keeps the last value of each parameter.
    ``status`` is what was sent back (``None`` when the connection was dropped) and ``fault``
    names the injected fault that shaped the answer: ``"fail"``, ``"drop"``, ``"truncate"``,
    ``"delay"``, ``"rate_limit"`` or ``None``. ``client_port`` tells connections apart
    (requests sent on one kept-alive connection share it).
    """

    method: str
    path: str
    raw_path: str
    query: Mapping[str, str]
    headers: Headers
    body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")
    status: Optional[int]
    fault: Optional[str]
    received_at: float
    client_port: int

    def json(self) -> Any:
        """The request body parsed as JSON (``None`` for an empty body)."""
        return _decode_json(self.body)


@attrs.frozen
class OutboundCall:
    """One POST FakeAsana made to a webhook target: a ``"handshake"`` or a ``"delivery"``.

    ``status`` is the HTTP status the target answered, or ``0`` when there was no HTTP answer
    (refused connection, timeout); ``error`` then says what happened.
    """

    kind: str
    webhook_gid: Optional[str]
    target: str
    request_headers: Headers
    body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")
    status: int
    reason: str
    response_headers: Headers
    response_body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")
    error: Optional[str]
    elapsed: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body FakeAsana sent, parsed as JSON (``None`` for the empty handshake body)."""
        return _decode_json(self.body)
