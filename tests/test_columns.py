"""Long lists are structured column by column, to exactly what the hooks give item by item.

``asana_webhooks/_columns.py`` builds a list of 16 or more models a field at a time. It must
either produce what cattrs' per-item hooks produce, field for field (date-times compared
with their offsets too), or step aside so the hooks decide: so both ways accept the same
pages and refuse the same pages with the same error. The reference is a converter made with
``columns=False``; the converter under test is the one the client decodes with.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asana_webhooks import _converter, make_converter
from asana_webhooks import _models as m
from tests._payloads import DATETIMES, full_webhook, strict, webhook_payloads

BY_ITEM = make_converter(columns=False)
BY_COLUMN = _converter._FAST
PAGE = m.GetWebhooks200Response
SIZE = _converter._COLUMNS_FROM


def outcome(converter: Any, data: Any) -> Any:
    try:
        return strict(converter.structure(data, PAGE))
    except Exception as exc:
        return ("refused", type(exc).__name__, str(exc))


def assert_same(data: Any) -> Any:
    by_item = outcome(BY_ITEM, data)
    by_column = outcome(BY_COLUMN, data)
    assert by_column == by_item, f"columns differ from the hooks on {json.dumps(data)[:400]}"
    return by_item


def page(webhooks: list[Any]) -> dict[str, Any]:
    return {"data": webhooks, "next_page": None}


def padded(odd: list[Any], at: int, size: int = SIZE) -> list[Any]:
    """``odd`` placed at ``at`` among ordinary full webhooks, ``size`` items in all."""
    ordinary = [full_webhook(i) for i in range(size - len(odd))]
    return ordinary[:at] + odd + ordinary[at:]


def compact(index: int) -> dict[str, Any]:
    full = full_webhook(index)
    return {k: full[k] for k in ("gid", "resource_type", "active", "resource", "target")}


def mixed_nulls(index: int) -> dict[str, Any]:
    """A full webhook with some fields null or missing, differently for each index."""
    webhook = full_webhook(index)
    for n, key in enumerate(list(webhook)[1:]):
        if (index + n) % 3 == 0:
            webhook[key] = None
        elif (index + n) % 5 == 0:
            del webhook[key]
    if index % 4 == 1:
        webhook["filters"] = []
    if index % 4 == 2 and webhook.get("filters"):
        webhook["filters"][0]["fields"] = None
    return webhook


class Text(str):
    """A str subclass: no JSON decoder makes one, but ``structure`` may be handed one."""


def hook_for_lists() -> Any:
    return BY_COLUMN.get_structure_hook(list[m.WebhookResponse])


# --- the column path is really taken --------------------------------------------------


@pytest.mark.parametrize(
    "webhooks",
    [
        [full_webhook(i) for i in range(100)],
        [compact(i) for i in range(100)],
        [mixed_nulls(i) for i in range(40)],
        [full_webhook(i) for i in range(SIZE)],
    ],
    ids=["100 full", "100 compact", "40 with nulls", "threshold"],
)
def test_the_column_path_builds_what_asana_sends(webhooks: list[Any]) -> None:
    # Otherwise every comparison below would hold trivially, by always stepping aside.
    built = hook_for_lists().rows(webhooks)
    assert built is not None, "the column path stepped aside on an ordinary page"
    expected = BY_ITEM.structure(page(webhooks), PAGE).data
    assert strict(built) == strict(expected)


def with_unknown_keys(index: int) -> dict[str, Any]:
    """A full webhook with keys no model declares, at each level, for some indexes."""
    webhook = full_webhook(index)
    if index % 3 == 0:
        webhook["is_workspace_webhook"] = index % 2 == 0
    if index % 4 == 1:
        webhook["resource"] = {**webhook["resource"], "resource_subtype": "default_task"}
    if index % 5 == 2:
        webhook["filters"] = [{**webhook["filters"][0], "since": index}]
    return webhook


def test_unknown_keys_land_on_their_own_objects_on_the_column_path() -> None:
    webhooks = [with_unknown_keys(i) for i in range(40)]
    built = hook_for_lists().rows(webhooks)
    assert built is not None, "unknown keys sent the column path aside"
    assert strict(built) == strict(BY_ITEM.structure(page(webhooks), PAGE).data)
    for i, webhook in enumerate(built):
        expected = {"is_workspace_webhook": i % 2 == 0} if i % 3 == 0 else {}
        assert dict(webhook.additional_properties) == expected, i
        subtype = {"resource_subtype": "default_task"} if i % 4 == 1 else {}
        assert dict(webhook.resource.additional_properties) == subtype, i
        since = {"since": i} if i % 5 == 2 else {}
        assert dict(webhook.filters[0].additional_properties) == since, i


def test_short_lists_and_the_reference_go_item_by_item() -> None:
    assert BY_ITEM.get_structure_hook(list[m.WebhookResponse]).rows is None
    calls: list[int] = []
    hook = hook_for_lists()
    original = hook.rows
    try:
        hook.rows = lambda objects: calls.append(len(objects))  # a spy, never builds
        hook([full_webhook(i) for i in range(SIZE - 1)], list[m.WebhookResponse])
    finally:
        hook.rows = original
    assert calls == [], "a list shorter than the threshold went through columns"


def test_a_page_of_100_decodes_alike_through_the_client_path() -> None:
    body = json.dumps(page([full_webhook(i) for i in range(100)])).encode()
    decoded = _converter.decode(body, PAGE, fast=False)
    assert strict(decoded) == strict(BY_ITEM.structure(json.loads(body), PAGE))


# --- fixtures: what a page can hold, valid and not, anywhere in the list ------------------

ODD_WEBHOOKS: list[tuple[str, Any]] = [
    ("compact", compact(1)),
    (
        "every optional field null",
        {k: (v if k == "gid" else None) for k, v in full_webhook().items()},
    ),
    ("only a gid", {"gid": "7"}),
    ("unknown fields", {**full_webhook(), "new": [1, {}], "resource_subtype": "x"}),
    ("a key named like the field", {**full_webhook(), "additional_properties": {"a": 1}}),
    (
        "unknown fields in a resource and a filter",
        {**full_webhook(), "resource": {"gid": "1", "z": 1}, "filters": [{"action": "x", "y": 2}]},
    ),
    ("no filters, empty filters", {**full_webhook(), "filters": []}),
    ("a filter with no fields key", {**full_webhook(), "filters": [{"action": "added"}]}),
    ("a filter's fields empty", {**full_webhook(), "filters": [{"fields": []}]}),
    ("gid missing", {k: v for k, v in full_webhook().items() if k != "gid"}),
    ("gid a number", {**full_webhook(), "gid": 5}),
    ("gid null", {**full_webhook(), "gid": None}),
    ("gid a str subclass", {**full_webhook(), "gid": Text("5")}),
    ("target a str subclass", {**full_webhook(), "target": Text("https://x")}),
    ("active a string", {**full_webhook(), "active": "yes"}),
    ("count a bool", {**full_webhook(), "delivery_retry_count": True}),
    ("count a float", {**full_webhook(), "delivery_retry_count": 1.0}),
    ("count huge", {**full_webhook(), "delivery_retry_count": 10**30}),
    ("resource a string", {**full_webhook(), "resource": "12345"}),
    ("resource without gid", {**full_webhook(), "resource": {"name": "x"}}),
    ("resource gid a number", {**full_webhook(), "resource": {"gid": 12345}}),
    ("resource a list", {**full_webhook(), "resource": [{"gid": "1"}]}),
    ("filters a string", {**full_webhook(), "filters": "changed"}),
    ("filters a dict", {**full_webhook(), "filters": {"action": "added"}}),
    ("a filter a string", {**full_webhook(), "filters": ["abc"]}),
    ("a filter null", {**full_webhook(), "filters": [None]}),
    ("a filter's fields a string", {**full_webhook(), "filters": [{"fields": "due_on"}]}),
    ("a filter's field a number", {**full_webhook(), "filters": [{"fields": ["due_on", 1]}]}),
    ("a filter's field null", {**full_webhook(), "filters": [{"fields": [None]}]}),
    ("created_at a number", {**full_webhook(), "created_at": 5}),
    ("created_at a list", {**full_webhook(), "created_at": ["2012-02-22T02:06:58Z"]}),
    ("a webhook null", None),
    ("a webhook a string", "1204000000000000"),
    ("a webhook a list", [full_webhook()]),
]


@pytest.mark.parametrize("odd", [w for _, w in ODD_WEBHOOKS], ids=[n for n, _ in ODD_WEBHOOKS])
@pytest.mark.parametrize("at", [0, SIZE // 2, SIZE - 1])
def test_each_odd_webhook_reads_or_is_refused_alike(odd: Any, at: int) -> None:
    assert_same(page(padded([odd], at)))


@pytest.mark.parametrize("when", [*DATETIMES, "2012-02-22T02:06:58.1234565+05:30"])
def test_each_odd_datetime_reads_or_is_refused_alike(when: str) -> None:
    for field in ("created_at", "last_failure_at", "failure_deletion_timestamp"):
        assert_same(page(padded([{**full_webhook(), field: when}], SIZE // 2)))


def test_nulls_and_missing_keys_land_on_the_right_webhook() -> None:
    webhooks = [mixed_nulls(i) for i in range(3 * SIZE)]
    result = assert_same(page(webhooks))
    assert result[0] == "GetWebhooks200Response", f"a valid page was refused: {result}"


def test_empty_and_null_listings_are_unchanged() -> None:
    for data in (page([]), {"data": None}, {"next_page": None}, page([None] * SIZE)):
        assert_same(data)


# --- property-based: generated webhooks among ordinary ones -------------------------------


@given(
    odd=st.lists(webhook_payloads(invalid=False), min_size=1, max_size=4),
    at=st.integers(min_value=0, max_value=SIZE),
    size=st.sampled_from([SIZE, SIZE + 7]),
)
def test_valid_webhooks_read_alike(odd: list[dict[str, Any]], at: int, size: int) -> None:
    assert_same(page(padded(odd, min(at, size - len(odd)), size)))


@given(
    odd=st.lists(webhook_payloads(invalid=True), min_size=1, max_size=4),
    at=st.integers(min_value=0, max_value=SIZE),
)
def test_invalid_webhooks_are_refused_alike_or_read_alike(odd: list[Any], at: int) -> None:
    assert_same(page(padded(odd, min(at, SIZE - len(odd)))))


@given(webhooks=st.lists(webhook_payloads(invalid=False), min_size=SIZE, max_size=SIZE + 4))
def test_pages_of_generated_webhooks_read_alike(webhooks: list[dict[str, Any]]) -> None:
    assert_same(page(webhooks))


def test_lists_are_copied_as_the_hooks_copy_them() -> None:
    # Changing a model's list must not change the caller's data, on either path.
    webhooks = [full_webhook(i) for i in range(SIZE)]
    for converter in (BY_ITEM, BY_COLUMN):
        built = converter.structure(page(webhooks), PAGE).data[3]
        assert built.filters is not None and built.filters[0].fields is not None
        assert built.filters[0].fields is not webhooks[3]["filters"][0]["fields"]
        assert built.filters[0].fields == webhooks[3]["filters"][0]["fields"]
