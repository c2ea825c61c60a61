"""Payloads for the equivalence tests: Asana-shaped webhooks, odd date-times, and
hypothesis strategies for webhooks valid and not."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
from hypothesis import strategies as st

UTC = dt.timezone.utc


def strict(value: Any) -> Any:
    """A model as nested tuples in which a datetime also carries its offset and class, and
    the keys the response had that the model does not declare are compared too."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        parts = [(f.name, strict(getattr(value, f.name))) for f in fields]
        unknown = getattr(value, "additional_properties", None)  # not a field: see _models
        if unknown is not None:
            parts.append(("additional_properties", strict(dict(unknown))))
        return (type(value).__name__, *parts)
    if isinstance(value, dt.datetime):
        return ("datetime", value, value.utcoffset(), type(value.tzinfo).__name__)
    if isinstance(value, list):
        return ["list", *(strict(v) for v in value)]
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    return (type(value).__name__, value)


def full_webhook(index: int = 0, created_at: str = "2012-02-22T02:06:58.147Z") -> dict[str, Any]:
    return {
        "gid": str(1204000000000000 + index),
        "resource_type": "webhook",
        "active": index % 2 == 0,
        "resource": {"gid": "12345", "resource_type": "project", "name": "Plan Q1 — équipe ✓"},
        "target": "https://example.com/receive-webhook/7654?team=a",
        "created_at": created_at,
        "last_failure_at": "2012-02-22T02:06:58.147+05:30",
        "last_failure_content": "500 Server Error\n\nCould not complete the request",
        "last_success_at": "2012-02-22T02:06:58-08:00",
        "delivery_retry_count": 2,
        "next_attempt_after": "2012-02-22T02:06:58.147000Z",
        "failure_deletion_timestamp": "2012-02-22T02:06:58Z",
        "filters": [
            {
                "resource_type": "task",
                "resource_subtype": "milestone",
                "action": "changed",
                "fields": ["due_at", "due_on", "dependencies"],
            },
            {"resource_type": "story", "resource_subtype": None, "action": "added"},
        ],
    }


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


NEXT_PAGE = {"offset": "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9", "path": "/webhooks?o=1", "uri": "u"}

DATETIMES = [
    "2012-02-22T02:06:58.147Z",
    "2012-02-22T02:06:58Z",
    "2012-02-22T02:06:58.1Z",
    "2012-02-22T02:06:58.12345Z",
    "2012-02-22T02:06:58.1234567Z",  # beyond microseconds: both round half up
    "2012-02-22T02:06:58.1234564999Z",
    "2012-12-31T23:59:59.9999999Z",  # rounding carries into the next year
    "2012-02-22T02:06:58.9999995Z",
    "2012-02-22T02:06:58.999999999+05:30",
    "2012-02-22t02:06:58z",
    "2012-02-22 02:06:58Z",
    "2012-02-22T02:06:58+0530",
    "2012-02-22T02:06:58-00:00",
    "2012-02-22T02:06:58+23:59",
    "2012-02-22T02:06:58+24:00",
    "2012-02-22T02:06:58",  # no offset
    "2012-02-22T02:06Z",
    "2012-02-22",
    "2012-W08-3T02:06:58Z",
    "2012-02-22T02:06:58,5Z",
    "2012-02-22T02:06:60Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999-01:00",
    "yesterday",
    "",
]


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
aware_datetimes = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    offsets,
)


