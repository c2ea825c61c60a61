"""The library's WebhooksApi against FakeAsana over real HTTP: all five operations, Asana's
errors as typed exceptions, and the client's retry rules meeting injected faults."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pytest

from asana_webhooks import (
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    BadRequestError,
    Configuration,
    CreateWebhookRequest,
    ForbiddenError,
    NotFoundError,
    PaginationError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeout,
    UnauthorizedError,
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookRequest,
    WebhooksApi,
    WebhookUpdateRequest,
)
from asana_webhooks.testing import FakeAsana, RecordingTarget, make_event

MakeApi = Callable[..., WebhooksApi]


@pytest.fixture
def make_api(asana_fake: FakeAsana) -> Iterator[MakeApi]:
    """Build WebhooksApi instances for the fake; retries wait by recording, not sleeping."""
    clients: list[ApiClient] = []

    def make(**settings: Any) -> WebhooksApi:
        settings.setdefault("timeout", Timeout(connect=2.0, read=5.0))
        settings.setdefault("retry", RetryPolicy(sleep=lambda seconds: None))
        settings.setdefault("access_token", asana_fake.access_token)
        client = ApiClient(Configuration(host=asana_fake.url, **settings))
        clients.append(client)
        return WebhooksApi(client)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def api(make_api: MakeApi) -> WebhooksApi:
    return make_api()


def create(api: WebhooksApi, resource: str, target: str, **extra: Any) -> Any:
    return api.create_webhook(
        CreateWebhookRequest(data=WebhookRequest(resource=resource, target=target, **extra))
    )


def posts(fake: FakeAsana) -> int:
    return sum(1 for record in fake.requests if record.method == "POST")


# --- the five operations ------------------------------------------------------------------


def test_create_returns_the_webhook_and_the_handshake_secret(
    api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    created = create(
        api,
        "1200000000000001",
        asana_target.url,
        filters=[WebhookFilter(resource_type="task", action="changed", fields=["due_on"])],
    )
    webhook = created.data
    assert webhook is not None
    assert created.x_hook_secret == asana_target.handshake_secrets[0]
    assert created.x_hook_secret == asana_fake.secret_for(webhook.gid)
    assert webhook.resource is not None and webhook.resource.gid == "1200000000000001"
    assert webhook.target == asana_target.url
    assert isinstance(webhook.created_at, datetime.datetime)
    assert webhook.created_at.tzinfo is not None, "Asana's Z timestamps are UTC"
    assert webhook.filters == [
        WebhookFilter(resource_type="task", action="changed", fields=["due_on"])
    ]
    sent = asana_fake.requests[-1].json()
    assert sent == {
        "data": {
            "resource": "1200000000000001",
            "target": asana_target.url,
            "filters": [{"resource_type": "task", "action": "changed", "fields": ["due_on"]}],
        }
    }, "the client must wrap the request in exactly one data envelope"


def test_get_update_and_delete(
    api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    created = create(api, "1200000000000001", asana_target.url).data
    assert created is not None
    got = api.get_webhook(created.gid).data
    assert got is not None and got.gid == created.gid and got.active is True

    updated = api.update_webhook(
        created.gid,
        UpdateWebhookRequest(data=WebhookUpdateRequest(filters=[WebhookFilter(action="added")])),
    ).data
    assert updated is not None and updated.filters is not None
    assert [f.action for f in updated.filters] == ["added"]

    deleted = api.delete_webhook(created.gid)
    assert deleted.data == {}
    assert asana_fake.webhooks == []
    with pytest.raises(NotFoundError) as caught:
        api.get_webhook(created.gid)
    assert caught.value.message == f"webhook: Unknown object: {created.gid}"


def test_get_webhooks_pages_and_iter_webhooks_walks_them_all(
    api: WebhooksApi, asana_fake: FakeAsana
) -> None:
    gids = [
        asana_fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")["gid"]
        for i in range(230)
    ]
    page = api.get_webhooks(asana_fake.workspace_gid, limit=100)
    assert [w.gid for w in page.data] == gids[:100]
    assert page.next_page is not None and page.next_page.offset
    assert [w.gid for w in api.iter_webhooks(asana_fake.workspace_gid, page_size=100)] == gids
    last = api.get_webhooks(asana_fake.workspace_gid, limit=100, offset=page.next_page.offset)
    assert last.next_page is not None
    final = api.get_webhooks(asana_fake.workspace_gid, limit=100, offset=last.next_page.offset)
    assert len(final.data) == 30 and final.next_page is None


def test_get_webhooks_by_resource_and_opt_fields(api: WebhooksApi, asana_fake: FakeAsana) -> None:
    project = asana_fake.add_resource(name="Roadmap")
    asana_fake.add_webhook("1200000000000001", "http://127.0.0.1:9/a")
    wanted = asana_fake.add_webhook(project, "http://127.0.0.1:9/b")
    page = api.get_webhooks(
        asana_fake.workspace_gid, resource=project, opt_fields=["created_at", "filters"]
    )
    assert [w.gid for w in page.data] == [wanted["gid"]]
    assert page.data[0].resource is not None and page.data[0].resource.name == "Roadmap"
    assert page.data[0].created_at is not None
    assert asana_fake.requests[-1].query["opt_fields"] == "created_at,filters"


def test_expired_offsets_stop_iteration_with_a_pagination_error(
    api: WebhooksApi, asana_fake: FakeAsana
) -> None:
    for i in range(5):
        asana_fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")
    walker = api.iter_webhooks(asana_fake.workspace_gid, page_size=2)
    assert [next(walker).gid for _ in range(2)]
    asana_fake.expire_offsets()
    with pytest.raises(PaginationError) as caught:
        list(walker)
    assert "expired" in (caught.value.message or "")


def test_deliveries_to_a_created_webhook_verify_with_its_secret(
    api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    created = create(api, "1200000000000001", asana_target.url)
    assert created.data is not None and created.x_hook_secret is not None
    assert asana_fake.deliver(created.data.gid, [make_event("added", parent="1")]) == 200
    delivery = asana_target.deliveries[-1]
    expected = hmac.new(created.x_hook_secret.encode(), delivery.body, hashlib.sha256).hexdigest()
    assert delivery.headers["X-Hook-Signature"] == expected
    assert json.loads(delivery.body)["events"][0]["action"] == "added"
    state = api.get_webhook(created.data.gid).data
    assert state is not None and state.last_success_at is not None


# --- Asana's errors as exceptions ------------------------------------------------------------


def test_wrong_token_is_unauthorized(make_api: MakeApi, asana_fake: FakeAsana) -> None:
    api = make_api(access_token="not-the-token")
    with pytest.raises(UnauthorizedError) as caught:
        api.get_webhooks(asana_fake.workspace_gid)
    assert caught.value.status == 401
    assert "not-the-token" not in str(caught.value)


def test_duplicate_create_is_forbidden(api: WebhooksApi, asana_target: RecordingTarget) -> None:
    create(api, "1200000000000001", asana_target.url)
    with pytest.raises(ForbiddenError) as caught:
        create(api, "1200000000000001", asana_target.url)
    assert (caught.value.message or "").startswith("Duplicated webhook.")


def test_failed_handshake_is_a_bad_request(
    api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    asana_target.echo_secret = False
    with pytest.raises(BadRequestError) as caught:
        create(api, "1200000000000001", asana_target.url)
    assert "handshake" in (caught.value.message or "")
    assert asana_fake.webhooks == []


# --- retries meeting faults --------------------------------------------------------------------


def test_a_503_on_a_read_is_retried(api: WebhooksApi, asana_fake: FakeAsana) -> None:
    asana_fake.fail_next(503, method="GET")
    assert api.get_webhooks(asana_fake.workspace_gid).data == []
    assert [r.status for r in asana_fake.requests] == [503, 200]


def test_a_429_waits_for_retry_after(make_api: MakeApi, asana_fake: FakeAsana) -> None:
    waits: list[float] = []
    api = make_api(retry=RetryPolicy(sleep=waits.append))
    asana_fake.fail_next(429, retry_after=2)
    api.get_webhooks(asana_fake.workspace_gid)
    assert waits == [2.0], "the client should wait exactly Retry-After seconds"


def test_rate_limit_mode_surfaces_rate_limit_error_when_retries_run_out(
    make_api: MakeApi, asana_fake: FakeAsana
) -> None:
    api = make_api(retry=RetryPolicy(max_attempts=2, sleep=lambda seconds: None))
    asana_fake.rate_limit(per_minute=1, retry_after=5)
    api.get_webhooks(asana_fake.workspace_gid)
    with pytest.raises(RateLimitError) as caught:
        api.get_webhooks(asana_fake.workspace_gid)
    assert caught.value.status == 429


def test_a_create_whose_response_is_lost_is_not_blindly_retried(
    api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    asana_fake.fail_next(500, method="POST", path="/webhooks", after_handling=True)
    with pytest.raises(ServerError):
        create(api, "1200000000000001", asana_target.url)
    assert posts(asana_fake) == 1, "a POST that may have created the webhook must not be resent"
    assert len(asana_fake.webhooks) == 1


def test_a_create_whose_connection_drops_is_not_blindly_retried(
    api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    asana_fake.drop_next(method="POST", after_handling=True)
    with pytest.raises(ApiConnectionError):
        create(api, "1200000000000001", asana_target.url)
    assert posts(asana_fake) == 1
    assert len(asana_fake.webhooks) == 1


def test_a_truncated_read_is_retried(api: WebhooksApi, asana_fake: FakeAsana) -> None:
    asana_fake.add_webhook("1200000000000001", "http://127.0.0.1:9/hook")
    asana_fake.truncate_next(method="GET")
    page = api.get_webhooks(asana_fake.workspace_gid)
    assert len(page.data) == 1
    assert [r.fault for r in asana_fake.requests] == ["truncate", None]


def test_a_slow_answer_is_a_timeout(make_api: MakeApi, asana_fake: FakeAsana) -> None:
    api = make_api(timeout=Timeout(connect=2.0, read=0.2), retry=RetryPolicy.off())
    asana_fake.delay_next(1.0)
    with pytest.raises(ApiTimeoutError):
        api.get_webhooks(asana_fake.workspace_gid)


def test_a_proxy_html_502_is_a_server_error_without_asana_errors(
    make_api: MakeApi, asana_fake: FakeAsana
) -> None:
    api = make_api(retry=RetryPolicy.off())
    asana_fake.fail_next(502, body="<html><body><h1>502 Bad Gateway</h1></body></html>")
    with pytest.raises(ServerError) as caught:
        api.get_webhooks(asana_fake.workspace_gid)
    assert caught.value.status == 502
    assert caught.value.errors == []


def test_one_client_shared_by_sixteen_threads(api: WebhooksApi, asana_fake: FakeAsana) -> None:
    hook = asana_fake.add_webhook("1200000000000001", "http://127.0.0.1:9/hook")

    def worker(_: int) -> int:
        done = 0
        for call in range(100):
            if call % 2:
                webhook = api.get_webhook(hook["gid"]).data
                assert webhook is not None and webhook.gid == hook["gid"]
            else:
                assert len(api.get_webhooks(asana_fake.workspace_gid, limit=10).data) == 1
            done += 1
        return done

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(worker, range(16))) == 1600
    assert {record.status for record in asana_fake.requests} == {200}


def test_the_asana_api_fixture_talks_to_asana_fake(
    asana_api: WebhooksApi, asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    created = create(asana_api, "1200000000000001", asana_target.url)
    assert created.data is not None
    listed = asana_api.get_webhooks(asana_fake.workspace_gid)
    assert [w.gid for w in listed.data] == [created.data.gid]
