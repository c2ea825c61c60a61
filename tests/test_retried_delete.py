"""A DELETE whose answer was lost, retried into a 404: the webhook is gone, so that is success."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    Configuration,
    HandshakeError,
    MemorySecretStore,
    MockTransport,
    NotFoundError,
    Request,
    Response,
    RetryPolicy,
    WebhookReceiver,
    WebhooksApi,
    establish_webhook,
)
from tests._client_helpers import asana_error, json_response, make_api

DELETED = json_response(200, {"data": {}})
GONE = asana_error(404, "webhook: Unknown object: 12345")
LOST = ApiConnectionError("connection failed on DELETE /webhooks/12345", request_sent=True)


@pytest.mark.parametrize(
    "first",
    [
        LOST,
        ApiTimeoutError("read timeout after 60s on DELETE /webhooks/12345", request_sent=True),
        asana_error(503, "Service Unavailable"),
    ],
    ids=["answer lost", "read timeout", "503"],
)
def test_a_retried_delete_that_finds_the_webhook_gone_succeeds(
    first: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api, script = make_api(first, GONE)
    with caplog.at_level(logging.INFO, logger="asana_webhooks"):
        result = api.delete_webhook("12345")
    assert result.data == {}
    assert len(script.seen) == 2, "the DELETE must have been retried once"
    assert any("earlier attempt did it" in r.getMessage() for r in caplog.records)


def test_the_http_info_of_such_a_delete_shows_the_404_honestly() -> None:
    api, _ = make_api(LOST, GONE)
    answer = api.delete_webhook_with_http_info("12345")
    assert answer.status_code == 404 and answer.data.data == {}


def test_a_404_on_the_first_attempt_is_still_not_found() -> None:
    api, _ = make_api(GONE)
    with pytest.raises(NotFoundError):
        api.delete_webhook("12345")


def test_a_404_after_an_attempt_that_never_left_is_still_not_found() -> None:
    """Nothing reached Asana the first time: the 404 is about the webhook, not our retry."""
    never = ApiConnectionError("could not connect on DELETE /webhooks/12345", request_sent=False)
    api, script = make_api(never, GONE)
    with pytest.raises(NotFoundError):
        api.delete_webhook("12345")
    assert len(script.seen) == 2


def test_a_404_after_a_lost_answer_is_not_success_for_a_get() -> None:
    api, _ = make_api(LOST, GONE)
    with pytest.raises(NotFoundError):
        api.get_webhook("12345")


def test_establish_cleanup_whose_delete_answer_was_lost_reports_the_webhook_deleted() -> None:
    """The handshake never reached us; the clean-up DELETE's first answer is lost and the
    retry gets 404. The error must say the webhook was deleted, not 'delete it by hand'."""
    deletes: list[str] = []

    def asana(request: Request) -> Response:
        if request.method == "POST":
            body: dict[str, Any] = {
                "data": {"gid": "12345", "resource_type": "webhook", "target": "t"},
                "X-Hook-Secret": "s3cr3t",
            }
            return Response(201, {}, json.dumps(body).encode())
        deletes.append(request.method)
        if len(deletes) == 1:
            raise LOST
        return GONE

    configuration = Configuration(access_token="t", retry=RetryPolicy(sleep=lambda seconds: None))
    api = WebhooksApi(ApiClient(configuration, transport=MockTransport(asana)))
    receiver = WebhookReceiver(MemorySecretStore())
    with pytest.raises(HandshakeError) as caught:
        establish_webhook(api, receiver, "1201", "https://example.com/hooks/1")
    assert deletes == ["DELETE", "DELETE"]
    assert caught.value.webhook_deleted, str(caught.value)
    assert "by hand" not in str(caught.value), str(caught.value)