@st.composite
def datetime_texts(draw: st.DrawFn) -> str:
    """RFC 3339 and ISO 8601 spellings, in the forms Asana sends and many it does not."""
    when = draw(aware_datetimes)
    digits = draw(st.sampled_from([0, 3, 6, 0, 3, 1, 2, 4, 5, 7, 9]))
    fraction = f"{when.microsecond:06d}" + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=3, max_size=3))
    )
    text = when.strftime("%Y-%m-%d") + draw(st.sampled_from("TTTt ")) + when.strftime("%H:%M:%S")
    if digits:
        text += "." + fraction[:digits]
    offset = when.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign, minutes = ("-", -minutes) if minutes < 0 else ("+", minutes)
    zone = draw(
        st.sampled_from(
            [
                "Z",
                "z",
                "",
                f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
                f"{sign}{minutes // 60:02d}{minutes % 60:02d}",
            ]
            if minutes == 0
            else [f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"] * 3
            + [f"{sign}{minutes // 60:02d}{minutes % 60:02d}", ""]
        )
    )
    return text + zone


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
names = st.text(max_size=20)  # any unicode, no surrogates


def maybe(value: st.SearchStrategy[Any], *, invalid: bool) -> st.SearchStrategy[Any]:
    """A field's value: usually valid, sometimes null, and (when asked) sometimes junk."""
    choices = [value, value, st.none()]
    return st.one_of(*choices, junk) if invalid else st.one_of(*choices)


#: Keys a model does not declare: one Asana sends, ones spelled like ours, any text.
UNKNOWN_KEY_NAMES = [
    "is_workspace_webhook",
    "additional_properties",
    "resource_subtype",
    "X-Hook-Secret",
    "_private",
    "",
]


def unknown_keys(*known: str) -> st.SearchStrategy[dict[str, Any]]:
    """Keys outside ``known`` with any JSON values: what a newer Asana may add to an object."""
    key = st.one_of(st.sampled_from(UNKNOWN_KEY_NAMES), st.text(max_size=6))
    return st.dictionaries(key.filter(lambda k: k not in known), junk, max_size=2)


def with_unknown_keys(
    draw: st.DrawFn, declared: st.SearchStrategy[dict[str, Any]], *known: str
) -> dict[str, Any]:
    """A drawn object, sometimes with unknown keys added (never replacing a declared one)."""
    value = draw(declared)
    if draw(st.booleans()):
        value = {**draw(unknown_keys(*known)), **value}
    return value


@st.composite
def webhook_payloads(draw: st.DrawFn, *, invalid: bool) -> dict[str, Any]:
    resource = with_unknown_keys(
        draw,
        st.fixed_dictionaries(
            {"gid": st.text(min_size=1, max_size=20)},
            optional={
                "resource_type": maybe(names, invalid=invalid),
                "name": maybe(names, invalid=invalid),
            },
        ),
        "gid",
        "resource_type",
        "name",
    )
    filter_keys = ("resource_type", "resource_subtype", "action", "fields")
    a_filter = st.tuples(
        st.fixed_dictionaries(
            {},
            optional={
                "resource_type": maybe(names, invalid=invalid),
                "resource_subtype": maybe(names, invalid=invalid),
                "action": maybe(st.sampled_from(["added", "changed", "removed"]), invalid=invalid),
                "fields": maybe(st.lists(names, max_size=3), invalid=invalid),
            },
        ),
        st.just({}) | unknown_keys(*filter_keys),
    ).map(lambda declared_and_unknown: {**declared_and_unknown[1], **declared_and_unknown[0]})
    when = st.one_of(datetime_texts(), st.sampled_from(DATETIMES)) if invalid else datetime_texts()
    optional = {
        "resource_type": maybe(st.just("webhook"), invalid=invalid),
        "active": maybe(st.booleans(), invalid=invalid),
        "resource": maybe(st.just(resource), invalid=invalid),
        "target": maybe(names, invalid=invalid),
        "created_at": maybe(when, invalid=invalid),
        "last_failure_at": maybe(when, invalid=invalid),
        "last_failure_content": maybe(names, invalid=invalid),
        "last_success_at": maybe(when, invalid=invalid),
        "delivery_retry_count": maybe(st.integers(min_value=0, max_value=2**64), invalid=invalid),
        "next_attempt_after": maybe(when, invalid=invalid),
        "failure_deletion_timestamp": maybe(when, invalid=invalid),
        "filters": maybe(st.lists(a_filter, max_size=3), invalid=invalid),
    }
    gid = (
        st.one_of(st.text(min_size=1, max_size=20), junk)
        if invalid
        else st.text(min_size=1, max_size=20)
    )
    return with_unknown_keys(
        draw, st.fixed_dictionaries({"gid": gid}, optional=optional), "gid", *optional
    )


def encoded(payload: Any, ascii_only: bool) -> bytes:
    return json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8")
