"""The msgspec fast path gives exactly what cattrs gives, or both refuse the body.

cattrs is the converter of record: ``decode(body, cls, fast=True)`` may only ever be a
quicker way to the same objects. "The same" is stricter here than ``==`` on the models:
an aware datetime compares equal to the same instant in another offset, so every datetime
is also compared by its offset.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Optional

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asana_webhooks import _converter
from asana_webhooks import _models as m
from asana_webhooks._converter import decode
from asana_webhooks._errors import InvalidResponseError

UTC = dt.timezone.utc

pytestmark = pytest.mark.skipif(
    not _converter.FAST_PATH_AVAILABLE, reason="the msgspec fast path (speed extra) is missing"
)

RESPONSE_CLASSES = (m.GetWebhook200Response, m.GetWebhooks200Response, m.EmptyResponse)


def _strict(value: Any) -> Any:
    """A model as nested tuples in which a datetime also carries its offset and class."""
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return (type(value).__name__, *((f.name, _strict(getattr(value, f.name))) for f in fields))
    if isinstance(value, dt.datetime):
        return ("datetime", value, value.utcoffset(), type(value.tzinfo).__name__)
    if isinstance(value, list):
        return ["list", *(_strict(v) for v in value)]
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    return (type(value).__name__, value)


def _outcome(body: bytes, cls: type[Any], *, fast: bool) -> Any:
    try:
        return _strict(decode(body, cls, fast=fast))
    except InvalidResponseError:
        return "InvalidResponseError"


def assert_same(body: bytes, cls: type[Any]) -> Any:
    cattrs_says = _outcome(body, cls, fast=False)
    msgspec_says = _outcome(body, cls, fast=True)
    assert msgspec_says == cattrs_says, f"fast path differs from cattrs on {body[:300]!r}"
    return cattrs_says


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


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


NEXT_PAGE = {"offset": "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9", "path": "/webhooks?o=1", "uri": "u"}

FIXTURES: list[tuple[str, type[Any], bytes]] = [
    ("full webhook", m.GetWebhook200Response, _body({"data": full_webhook()})),
    ("compact webhook", m.GetWebhook200Response, _body({"data": {"gid": "1"}})),
    (
        "every optional field null",
        m.GetWebhook200Response,
        _body({"data": {k: (v if k == "gid" else None) for k, v in full_webhook().items()}}),
    ),
    ("data null", m.GetWebhook200Response, _body({"data": None})),
    ("no data", m.GetWebhook200Response, _body({"unexpected": 1})),
    ("unknown fields", m.GetWebhook200Response, _body({"data": {"gid": "1", "new": [1, {}]}})),
    (
        "page with next_page",
        m.GetWebhooks200Response,
        _body({"data": [full_webhook(i) for i in range(100)], "next_page": NEXT_PAGE}),
    ),
    ("last page", m.GetWebhooks200Response, _body({"data": [full_webhook()], "next_page": None})),
    ("empty page", m.GetWebhooks200Response, _body({"data": [], "next_page": None})),
    ("listing without data", m.GetWebhooks200Response, _body({"next_page": None})),
    ("listing data null", m.GetWebhooks200Response, _body({"data": None})),
    ("delete answer", m.EmptyResponse, _body({"data": {}})),
    ("delete answer with extras", m.EmptyResponse, _body({"data": {"a": [1, 2.5, None]}})),
    ("gid a number", m.GetWebhook200Response, _body({"data": {"gid": 5}})),
    ("active a string", m.GetWebhook200Response, _body({"data": {"gid": "1", "active": "yes"}})),
    (
        "count a float",
        m.GetWebhook200Response,
        b'{"data": {"gid": "1", "delivery_retry_count": 1.0}}',
    ),
    (
        "count a bool",
        m.GetWebhook200Response,
        _body({"data": {"gid": "1", "delivery_retry_count": True}}),
    ),
    (
        "count huge",
        m.GetWebhook200Response,
        b'{"data": {"gid": "1", "delivery_retry_count": 1' + b"0" * 30 + b"}}",
    ),
    (
        "filters a string",
        m.GetWebhook200Response,
        _body({"data": {"gid": "1", "filters": "changed"}}),
    ),
    ("filter a string", m.GetWebhook200Response, _body({"data": {"gid": "1", "filters": ["abc"]}})),
    (
        "resource without gid",
        m.GetWebhook200Response,
        _body({"data": {"gid": "1", "resource": {}}}),
    ),
    ("duplicate keys", m.GetWebhook200Response, b'{"data": {"gid": "1", "gid": "2"}}'),
    ("lone surrogate", m.GetWebhook200Response, b'{"data": {"gid": "1", "target": "\\ud800"}}'),
    (
        "escaped ascii",
        m.GetWebhook200Response,
        b'{"data": {"gid": "\\u0031", "target": "\\u00e9"}}',
    ),
    ("byte order mark", m.GetWebhook200Response, b'\xef\xbb\xbf{"data": {"gid": "1"}}'),
    ("utf-16", m.GetWebhook200Response, '{"data": {"gid": "1"}}'.encode("utf-16")),
    ("NaN", m.GetWebhook200Response, b'{"data": {"gid": "1", "delivery_retry_count": NaN}}'),
    ("not JSON", m.GetWebhook200Response, b"<html>502 Bad Gateway</html>"),
    ("truncated", m.GetWebhook200Response, b'{"data": {"gid": "1", "tar'),
    ("empty body", m.GetWebhook200Response, b""),
    ("an array", m.GetWebhook200Response, b"[1, 2]"),
]

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


@pytest.mark.parametrize(
    ("cls", "body"), [(c, b) for _, c, b in FIXTURES], ids=[n for n, _, _ in FIXTURES]
)
def test_each_fixture_decodes_alike_on_both_paths(cls: type[Any], body: bytes) -> None:
    assert_same(body, cls)


@pytest.mark.parametrize("when", DATETIMES)
def test_each_odd_datetime_decodes_alike_on_both_paths(when: str) -> None:
    for field in ("created_at", "next_attempt_after"):
        assert_same(_body({"data": {"gid": "1", field: when}}), m.GetWebhook200Response)
    assert_same(_body({"data": [full_webhook(created_at=when)]}), m.GetWebhooks200Response)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2012-02-22T02:06:58.1234564Z", dt.datetime(2012, 2, 22, 2, 6, 58, 123456, tzinfo=UTC)),
        ("2012-02-22T02:06:58.1234565Z", dt.datetime(2012, 2, 22, 2, 6, 58, 123457, tzinfo=UTC)),
        ("2012-12-31T23:59:59.9999995Z", dt.datetime(2013, 1, 1, tzinfo=UTC)),
        # A JSON escape of a digit ("\\u0035" is "5") is read after unescaping, alike.
        (
            "2012-02-22T02:06:58.123456\\u0035Z",
            dt.datetime(2012, 2, 22, 2, 6, 58, 123457, tzinfo=UTC),
        ),
    ],
)
def test_a_fraction_beyond_microseconds_is_rounded_on_both_paths(
    when: str, expected: dt.datetime
) -> None:
    body = b'{"data": {"gid": "1", "created_at": "%s"}}' % when.encode()
    for fast in (True, False):
        webhook = decode(body, m.GetWebhook200Response, fast=fast).data
        assert webhook is not None
        assert webhook.created_at == expected, f"fast={fast} read {when} as {webhook.created_at}"


def test_the_fast_path_is_taken_for_what_asana_sends() -> None:
    # Otherwise the equality above would hold trivially, by always falling back.
    for name, cls, body in FIXTURES[:3] + FIXTURES[6:8] + FIXTURES[11:13]:
        assert _converter._fast_decode(body, cls) is not None, name


# --- property-based: generated payloads, valid and not --------------------------------

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


@st.composite
def webhook_payloads(draw: st.DrawFn, *, invalid: bool) -> dict[str, Any]:
    resource = draw(
        st.fixed_dictionaries(
            {"gid": st.text(min_size=1, max_size=20)},
            optional={
                "resource_type": maybe(names, invalid=invalid),
                "name": maybe(names, invalid=invalid),
            },
        )
    )
    a_filter = st.fixed_dictionaries(
        {},
        optional={
            "resource_type": maybe(names, invalid=invalid),
            "resource_subtype": maybe(names, invalid=invalid),
            "action": maybe(st.sampled_from(["added", "changed", "removed"]), invalid=invalid),
            "fields": maybe(st.lists(names, max_size=3), invalid=invalid),
        },
    )
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
    return draw(st.fixed_dictionaries({"gid": gid}, optional=optional))


def encoded(payload: Any, ascii_only: bool) -> bytes:
    return json.dumps(payload, ensure_ascii=ascii_only).encode("utf-8")


@given(webhook=webhook_payloads(invalid=False), ascii_only=st.booleans())
@example(webhook={"gid": "1", "created_at": "2012-02-22T02:06:58.1234567Z"}, ascii_only=True)
def test_valid_webhooks_decode_alike(webhook: dict[str, Any], ascii_only: bool) -> None:
    result = assert_same(encoded({"data": webhook}, ascii_only), m.GetWebhook200Response)
    # Valid payloads are read, except a generated date-time without an offset.
    assert result != "InvalidResponseError" or _has_unreadable_datetime(webhook)


def _has_unreadable_datetime(webhook: dict[str, Any]) -> bool:
    # A generated date-time without an offset is refused on both paths, as it should be.
    for key in (
        "created_at",
        "last_failure_at",
        "last_success_at",
        "next_attempt_after",
        "failure_deletion_timestamp",
    ):
        value: Optional[str] = webhook.get(key)
        if value is not None:
            try:
                _converter.parse_datetime(value)
            except ValueError:
                return True
    return False


@given(
    webhooks=st.lists(webhook_payloads(invalid=False), max_size=4),
    next_page=st.one_of(st.none(), st.just(NEXT_PAGE)),
    ascii_only=st.booleans(),
)
def test_valid_pages_decode_alike(
    webhooks: list[dict[str, Any]], next_page: Optional[dict[str, str]], ascii_only: bool
) -> None:
    assert_same(
        encoded({"data": webhooks, "next_page": next_page}, ascii_only), m.GetWebhooks200Response
    )


@given(webhook=webhook_payloads(invalid=True), ascii_only=st.booleans())
def test_invalid_webhooks_are_refused_alike_or_read_alike(
    webhook: dict[str, Any], ascii_only: bool
) -> None:
    assert_same(encoded({"data": webhook}, ascii_only), m.GetWebhook200Response)
    assert_same(
        encoded({"data": [webhook], "next_page": None}, ascii_only), m.GetWebhooks200Response
    )


@given(
    payload=st.recursive(
        junk,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["data", "gid", "next_page", "filters"]), inner, max_size=3
            )
        ),
        max_leaves=10,
    )
)
def test_arbitrary_json_is_refused_alike_or_read_alike(payload: Any) -> None:
    for cls in RESPONSE_CLASSES:
        assert_same(encoded(payload, True), cls)


@given(body=st.binary(max_size=64))
def test_arbitrary_bytes_are_refused_alike_or_read_alike(body: bytes) -> None:
    for cls in RESPONSE_CLASSES:
        assert_same(body, cls)
