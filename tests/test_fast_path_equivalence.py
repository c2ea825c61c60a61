"""The msgspec fast path gives exactly what cattrs gives, or both refuse the body.

cattrs is the converter of record: ``decode(body, cls, fast=True)`` may only ever be a
quicker way to the same objects. "The same" is stricter here than ``==`` on the models:
an aware datetime compares equal to the same instant in another offset, so every datetime
is also compared by its offset.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asana_webhooks import _converter
from asana_webhooks import _models as m
from asana_webhooks._converter import decode
from asana_webhooks._errors import InvalidResponseError
from tests._payloads import (
    DATETIMES,
    NEXT_PAGE,
    body_of,
    encoded,
    full_webhook,
    junk,
    strict,
    webhook_payloads,
)

UTC = dt.timezone.utc

pytestmark = pytest.mark.skipif(
    not _converter.FAST_PATH_AVAILABLE, reason="the msgspec fast path (speed extra) is missing"
)

RESPONSE_CLASSES = (m.GetWebhook200Response, m.GetWebhooks200Response, m.EmptyResponse)


def _outcome(body: bytes, cls: type[Any], *, fast: bool) -> Any:
    try:
        return strict(decode(body, cls, fast=fast))
    except InvalidResponseError:
        return "InvalidResponseError"


def assert_same(body: bytes, cls: type[Any]) -> Any:
    cattrs_says = _outcome(body, cls, fast=False)
    msgspec_says = _outcome(body, cls, fast=True)
    assert msgspec_says == cattrs_says, f"fast path differs from cattrs on {body[:300]!r}"
    return cattrs_says


FIXTURES: list[tuple[str, type[Any], bytes]] = [
    ("full webhook", m.GetWebhook200Response, body_of({"data": full_webhook()})),
    ("compact webhook", m.GetWebhook200Response, body_of({"data": {"gid": "1"}})),
    (
        "every optional field null",
        m.GetWebhook200Response,
        body_of({"data": {k: (v if k == "gid" else None) for k, v in full_webhook().items()}}),
    ),
    ("data null", m.GetWebhook200Response, body_of({"data": None})),
    ("no data", m.GetWebhook200Response, body_of({"unexpected": 1})),
    ("unknown fields", m.GetWebhook200Response, body_of({"data": {"gid": "1", "new": [1, {}]}})),
    (
        "page with next_page",
        m.GetWebhooks200Response,
        body_of({"data": [full_webhook(i) for i in range(100)], "next_page": NEXT_PAGE}),
    ),
    ("last page", m.GetWebhooks200Response, body_of({"data": [full_webhook()], "next_page": None})),
    ("empty page", m.GetWebhooks200Response, body_of({"data": [], "next_page": None})),
    ("listing without data", m.GetWebhooks200Response, body_of({"next_page": None})),
    ("listing data null", m.GetWebhooks200Response, body_of({"data": None})),
    ("delete answer", m.EmptyResponse, body_of({"data": {}})),
    ("delete answer with extras", m.EmptyResponse, body_of({"data": {"a": [1, 2.5, None]}})),
    ("gid a number", m.GetWebhook200Response, body_of({"data": {"gid": 5}})),
    ("active a string", m.GetWebhook200Response, body_of({"data": {"gid": "1", "active": "yes"}})),
    (
        "count a float",
        m.GetWebhook200Response,
        b'{"data": {"gid": "1", "delivery_retry_count": 1.0}}',
    ),
    (
        "count a bool",
        m.GetWebhook200Response,
        body_of({"data": {"gid": "1", "delivery_retry_count": True}}),
    ),
    (
        "count huge",
        m.GetWebhook200Response,
        b'{"data": {"gid": "1", "delivery_retry_count": 1' + b"0" * 30 + b"}}",
    ),
    (
        "filters a string",
        m.GetWebhook200Response,
        body_of({"data": {"gid": "1", "filters": "changed"}}),
    ),
    (
        "filter a string",
        m.GetWebhook200Response,
        body_of({"data": {"gid": "1", "filters": ["abc"]}}),
    ),
    (
        "resource without gid",
        m.GetWebhook200Response,
        body_of({"data": {"gid": "1", "resource": {}}}),
    ),
    ("duplicate keys", m.GetWebhook200Response, b'{"data": {"gid": "1", "gid": "2"}}'),
    ("lone surrogate", m.GetWebhook200Response, b'{"data": {"gid": "1", "target": "\\ud800"}}'),
    (
        "escaped ascii",
        m.GetWebhook200Response,
        b'{"data": {"gid": "\\u0031", "target": "\\u00e9"}}',
    ),
    (
        "unknown keys everywhere",
        m.GetWebhooks200Response,
        body_of(
            {
                "data": [
                    {
                        **full_webhook(i),
                        "is_workspace_webhook": i % 2 == 0,
                        "resource": {"gid": "5", "resource_subtype": "default_task", "x": [i]},
                        "filters": [{"action": "added", "new": {"a": None}}],
                    }
                    for i in range(20)
                ],
                "next_page": {**NEXT_PAGE, "expires": 1},
                "sync": "abc",
            }
        ),
    ),
    (
        "a key named like the field",
        m.GetWebhook200Response,
        body_of({"data": {"gid": "1", "additional_properties": {"a": 1}}}),
    ),
    ("unknown keys in a delete", m.EmptyResponse, body_of({"data": {}, "extra": 1})),
    ("byte order mark", m.GetWebhook200Response, b'\xef\xbb\xbf{"data": {"gid": "1"}}'),
    ("utf-16", m.GetWebhook200Response, '{"data": {"gid": "1"}}'.encode("utf-16")),
    ("NaN", m.GetWebhook200Response, b'{"data": {"gid": "1", "delivery_retry_count": NaN}}'),
    ("not JSON", m.GetWebhook200Response, b"<html>502 Bad Gateway</html>"),
    ("truncated", m.GetWebhook200Response, b'{"data": {"gid": "1", "tar'),
    ("empty body", m.GetWebhook200Response, b""),
    ("an array", m.GetWebhook200Response, b"[1, 2]"),
]


@pytest.mark.parametrize(
    ("cls", "body"), [(c, b) for _, c, b in FIXTURES], ids=[n for n, _, _ in FIXTURES]
)
def test_each_fixture_decodes_alike_on_both_paths(cls: type[Any], body: bytes) -> None:
    assert_same(body, cls)


@pytest.mark.parametrize("when", DATETIMES)
def test_each_odd_datetime_decodes_alike_on_both_paths(when: str) -> None:
    for field in ("created_at", "next_attempt_after"):
        assert_same(body_of({"data": {"gid": "1", field: when}}), m.GetWebhook200Response)
    assert_same(body_of({"data": [full_webhook(created_at=when)]}), m.GetWebhooks200Response)


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


def test_unknown_keys_are_kept_on_both_paths_at_every_level() -> None:
    webhook = {
        **full_webhook(),
        "is_workspace_webhook": False,
        "resource": {"gid": "5", "resource_subtype": "default_task"},
        "filters": [{"action": "added", "since": "2024"}],
    }
    for cls, body in (
        (m.GetWebhook200Response, body_of({"data": webhook, "sync": "s"})),
        (m.GetWebhooks200Response, body_of({"data": [webhook] * 20, "sync": "s"})),
    ):
        for fast in (True, False):
            decoded = decode(body, cls, fast=fast)
            one = decoded.data[7] if isinstance(decoded.data, list) else decoded.data
            assert one is not None
            where = f"{cls.__name__}, fast={fast}"
            assert dict(decoded.additional_properties) == {"sync": "s"}, where
            assert dict(one.additional_properties) == {"is_workspace_webhook": False}, where
            assert one.resource is not None and one.filters is not None
            assert dict(one.resource.additional_properties) == {"resource_subtype": "default_task"}
            assert dict(one.filters[0].additional_properties) == {"since": "2024"}, where
            with pytest.raises(TypeError):
                one.additional_properties["is_workspace_webhook"] = True  # type: ignore[index]


def test_the_fast_path_still_decodes_bodies_without_unknown_keys_itself() -> None:
    # Checking for unknown keys must not send every body to cattrs.
    body = body_of({"data": [full_webhook(i) for i in range(100)], "next_page": NEXT_PAGE})
    assert _converter._fast_decode(body, m.GetWebhooks200Response) is not None


def test_a_key_asana_adds_to_every_webhook_is_learned_and_read_on_the_fast_path() -> None:
    # msgspec drops undeclared keys; the key check learns each one it meets, once, so a
    # page where every webhook has it still decodes on the fast path, keeping it.
    key = "added_by_a_newer_asana"
    body = body_of({"data": [{**full_webhook(i), key: i} for i in range(30)]})
    for _ in range(2):
        page = _converter._fast_decode(body, m.GetWebhooks200Response)
        assert page is not None, "a page with a new key went to cattrs"
        assert [dict(w.additional_properties) for w in page.data] == [{key: i} for i in range(30)]
    learned = _converter._KEY_CHECKS[m.GetWebhooks200Response].learned
    assert key in learned[m.WebhookResponse], learned
    # A body without it after all: nothing is handed to the models.
    again = _converter._fast_decode(body_of({"data": [full_webhook()]}), m.GetWebhooks200Response)
    assert again is not None and dict(again.data[0].additional_properties) == {}


def test_a_key_the_check_cannot_learn_goes_to_cattrs_and_is_kept() -> None:
    body = body_of({"data": {"gid": "1", "two\nlines": True}})  # not on one line of a message
    assert _converter._fast_decode(body, m.GetWebhook200Response) is None
    webhook = decode(body, m.GetWebhook200Response, fast=True).data
    assert webhook is not None and dict(webhook.additional_properties) == {"two\nlines": True}


# --- property-based: generated payloads, valid and not --------------------------------


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
