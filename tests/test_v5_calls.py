"""Calls written for the official ``asana`` v5 SDK, as its WebhooksApi.md documents them.

v5 passes query options in an ``opts`` dict as the second positional argument, bodies as
dicts, and ``update_webhook(body, webhook_gid, opts)``. Each documented call must send what
v5 would send; a wrong type anywhere is refused by name instead of being misread.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Callable

import pytest

from asana_webhooks import (
    ApiResponse,
    CreateWebhookRequest,
    InvalidRequestError,
    UpdateWebhookRequest,
    WebhookRequest,
    WebhooksApi,
)
from tests._client_helpers import json_response, make_api, webhook_json

OK = json_response(200, {"data": webhook_json()})
PAGE = json_response(200, {"data": [webhook_json("1"), webhook_json("2")], "next_page": None})
CREATED = json_response(201, {"data": webhook_json(), "X-Hook-Secret": "abc"})
DELETED = json_response(200, {"data": {}})
FIELDS_V5 = (
    "active,created_at,delivery_retry_count,failure_deletion_timestamp,filters,"
    "filters.action,filters.fields,filters.resource_subtype,last_failure_at,"
    "last_failure_content,last_success_at,next_attempt_after,resource,resource.name,target"
)


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def test_v5_get_webhooks_with_opts_sends_every_option() -> None:
    api, script = make_api(PAGE)
    opts = {
        "limit": 50,
        "offset": "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9",
        "resource": "51648",
        "opt_fields": FIELDS_V5,
    }
    page = api.get_webhooks("1331", opts)
    assert [w.gid for w in page.data] == ["1", "2"]
    sent = query_of(script.seen[0].url)
    assert sent == {
        "workspace": "1331",
        "limit": "50",
        "offset": "eyJ0eXAiOJiKV1iQLCJhbGciOiJIUzI1NiJ9",
        "resource": "51648",
        "opt_fields": FIELDS_V5,
    }, "v5's opts were misread"


def test_the_issue_s_example_no_longer_turns_into_opt_pretty() -> None:
    api, script = make_api(PAGE)
    api.get_webhooks("1331", {"limit": 2})
    assert query_of(script.seen[0].url) == {"workspace": "1331", "limit": "2"}


def test_v5_get_webhook_with_opts() -> None:
    api, script = make_api(OK)
    api.get_webhook("12345", {"opt_fields": FIELDS_V5})
    assert query_of(script.seen[0].url) == {"opt_fields": FIELDS_V5}


def test_v5_create_webhook_with_a_dict_body_and_opts() -> None:
    api, script = make_api(CREATED)
    body = {"data": {"resource": "8675309", "target": "https://example.com/receive-webhook/7654"}}
    created = api.create_webhook(body, {"opt_fields": FIELDS_V5})  # type: ignore[arg-type]
    assert created.x_hook_secret == "abc"
    request = script.seen[0]
    assert json.loads(request.body or b"") == body
    assert query_of(request.url) == {"opt_fields": FIELDS_V5}


def test_v5_update_webhook_in_v5_argument_order() -> None:
    api, script = make_api(OK)
    body = {"data": {"filters": [{"resource_type": "task", "action": "changed"}]}}
    api.update_webhook(body, "12345", {"opt_fields": FIELDS_V5})  # type: ignore[arg-type]
    request = script.seen[0]
    assert request.method == "PUT" and urllib.parse.urlsplit(request.url).path.endswith(
        "/webhooks/12345"
    )
    assert json.loads(request.body or b"") == body
    assert query_of(request.url) == {"opt_fields": FIELDS_V5}


def test_v5_delete_webhook() -> None:
    api, script = make_api(DELETED, DELETED)
    api.delete_webhook("12345")
    api.delete_webhook("12345", {"opt_pretty": True})
    assert query_of(script.seen[1].url) == {"opt_pretty": "true"}


def test_opts_by_keyword_works_too() -> None:
    api, script = make_api(PAGE)
    api.get_webhooks("1331", opts={"limit": 3, "resource": "9"})
    assert query_of(script.seen[0].url) == {"workspace": "1331", "limit": "3", "resource": "9"}


Call = Callable[[WebhooksApi], Any]
CREATE = CreateWebhookRequest(data=WebhookRequest(resource="1", target="https://example.com/h"))


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda api: api.get_webhooks("1331", "yes"), "opt_pretty"),
        (lambda api: api.get_webhook("1", 1), "opt_pretty"),
        (lambda api: api.delete_webhook("1", "true"), "opt_pretty"),
        (lambda api: api.create_webhook(CREATE, [1]), "opt_pretty"),
        (lambda api: api.update_webhook("1", UpdateWebhookRequest(), "x"), "opt_pretty"),
        (lambda api: api.get_webhooks("1331", {"limt": 2}), "limt"),
        (lambda api: api.get_webhook("1", {"limit": 2}), "limit"),
        (lambda api: api.get_webhooks("1331", {"limit": 2}, limit=3), "limit"),
        (lambda api: api.get_webhooks("1331", {"limit": "2"}), "limit"),
        (lambda api: api.get_webhooks("1331", limit=2.0), "limit"),
        (lambda api: api.get_webhooks("1331", offset=5), "offset"),
        (lambda api: api.get_webhooks("1331", resource=["1"]), "resource"),
        (lambda api: api.get_webhooks(["1331"]), "workspace"),
        (lambda api: api.get_webhook(True), "webhook_gid"),
        (lambda api: api.get_webhook("1", opt_fields=5), "opt_fields"),
        (lambda api: api.get_webhook("1", opt_fields={"name": 1}), "opt_fields"),
        (lambda api: api.get_webhook("1", opts=["opt_fields"]), "opts"),
        (lambda api: api.create_webhook("not a request"), "create_webhook_request"),
        (lambda api: api.create_webhook({"data": {"target": "x"}}), "resource"),
        (lambda api: api.update_webhook("1", "filters"), "update_webhook_request"),
        (lambda api: list(api.iter_webhooks("1331", page_size="100")), "page_size"),
        (lambda api: list(api.iter_webhooks("1331", progress="no")), "progress"),
    ],
)
def test_a_wrong_type_is_refused_by_name_before_anything_is_sent(call: Call, named: str) -> None:
    api, script = make_api()
    with pytest.raises(InvalidRequestError) as caught:
        call(api)
    assert named in str(caught.value), f"the error does not name {named}: {caught.value}"
    assert script.seen == [], "a request went out although an argument was wrong"


def test_a_non_bool_opt_pretty_names_the_v5_form() -> None:
    api, _ = make_api()
    with pytest.raises(InvalidRequestError, match=r"asana v5 SDK.*opts=") as caught:
        api.get_webhooks("1331", "limit=2")
    assert "get_webhooks" in str(caught.value)


# --- *_with_http_info ------------------------------------------------------------------------


RATE = {"X-RateLimit-Remaining": "1499", "Asana-Change": "name=x;info=y"}


@pytest.mark.parametrize(
    ("call", "answer", "status"),
    [
        (lambda api: api.get_webhook_with_http_info("1"), OK, 200),
        (lambda api: api.get_webhooks_with_http_info("1331", limit=2), PAGE, 200),
        (lambda api: api.create_webhook_with_http_info(CREATE), CREATED, 201),
        (lambda api: api.update_webhook_with_http_info("1", UpdateWebhookRequest()), OK, 200),
        (lambda api: api.delete_webhook_with_http_info("1"), DELETED, 200),
    ],
    ids=["get", "list", "create", "update", "delete"],
)
def test_with_http_info_returns_data_status_headers_and_raw_body(
    call: Call, answer: Any, status: int
) -> None:
    response = json_response(status, json.loads(answer.body), RATE)
    api, _ = make_api(response)
    with pytest.warns(UserWarning, match="API change"):  # the Asana-Change header above
        result = call(api)
    assert isinstance(result, ApiResponse)
    assert result.status_code == status
    assert result.headers["x-ratelimit-remaining"] == "1499", "headers must be case-insensitive"
    assert result.raw_data == response.body
    assert type(result.data).__name__.endswith("Response")


def test_with_http_info_data_equals_the_plain_call_and_hides_the_secret_in_repr() -> None:
    api, _ = make_api(CREATED, CREATED)
    info = api.create_webhook_with_http_info(CREATE)
    plain = api.create_webhook(CREATE)
    assert info.data == plain
    assert "X-Hook-Secret" not in repr(info) and '"abc"' not in repr(info), repr(info)
