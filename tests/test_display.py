"""Notebook-friendly output: escaped HTML without secrets, dicts, DataFrames, progress."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import asana_webhooks
from asana_webhooks import (
    ApiClient,
    AsanaNamedResource,
    Configuration,
    CreateWebhook201Response,
    GetWebhook200Response,
    GetWebhooks200Response,
    MockTransport,
    NextPage,
    Request,
    Response,
    WebhookFilter,
    WebhookResponse,
    WebhooksApi,
    _display,
    as_table,
    parse_events,
    to_dataframe,
    to_dict,
    to_dicts,
)

UTC = dt.timezone.utc
SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"


def webhook(gid: str = "1", **changes: Any) -> WebhookResponse:
    fields: dict[str, Any] = {
        "gid": gid,
        "resource_type": "webhook",
        "active": True,
        "resource": AsanaNamedResource(gid="42", resource_type="project", name="Roadmap"),
        "target": f"https://example.com/asana/{gid}",
        "created_at": dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "filters": [WebhookFilter(resource_type="task", action="changed", fields=["due_on"])],
    }
    fields.update(changes)
    return WebhookResponse(**fields)


EVENT_BODY = json.dumps(
    {
        "events": [
            {
                "user": {"gid": "7", "resource_type": "user", "name": "Ada"},
                "resource": {"gid": "1337", "resource_type": "task", "name": "Write docs"},
                "action": "changed",
                "created_at": "2024-05-01T10:00:00.000Z",
                "change": {
                    "field": "assignee",
                    "action": "changed",
                    "new_value": {"gid": "8", "resource_type": "user"},
                },
            },
            {
                "user": None,
                "resource": {"gid": "1338", "resource_type": "task"},
                "action": "added",
                "parent": {"gid": "42", "resource_type": "project", "name": "Roadmap"},
                "created_at": "2024-05-01T10:01:00.000Z",
            },
        ]
    }
).encode()


# --- HTML -------------------------------------------------------------------------------------


def test_a_webhook_renders_as_a_record_table_with_readable_cells() -> None:
    shown = webhook()._repr_html_()
    assert '<table class="asana-webhooks">' in shown
    assert "<th>target</th><td>https://example.com/asana/1</td>" in shown, shown
    assert "Roadmap (project 42)" in shown, "a resource should read as name (type gid)"
    assert "task changed (due_on)" in shown, "a filter should read as one short phrase"
    assert "2024-05-01 10:00:00+00:00" in shown


def test_a_page_renders_as_one_table_with_a_row_per_webhook_and_only_useful_columns() -> None:
    page = GetWebhooks200Response(
        data=[webhook("1"), webhook("2", active=False)], next_page=NextPage(offset="tok")
    )
    shown = page._repr_html_()
    assert shown.count("<tr>") == 3, "one header row and one row per webhook"
    assert "2 items, more from offset tok" in shown
    assert "<th>last_failure_at</th>" not in shown, "a column no webhook has a value for"
    assert "<th>resource_type</th>" not in shown, "always 'webhook': not worth a column"


@pytest.mark.parametrize("field", ["target", "name"])
def test_html_escapes_values_so_a_name_or_target_cannot_inject_markup(field: str) -> None:
    evil = "<script>alert('x')</script>"
    if field == "target":
        model = webhook(target=f"https://example.com/{evil}")
    else:
        model = webhook(resource=AsanaNamedResource(gid="42", name=evil))
    for shown in (model._repr_html_(), as_table([model])._repr_html_()):
        assert "<script>" not in shown, f"unescaped {field} reached the HTML: {shown}"
        assert "&lt;script&gt;" in shown


def test_long_text_is_cut_in_the_cell_and_kept_whole_in_its_escaped_title() -> None:
    content = "500 Server Error\n\n" + "<b>" * 60
    shown = webhook(last_failure_content=content)._repr_html_()
    assert "\u2026</td>" in shown
    assert 'title="500 Server Error' in shown and "<b>" not in shown


def test_the_secret_of_a_create_never_reaches_html_repr_or_a_default_dict() -> None:
    created = CreateWebhook201Response(data=webhook(), x_hook_secret=SECRET)
    assert SECRET not in created._repr_html_()
    assert "x_hook_secret hidden" in created._repr_html_()
    assert SECRET not in repr(created)
    assert "x_hook_secret" not in created.to_dict()
    assert SECRET not in repr(to_dicts([created]))
    assert created.to_dict(include_secret=True)["x_hook_secret"] == SECRET, (
        "a caller who asks explicitly gets the secret"
    )


def test_events_render_as_a_table_with_the_change_spelled_out() -> None:
    events = parse_events(EVENT_BODY)
    shown = as_table(events, "deliveries")._repr_html_()
    assert "<caption>deliveries</caption>" in shown
    assert "<th>change</th>" in shown and "<th>parent</th>" in shown
    assert "assignee changed user 8" in shown, shown
    assert "Ada (user 7)" in shown
    assert "<th>type</th>" not in shown, "the deprecated type field is not a column"
    assert "Write docs (task 1337)" in events[0]._repr_html_()


def test_a_table_is_a_sequence_with_a_readable_plain_repr() -> None:
    table = as_table(GetWebhooks200Response(data=[webhook("1"), webhook("22")]))
    assert len(table) == 2 and table[1].gid == "22"
    text = repr(table)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["gid", "active", "resource", "target"], text
    assert lines[2].startswith("22 ") and "https://example.com/asana/22" in lines[2], text
    assert repr(as_table([])) == "(none)"
    assert "(none)" in as_table([])._repr_html_()


def test_the_plain_reprs_stay_the_attrs_reprs() -> None:
    assert repr(webhook()).startswith("WebhookResponse(gid='1', resource_type='webhook'")


# --- dicts and DataFrames -----------------------------------------------------------------------


def test_to_dict_gives_plain_nested_dicts_with_datetimes_kept() -> None:
    plain = to_dict(webhook())
    assert plain["resource"] == {"gid": "42", "resource_type": "project", "name": "Roadmap"}
    assert plain["filters"] == [
        {
            "resource_type": "task",
            "resource_subtype": None,
            "action": "changed",
            "fields": ["due_on"],
        }
    ]
    assert plain["created_at"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert webhook().to_dict() == plain
    with pytest.raises(TypeError, match="to_dict takes an asana_webhooks model"):
        to_dict({"gid": "1"})


def test_to_dicts_takes_a_page_a_single_answer_an_iterator_or_events() -> None:
    page = GetWebhooks200Response(data=[webhook("1"), webhook("2")])
    assert [row["gid"] for row in to_dicts(page)] == ["1", "2"]
    assert [row["gid"] for row in to_dicts(GetWebhook200Response(data=webhook("3")))] == ["3"]
    assert [row["gid"] for row in to_dicts(iter([webhook("4")]))] == ["4"]
    assert [row["action"] for row in to_dicts(parse_events(EVENT_BODY))] == ["changed", "added"]
    with pytest.raises(TypeError):
        to_dicts("not models")


def test_to_dataframe_flattens_resources_and_types_datetimes() -> None:
    frame = to_dataframe([webhook("1"), webhook("2", last_failure_at=None, created_at=None)])
    assert list(frame["gid"]) == ["1", "2"]
    assert list(frame["resource.name"]) == ["Roadmap", "Roadmap"]
    assert str(frame["created_at"].dtype).startswith("datetime64"), frame.dtypes
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["created_at"].isna().tolist() == [False, True]
    assert (
        "x_hook_secret"
        not in to_dataframe(
            [CreateWebhook201Response(data=webhook(), x_hook_secret=SECRET)]
        ).columns
    )
    assert to_dataframe([]).empty


def test_keys_asana_sent_that_the_model_does_not_declare_are_shown_too() -> None:
    from asana_webhooks._converter import structure

    answer = structure(
        {"data": {"gid": "9", "is_workspace_webhook": True, "target": "https://x"}},
        GetWebhook200Response,
    )
    assert answer.data is not None
    assert to_dict(answer.data)["additional_properties"] == {"is_workspace_webhook": True}
    assert "additional_properties" not in to_dict(webhook()), "only when there are some"
    assert "<th>is_workspace_webhook</th><td>yes</td>" in answer._repr_html_()
    frame = to_dataframe([answer.data])
    assert list(frame["additional_properties.is_workspace_webhook"]) == [True]


def test_an_empty_listing_keeps_its_columns_in_frames_and_tables() -> None:
    # An empty workspace: code that selects or converts columns must still run.
    full = to_dataframe([webhook("1")])
    for empty in (
        to_dataframe([], model=WebhookResponse),
        to_dataframe(GetWebhooks200Response(data=[])),  # a page says what it holds
        as_table(iter([]), model=WebhookResponse).to_dataframe(),
    ):
        assert empty.empty and list(empty.columns) == list(full.columns), list(empty.columns)
        assert str(empty["last_failure_at"].dtype) == "datetime64[ns, UTC]", empty.dtypes
        assert empty["last_failure_at"].dt.floor("h").empty  # what the notebook does
    shown = as_table([], "none yet", model=WebhookResponse)._repr_html_()
    assert "<th>gid</th>" in shown and "<th>last_failure_at</th>" in shown, shown
    assert "(none)" in shown and "<th>resource_type</th>" not in shown
    assert "x_hook_secret" not in to_dataframe([], model=CreateWebhook201Response).columns
    assert list(as_table([webhook("5")]).to_dataframe()["gid"]) == ["5"]


def test_to_dataframe_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"asana-webhooks\[notebook\]"):
        to_dataframe([webhook()])


def test_importing_the_library_imports_neither_pandas_nor_tqdm() -> None:
    code = "import sys, asana_webhooks; print('pandas' in sys.modules, 'tqdm' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "False"], result.stdout + result.stderr


def test_the_display_names_are_public() -> None:
    for name in ("Table", "as_table", "to_dataframe", "to_dict", "to_dicts"):
        assert name in asana_webhooks.__all__ and hasattr(asana_webhooks, name)


# --- progress -------------------------------------------------------------------------------------


def paged_api(total: int, page_size: int) -> WebhooksApi:
    def handler(request: Request) -> Response:
        query = dict(p.split("=", 1) for p in request.url.split("?", 1)[1].split("&"))
        start = int(query.get("offset", "0"))
        end = min(start + page_size, total)
        body = {
            "data": [{"gid": str(i)} for i in range(start, end)],
            "next_page": {"offset": str(end)} if end < total else None,
        }
        return Response(200, {}, json.dumps(body).encode())

    client = ApiClient(Configuration(access_token="t"), transport=MockTransport(handler))
    return WebhooksApi(client)


def test_iter_webhooks_with_progress_writes_one_updating_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_display, "_tqdm", lambda: None)
    api = paged_api(total=250, page_size=100)
    gids = [w.gid for w in api.iter_webhooks("1", page_size=100, progress=True)]
    assert gids == [str(i) for i in range(250)], "progress must not change what is listed"
    err = capsys.readouterr().err
    assert err.startswith("\rlisting webhooks: 1"), err[:80]
    assert err.endswith("\rlisting webhooks: 250, done\n"), err[-80:]
    assert "\n" not in err[:-1], "one line, rewritten in place"


def test_without_progress_nothing_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list(paged_api(3, 2).iter_webhooks("1", page_size=2))) == 3
    assert capsys.readouterr().err == ""


def test_a_progress_line_is_throttled_and_says_when_the_listing_stopped_early() -> None:
    out = io.StringIO()
    ticks = iter([0.0, 0.05, 0.1, 0.3, 0.31])
    listing = _display.with_progress(range(5), "webhooks", stream=out, clock=lambda: next(ticks))
    assert next(listing) == 0 and next(listing) == 1 and next(listing) == 2
    listing.close()
    assert out.getvalue() == "\rlisting webhooks: 1\rlisting webhooks: 3, stopped\n"


def test_progress_uses_tqdm_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    class FakeTqdm:
        def __init__(self, items: Any, **options: Any) -> None:
            self.items = items
            seen.append(options)

        def __iter__(self) -> Iterator[Any]:
            return iter(self.items)

        def __enter__(self) -> FakeTqdm:
            return self

        def __exit__(self, *exc: object) -> None:
            seen.append({"closed": True})

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    assert len(list(paged_api(5, 2).iter_webhooks("1", page_size=2, progress=True))) == 5
    assert seen == [{"unit": " webhooks", "desc": "listing webhooks"}, {"closed": True}]
