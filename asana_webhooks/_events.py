"""The events a webhook delivery carries: ``{"events": [Event, ...]}`` -> typed ``Event`` objects.

Every field but a ``gid`` may be missing or null (system events have no ``user``; ``parent`` is
only set on added/removed; ``change`` only on changed), so all else is ``Optional``. Unknown keys
are ignored: Asana adds fields. Scalars are checked strictly rather than coerced, and any failure
at all becomes ``InvalidPayloadError``, because the body comes from the network.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import typing
from typing import Any, Callable, Optional

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from asana_webhooks._converter import _expect as strict_scalar
from asana_webhooks._converter import _is_optional
from asana_webhooks._display import Displayable
from asana_webhooks._errors import AsanaError

_NoneType = type(None)
# Python 3.11 taught fromisoformat the "Z" suffix Asana sends; before that we rewrite it.
_FROMISO_TAKES_Z = sys.version_info >= (3, 11)


class InvalidPayloadError(AsanaError, ValueError):
    """A delivery body is not the JSON Asana sends (``{"events": [...]}``); the message says why."""


@attrs.define(slots=True)
class EventUser:
    """The user who triggered an event (``null`` on the event for system-made changes)."""

    gid: str
    resource_type: Optional[str] = None
    name: Optional[str] = None


@attrs.define(slots=True)
class EventResource:
    """A compact Asana object: what changed, or the parent it was added to or removed from."""

    gid: str
    resource_type: Optional[str] = None
    resource_subtype: Optional[str] = None
    name: Optional[str] = None


@attrs.define(slots=True)
class Change:
    """How a field of the resource changed; only present when ``Event.action == "changed"``.

    ``new_value``, ``added_value`` and ``removed_value`` are kept as the JSON Asana sent
    (often a compact resource dict with ``gid`` and ``resource_type``).
    """

    field: Optional[str] = None
    action: Optional[str] = None
    new_value: Any = None
    added_value: Any = None
    removed_value: Any = None


@attrs.define(slots=True)
class Event(Displayable):
    """One change Asana observed. Fetch the resource for its current state: events are compact.

    ``action`` is what happened to ``resource`` (added, changed, removed, deleted, undeleted);
    ``change.action`` is what happened to one of its fields. ``type`` is deprecated by Asana in
    favour of ``resource.resource_type``.
    """

    user: Optional[EventUser] = None
    resource: Optional[EventResource] = None
    type: Optional[str] = None
    action: Optional[str] = None
    parent: Optional[EventResource] = None
    created_at: Optional[_dt.datetime] = None
    change: Optional[Change] = None


def _parse_datetime(value: Any) -> _dt.datetime:
    if type(value) is not str:
        raise TypeError(f"expected a date-time string, got {type(value).__name__}")
    text = value if _FROMISO_TAKES_Z or value[-1:] not in "Zz" else value[:-1] + "+00:00"
    parsed = _dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"date-time without a timezone: {value!r}")
    return parsed


def _optional_factory(converter: cattrs.Converter) -> Callable[[Any], Any]:
    # A direct None-check per Optional field: cattrs' general union handling costs far more.
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        inner_type = next(arg for arg in typing.get_args(tp) if arg is not _NoneType)
        if inner_type is str:

            def optional_str(value: Any, _: Any) -> Optional[str]:
                if value is None or type(value) is str:
                    return value
                raise TypeError(f"expected str or null, got {type(value).__name__}")

            return optional_str
        if inner_type is _dt.datetime:
            return lambda value, _: None if value is None else _parse_datetime(value)
        inner = converter.get_structure_hook(inner_type)

        def optional(value: Any, _: Any) -> Any:
            return None if value is None else inner(value, inner_type)

        return optional

    return factory


def _object_hook(
    cls: type[Any], converter: cattrs.Converter, detailed: bool
) -> Callable[[Any, Any], Any]:
    generated = make_dict_structure_fn(cls, converter, _cattrs_detailed_validation=detailed)

    def hook(value: Any, _: Any) -> Any:
        # cattrs would index into a list or a string; Asana sends objects.
        if type(value) is not dict:
            raise TypeError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
        return generated(value, cls)

    return hook


def make_event_converter(
    converter: Optional[cattrs.Converter] = None, *, detailed_validation: bool = False
) -> cattrs.Converter:
    """Return ``converter`` (or a new one) with hooks that build ``Event`` and its parts.

    Nothing global is touched, so an application can add these hooks to its own converter.
    ``detailed_validation`` collects every error with its path, at a cost in speed.
    """
    c = converter or cattrs.Converter(detailed_validation=detailed_validation)
    c.register_structure_hook(str, strict_scalar(str))
    c.register_structure_hook(_dt.datetime, lambda value, _: _parse_datetime(value))
    c.register_structure_hook_func(lambda tp: tp is Any, lambda value, _: value)
    c.register_structure_hook_factory(_is_optional, _optional_factory(c))
    for cls in (EventUser, EventResource, Change, Event):
        c.register_structure_hook(cls, _object_hook(cls, c, detailed_validation))
    return c


_CONVERTER = make_event_converter()
_structure_event = _CONVERTER.get_structure_hook(Event)
# Built on the first malformed event only: it re-runs the failure to name the field at fault.
_DETAILED: Optional[cattrs.Converter] = None


def parse_events(body: bytes) -> list[Event]:
    """Parse a delivery body (``{"events": [...]}``) into events; a heartbeat gives ``[]``.

    Raises ``InvalidPayloadError`` naming the problem for anything else: bytes that are not
    JSON, a top level that is not an object with an ``events`` array, or an event of the wrong
    shape. Call it only on a body whose signature was verified.
    """
    return parse_events_raw(body)[1]


def parse_events_raw(body: bytes) -> tuple[list[Any], list[Event]]:
    """Like ``parse_events``, and also return the raw event objects (for an inbox to keep)."""
    try:
        document = json.loads(body)
    except Exception as exc:  # ValueError, UnicodeError, RecursionError on deep nesting, ...
        raise InvalidPayloadError(f"delivery body is not JSON ({_describe(exc)})") from None
    if type(document) is not dict:
        raise InvalidPayloadError(
            f"delivery body is a JSON {_json_kind(document)}, expected an object with 'events'"
        )
    if "events" not in document:
        raise InvalidPayloadError("delivery body has no 'events' key")
    raw_events = document["events"]
    if type(raw_events) is not list:
        raise InvalidPayloadError(f"'events' is a JSON {_json_kind(raw_events)}, expected an array")
    events = []
    for index, raw in enumerate(raw_events):
        try:
            events.append(_structure_event(raw, Event))
        except Exception as exc:  # anything the converter raises is a malformed event
            raise InvalidPayloadError(_describe_event_failure(raw, index, exc)) from None
    return raw_events, events


def event_from_raw(raw: Any) -> Event:
    """Build one ``Event`` from its raw JSON object (as an inbox stored it).

    Raises ``InvalidPayloadError`` naming the problem if it is not an event.
    """
    try:
        return _structure_event(raw, Event)  # type: ignore[no-any-return]
    except Exception as exc:
        raise InvalidPayloadError(_describe_event_failure(raw, 0, exc)) from None


def _describe_event_failure(raw: Any, index: int, first: BaseException) -> str:
    global _DETAILED
    try:
        if _DETAILED is None:
            _DETAILED = make_event_converter(detailed_validation=True)
        _DETAILED.structure(raw, Event)
    except Exception as exc:
        try:
            messages = cattrs.transform_error(
                exc, path=f"events[{index}]", format_exception=_format_field_error
            )
        except Exception:
            messages = []
        if messages:
            more = f" (and {len(messages) - 3} more)" if len(messages) > 3 else ""
            return "malformed event: " + "; ".join(messages[:3]) + more
    return f"malformed event: events[{index}]: {_describe(first)}"


def _format_field_error(exc: BaseException, _: Any) -> str:
    return "required key missing" if isinstance(exc, KeyError) else _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing required key {exc.args[0]!r}" if exc.args else "missing required key"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc)
    # Keep messages one short line: they end up in logs and HTTP answers.
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _json_kind(value: Any) -> str:
    kinds: dict[type[Any], str] = {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        _NoneType: "null",
    }
    return kinds.get(type(value), type(value).__name__)
