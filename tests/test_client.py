"""The webhooks client: every operation, parameter, model and error, over MockTransport."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import warnings

import pytest

from asana_webhooks import (
    ApiClient,
    ApiException,
    AsanaChangeWarning,
    AsanaNamedResource,
    BadRequestError,
    Configuration,
    CreateWebhook201Response,
    CreateWebhookRequest,
    DeleteAllocation200Response,
    EmptyResponse,
    ForbiddenError,
    GetWebhook200Response,
    GetWebhooks200Response,
    InsecureTransportWarning,
    InvalidRequestError,
    InvalidResponseError,
    MockTransport,
    NextPage,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    Request,
    Response,
    ServerError,
    Timeout,
    UnauthorizedError,
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookRequest,
    WebhookResponse,
    WebhooksApi,
    WebhookUpdateRequest,
    rest,
)
from tests._client_helpers import TOKEN, asana_error, json_response, make_api, webhook_json

UTC = dt.timezone.utc


def query_of(request: Request) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query, keep_blank_values=True)


def path_of(request: Request) -> str:
    return urllib.parse.urlsplit(request.url).path


# -- the five operations ------------------------------------------------------------------


def test_create_webhook_sends_one_data_envelope_and_keeps_the_secret() -> None:
    api, script = make_api(
        json_response(201, {"data": webhook_json(active=False), "X-Hook-Secret": "s3cr3t"})
    )
    result = api.create_webhook(
        CreateWebhookRequest(
            data=WebhookRequest(
                resource="8675309",
                target="https://example.com/receive-webhook/7654",
                filters=[WebhookFilter(resource_type="task", action="changed", fields=["name"])],
            )
        )
    )
    (request,) = script.seen
    assert request.method == "POST" and path_of(request) == "/api/1.0/webhooks"
    assert json.loads(request.body or b"") == {
        "data": {
            "resource": "8675309",
            "target": "https://example.com/receive-webhook/7654",
            "filters": [{"resource_type": "task", "action": "changed", "fields": ["name"]}],
        }
    }, "the body must be exactly one data envelope with unset fields left out"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert isinstance(result, CreateWebhook201Response)
    assert result.x_hook_secret == "s3cr3t", "the 201 body's X-Hook-Secret must be kept"
    assert result.data is not None and result.data.gid == "43214" and result.data.active is False
    assert "s3cr3t" not in repr(result), "the webhook secret leaked into the repr"


def test_get_webhook_returns_typed_model_with_aware_datetimes() -> None:
    api, script = make_api(json_response(200, {"data": webhook_json()}))
    result = api.get_webhook("43214")
    assert isinstance(result, GetWebhook200Response)
    webhook = result.data
    assert isinstance(webhook, WebhookResponse)
    assert webhook.resource == AsanaNamedResource(
        gid="8675309", resource_type="project", name="Bugs"
    )
    assert webhook.created_at == dt.datetime(2012, 2, 22, 2, 6, 58, 147000, tzinfo=UTC)
    assert webhook.filters == [
        WebhookFilter(
            resource_type="task",
            resource_subtype="milestone",
            action="changed",
            fields=["due_at", "due_on", "dependencies"],
        )
    ]
    assert webhook.delivery_retry_count == 3
    (request,) = script.seen
    assert request.method == "GET" and path_of(request) == "/api/1.0/webhooks/43214"
    assert request.body is None


def test_get_webhooks_sends_every_parameter() -> None:
    api, script = make_api(
        json_response(
            200,
            {
                "data": [webhook_json("1"), webhook_json("2")],
                "next_page": {"offset": "tok2", "path": "/webhooks?offset=tok2", "uri": "u"},
            },
        )
    )
    page = api.get_webhooks(
        "1331", opt_pretty=True, limit=50, offset="tok1", resource="51648", opt_fields=["target"]
    )
    assert isinstance(page, GetWebhooks200Response)
    assert [w.gid for w in page.data] == ["1", "2"]
    assert page.next_page == NextPage(offset="tok2", path="/webhooks?offset=tok2", uri="u")
    assert query_of(script.seen[0]) == {
        "workspace": ["1331"],
        "limit": ["50"],
        "offset": ["tok1"],
        "resource": ["51648"],
        "opt_pretty": ["true"],
        "opt_fields": ["target"],
    }


def test_update_webhook_puts_filters() -> None:
    api, script = make_api(json_response(200, {"data": webhook_json(filters=[])}))
    result = api.update_webhook(
        "43214", UpdateWebhookRequest(data=WebhookUpdateRequest(filters=[]))
    )
    (request,) = script.seen
    assert request.method == "PUT" and path_of(request) == "/api/1.0/webhooks/43214"
    assert json.loads(request.body or b"") == {"data": {"filters": []}}, (
        "an explicit empty filter list must be sent: it clears the filters"
    )
    assert result.data is not None and result.data.filters == []


def test_delete_webhook_returns_empty_response() -> None:
    api, script = make_api(json_response(200, {"data": {}}))
    result = api.delete_webhook("43214", opt_pretty=False)
    assert isinstance(result, EmptyResponse) and result.data == {}
    assert DeleteAllocation200Response is EmptyResponse
    (request,) = script.seen
    assert request.method == "DELETE" and path_of(request) == "/api/1.0/webhooks/43214"
    assert query_of(request) == {"opt_pretty": ["false"]}


# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "opt_fields",
    [
        ["active", "resource.name"],
        "active,resource.name",
        " active , resource.name ",
        ['["active","resource.name"]'],
        ("active", "resource.name", "active"),
    ],
)
def test_opt_fields_forms_all_become_one_comma_separated_value(opt_fields: object) -> None:
    api, script = make_api(json_response(200, {"data": webhook_json()}))
    api.get_webhook("43214", opt_fields=opt_fields)  # type: ignore[arg-type]
    assert query_of(script.seen[0])["opt_fields"] == ["active,resource.name"]


def test_unset_optional_parameters_are_not_sent() -> None:
    api, script = make_api(json_response(200, {"data": []}))
    api.get_webhooks("1331")
    assert query_of(script.seen[0]) == {"workspace": ["1331"]}


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda api: api.get_webhooks("1331", limit=0), "limit"),
        (lambda api: api.get_webhooks("1331", limit=101), "limit"),
        (lambda api: api.get_webhooks("", limit=10), "workspace"),
        (lambda api: api.get_webhook("../tasks/1"), "webhook_gid"),
        (lambda api: api.get_webhook("1", opt_fields=["[not json"]), "opt_fields"),
        (lambda api: api.create_webhook(CreateWebhookRequest()), "data"),
        (
            lambda api: api.create_webhook(
                CreateWebhookRequest(data=WebhookRequest(resource="", target="https://x"))
            ),
            "resource",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(call: object, needle: str) -> None:
    api, script = make_api()
    with pytest.raises(InvalidRequestError, match=needle):
        call(api)  # type: ignore[operator]
    assert script.seen == [], "nothing should have been sent for a bad argument"


# -- responses that are not what we expect ----------------------------------------------


def test_nulls_and_unknown_keys_are_tolerated() -> None:
    body = {
        "data": {
            "gid": "1",
            "active": None,
            "resource": None,
            "created_at": None,
            "filters": None,
            "some_future_field": {"x": 1},
        },
        "also_new": True,
    }
    api, _ = make_api(json_response(200, body))
    webhook = api.get_webhook("1").data
    assert webhook == WebhookResponse(gid="1")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "HTML"),
        (b'{"data": {"gid": "1", "target": "htt', "not JSON"),
        (b"", "empty"),
        (b'{"data": {"target": "x"}}', "gid"),
        (b'{"data": {"gid": 5}}', "gid"),
        (b'{"data": {"gid": "1", "created_at": "yesterday"}}', "created_at"),
        (b'{"data": {"gid": "1", "filters": "changed"}}', "filters"),
        (b"[1, 2]", "GetWebhook200Response"),
    ],
)
def test_a_malformed_success_body_is_a_typed_error_that_says_so(body: bytes, problem: str) -> None:
    for fast in (True, False):
        api, _ = make_api(Response(200, {}, body), fast_json=fast)
        with pytest.raises(InvalidResponseError, match=problem) as caught:
            api.get_webhook("1")
        assert caught.value.status == 200 and caught.value.path == "/webhooks/1"


def test_json_without_data_gives_empty_result_not_a_crash() -> None:
    api, _ = make_api(json_response(200, {"unexpected": 1}))
    assert api.get_webhook("1").data is None


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (402, PaymentRequiredError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (451, ApiException),
    ],
)
def test_http_errors_map_to_typed_exceptions(status: int, cls: type[ApiException]) -> None:
    api, script = make_api(asana_error(status, "webhook: Unknown object: 1"))
    with pytest.raises(cls) as caught:
        api.get_webhook("1")
    error = caught.value
    assert type(error) is cls
    assert error.status == status
    assert error.errors[0].message == "webhook: Unknown object: 1"
    assert error.errors[0].help == "see docs"
    assert "webhook: Unknown object: 1" in str(error) and "/webhooks/1" in str(error)
    assert len(script.seen) == 1, "4xx errors must not be retried"
    assert rest.ApiException is ApiException


def test_server_error_keeps_asanas_phrase() -> None:
    body = {"errors": [{"message": "Server Error", "phrase": "6 sad squid snuggle softly"}]}
    api, _ = make_api(*[json_response(500, body)] * 5)
    with pytest.raises(ServerError, match="6 sad squid snuggle softly"):
        api.get_webhook("1")


def test_proxy_html_error_page_is_a_server_error_that_says_what_the_body_was() -> None:
    page = Response(502, {"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1></html>")
    api, _ = make_api(*[page] * 5)
    with pytest.raises(ServerError, match="HTML page") as caught:
        api.get_webhook("1")
    assert caught.value.status == 502 and caught.value.errors == []


def test_duplicate_webhook_is_recognisable() -> None:
    api, _ = make_api(
        asana_error(403, "Duplicated webhook. You already have an existing webhook for the given")
    )
    with pytest.raises(ForbiddenError) as caught:
        api.create_webhook(
            CreateWebhookRequest(data=WebhookRequest(resource="1", target="https://x/1"))
        )
    assert caught.value.is_duplicate_webhook


def test_token_never_appears_in_errors_or_reprs() -> None:
    api, _ = make_api(asana_error(401, "Not Authorized"))
    with pytest.raises(UnauthorizedError) as caught:
        api.get_webhook("1")
    for text in (str(caught.value), repr(caught.value), repr(api.api_client.configuration)):
        assert TOKEN not in text, f"token leaked into {text!r}"
    assert "access_token='***'" in repr(api.api_client.configuration)


# -- configuration and client --------------------------------------------------------------


def test_configuration_defaults_are_finite_and_mirror_the_generated_client() -> None:
    configuration = Configuration()
    assert configuration.host == "https://app.asana.com/api/1.0"
    assert configuration.access_token is None
    assert 0 < configuration.timeout.connect < 60 and 0 < configuration.timeout.read <= 120
    assert configuration.timeout.read >= 30, "create_webhook waits for the handshake"
    assert configuration.user_agent.startswith("asana-webhooks/")
    configuration.timeout = 5  # type: ignore[assignment]
    assert configuration.timeout == Timeout(5.0, 5.0)
    with pytest.raises(ValueError, match="finite"):
        Configuration(timeout=float("inf"))


def test_default_headers_and_user_agent_are_sent() -> None:
    api, script = make_api(
        json_response(200, {"data": webhook_json()}),
        default_headers={"Asana-Enable": "new_user_task_lists"},
    )
    api.api_client.set_default_header("X-Trace", "abc")
    api.get_webhook("1")
    headers = script.seen[0].headers
    assert headers["Asana-Enable"] == "new_user_task_lists"
    assert headers["X-Trace"] == "abc"
    assert headers["User-Agent"].startswith("asana-webhooks/")


def test_turning_tls_verification_off_warns() -> None:
    with pytest.warns(InsecureTransportWarning):
        ApiClient(Configuration(verify_ssl=False)).close()


def test_asana_change_header_warns_once_per_change_name() -> None:
    change = (
        "name=new_goal_memberships;info=https://forum.asana.com/t/123;affected=true, "
        "name=string_ids;info=https://forum.asana.com/t/456"
    )
    responses = [json_response(200, {"data": webhook_json()}, {"Asana-Change": change})] * 3
    api, _ = make_api(*responses)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            api.get_webhook("1")
    messages = [str(w.message) for w in caught if issubclass(w.category, AsanaChangeWarning)]
    assert len(messages) == 2, f"expected one warning per change name, got {messages}"
    assert "new_goal_memberships" in messages[0] and "affects this request" in messages[0]
    assert "string_ids" in messages[1]


def test_asana_change_already_decided_by_the_caller_does_not_warn() -> None:
    change = "name=new_goal_memberships;info=https://forum.asana.com/t/123;affected=true"
    api, _ = make_api(
        json_response(200, {"data": webhook_json()}, {"Asana-Change": change}),
        default_headers={"Asana-Disable": "new_goal_memberships"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.get_webhook("1")


def test_client_is_a_context_manager_that_closes_its_own_transport() -> None:
    closed: list[bool] = []

    class Transport(MockTransport):
        def close(self) -> None:
            closed.append(True)

    transport = Transport(lambda request: json_response(200, {"data": {}}))
    with ApiClient(Configuration(), transport=transport) as client:
        WebhooksApi(client).delete_webhook("1")
    assert closed == [], "a transport passed in belongs to the caller and stays open"
    with ApiClient(Configuration()) as client:
        transport_of_client = client.transport
    assert client._closed and transport_of_client is not None


# -- pagination ----------------------------------------------------------------------------


def _pages(total: int, size: int) -> list[Response]:
    pages = []
    for start in range(0, total, size):
        gids = [str(i) for i in range(start, min(total, start + size))]
        more = start + size < total
        pages.append(
            json_response(
                200,
                {
                    "data": [{"gid": g, "resource_type": "webhook"} for g in gids],
                    "next_page": {"offset": f"o{start + size}", "path": "p", "uri": "u"}
                    if more
                    else None,
                },
            )
        )
    return pages


def test_iter_webhooks_follows_next_page_lazily() -> None:
    api, script = make_api(*_pages(250, 100))
    iterator = api.iter_webhooks("1331", resource="51648", page_size=100, opt_fields=["target"])
    assert script.seen == [], "nothing is fetched before iteration starts"
    first = next(iterator)
    assert first.gid == "0" and len(script.seen) == 1, "one page at a time"
    rest_of_them = list(iterator)
    assert [w.gid for w in [first, *rest_of_them]] == [str(i) for i in range(250)]
    offsets = [query_of(r).get("offset") for r in script.seen]
    assert offsets == [None, ["o100"], ["o200"]]
    assert all(query_of(r)["limit"] == ["100"] for r in script.seen)
    assert all(query_of(r)["resource"] == ["51648"] for r in script.seen)


def test_iter_webhooks_resumes_from_an_offset() -> None:
    api, script = make_api(*_pages(250, 100)[2:])
    assert len(list(api.iter_webhooks("1331", offset="o200"))) == 50
    assert query_of(script.seen[0])["offset"] == ["o200"]


def test_an_expired_offset_says_where_iteration_stopped() -> None:
    pages = _pages(250, 100)
    api, _ = make_api(pages[0], asana_error(400, "offset: Your pagination token has expired"))
    seen = []
    with pytest.raises(PaginationError) as caught:
        for webhook in api.iter_webhooks("1331"):
            seen.append(webhook.gid)
    error = caught.value
    assert isinstance(error, BadRequestError)
    assert error.offset == "o100" and error.items_seen == 100 == len(seen)
    assert "o100" in str(error) and "100 webhooks" in str(error)
