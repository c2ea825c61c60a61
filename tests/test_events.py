"""parse_events: Asana's delivery JSON -> typed events; anything else -> InvalidPayloadError."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asana_webhooks._events as events_module
from asana_webhooks import (
    AsanaError,
    Change,
    Event,
    EventResource,
    EventUser,
    InvalidPayloadError,
    parse_events,
)

ASSIGNEE_SET: dict[str, Any] = {
    "user": {"gid": "1201", "resource_type": "user", "name": "Ada"},
    "resource": {
        "gid": "1337",
        "resource_type": "task",
        "resource_subtype": "default_task",
        "name": "Write the receiver",
    },
    "type": "task",
    "action": "changed",
    "parent": None,
    "created_at": "2012-02-22T02:06:58.147Z",
    "change": {
        "field": "assignee",
        "action": "changed",
        "new_value": {"gid": "1202", "resource_type": "user"},
    },
}

ADDED_TO_PROJECT: dict[str, Any] = {
    "user": {"gid": "1201", "resource_type": "user"},
    "resource": {"gid": "1338", "resource_type": "task"},
    "action": "added",
    "parent": {"gid": "99", "resource_type": "project", "name": "Roadmap"},
    "created_at": "2024-05-01T10:00:00.000+02:00",
}


def body(*events: Any) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_a_changed_event_becomes_typed_objects() -> None:
    (event,) = parse_events(body(ASSIGNEE_SET))
    assert event == Event(
        user=EventUser(gid="1201", resource_type="user", name="Ada"),
        resource=EventResource(
            gid="1337",
            resource_type="task",
            resource_subtype="default_task",
            name="Write the receiver",
        ),
        type="task",
        action="changed",
        parent=None,
        created_at=dt.datetime(2012, 2, 22, 2, 6, 58, 147000, tzinfo=dt.timezone.utc),
        change=Change(
            field="assignee",
            action="changed",
            new_value={"gid": "1202", "resource_type": "user"},
        ),
    )


def test_created_at_is_timezone_aware_and_keeps_its_offset() -> None:
    added, changed = parse_events(body(ADDED_TO_PROJECT, ASSIGNEE_SET))
    assert added.created_at is not None
    assert changed.created_at is not None
    assert added.created_at.utcoffset() == dt.timedelta(hours=2)
    assert changed.created_at.utcoffset() == dt.timedelta(0)
    assert added.created_at == dt.datetime(2024, 5, 1, 8, tzinfo=dt.timezone.utc)


def test_the_z_suffix_is_understood_before_python_3_11(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "_FROMISO_TAKES_Z", False)
    (event,) = parse_events(body(ASSIGNEE_SET))
    assert event.created_at == dt.datetime(2012, 2, 22, 2, 6, 58, 147000, tzinfo=dt.timezone.utc)


def test_a_heartbeat_has_no_events() -> None:
    assert parse_events(b'{"events": []}') == []


def test_added_event_has_a_parent_and_no_change() -> None:
    (event,) = parse_events(body(ADDED_TO_PROJECT))
    assert event.parent == EventResource(gid="99", resource_type="project", name="Roadmap")
    assert event.change is None
    assert event.user == EventUser(gid="1201", resource_type="user", name=None)


def test_nulls_and_missing_fields_are_tolerated() -> None:
    system_event = {"user": None, "resource": {"gid": "5"}, "action": None, "created_at": None}
    (event,) = parse_events(body(system_event, {}))[:1]
    assert event == Event(user=None, resource=EventResource(gid="5"))
    assert parse_events(body({})) == [Event()]


def test_unknown_keys_are_ignored_at_every_level() -> None:
    future = dict(ASSIGNEE_SET, brand_new_field=[1, 2])
    future["resource"] = dict(ASSIGNEE_SET["resource"], color="red")
    future["change"] = dict(ASSIGNEE_SET["change"], extra={"x": 1})
    (event,) = parse_events(json.dumps({"events": [future], "also": True}).encode())
    assert event == parse_events(body(ASSIGNEE_SET))[0]


@pytest.mark.parametrize(
    "value", [{"gid": "3", "resource_type": "tag"}, [1, "a"], "text", 12.5, True, None]
)
def test_change_values_are_kept_as_the_json_asana_sent(value: Any) -> None:
    change = {"field": "tags", "action": "added", "added_value": value, "removed_value": value}
    (event,) = parse_events(body({"action": "changed", "change": change}))
    assert event.change is not None
    assert event.change.added_value == value
    assert event.change.removed_value == value
    assert event.change.new_value is None


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "not JSON"),
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[]", "JSON array"),
        (b"null", "JSON null"),
        (b'"events"', "JSON string"),
        (b"{}", "no 'events'"),
        (b'{"data": []}', "no 'events'"),
        (b'{"events": null}', "'events' is a JSON null"),
        (b'{"events": {"0": {}}}', "'events' is a JSON object"),
        (b'{"events": [1]}', "events[0]"),
        (b'{"events": [{}, "x"]}', "events[1]"),
        (b'{"events": [{"resource": {}}]}', "events[0].resource.gid"),
        (b'{"events": [{"resource": {"gid": 5}}]}', "events[0].resource.gid"),
        (b'{"events": [{"user": {"gid": "1", "name": 7}}]}', "events[0].user.name"),
        (b'{"events": [{"user": []}]}', "events[0].user"),
        (b'{"events": [{"change": "assignee"}]}', "events[0].change"),
        (b'{"events": [{"action": ["changed"]}]}', "events[0].action"),
        (b'{"events": [{"created_at": "2012-02-22T02:06:58"}]}', "without a timezone"),
        (b'{"events": [{"created_at": "yesterday"}]}', "events[0].created_at"),
        (b'{"events": [{"created_at": 1329876418}]}', "events[0].created_at"),
    ],
)
def test_a_wrong_body_is_a_typed_error_naming_the_problem(payload: bytes, problem: str) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_events(payload)
    assert problem in str(caught.value), f"message {str(caught.value)!r} should mention {problem!r}"
    assert isinstance(caught.value, AsanaError)
    # Raised "from None": no cattrs or json internals leak out as the cause.
    assert caught.value.__cause__ is None


def test_structuring_is_strict_not_coercing() -> None:
    with pytest.raises(InvalidPayloadError):
        parse_events(b'{"events": [{"resource": {"gid": 1337, "resource_type": "task"}}]}')
    with pytest.raises(InvalidPayloadError):
        parse_events(b'{"events": [{"type": true}]}')


def test_a_large_batch_parses() -> None:
    events = parse_events(body(*([ASSIGNEE_SET, ADDED_TO_PROJECT] * 500)))
    assert len(events) == 1000
    assert events[-1].action == "added"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
event_keys = st.sampled_from(
    ["user", "resource", "type", "action", "parent", "created_at", "change", "gid", "field"]
)
event_like = st.dictionaries(
    event_keys,
    json_values
    | st.dictionaries(
        st.sampled_from(["gid", "resource_type", "name", "field", "new_value"]),
        json_values,
        max_size=4,
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    document=st.one_of(
        json_values,
        st.fixed_dictionaries({"events": st.lists(event_like | json_values, max_size=4)}),
    )
)
def test_arbitrary_json_gives_events_or_invalid_payload_never_another_error(document: Any) -> None:
    try:
        result = parse_events(json.dumps(document).encode())
    except InvalidPayloadError:
        return
    assert all(isinstance(event, Event) for event in result)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_give_events_or_invalid_payload(raw: bytes) -> None:
    with contextlib.suppress(InvalidPayloadError):
        parse_events(raw)
