"""Retry rules: what is retried, how long it waits, and what is never repeated."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest

from asana_webhooks import (
    ApiConnectionError,
    ApiTimeoutError,
    CreateWebhookRequest,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UpdateWebhookRequest,
    WebhookRequest,
)
from asana_webhooks._retry import backoff, parse_retry_after
from tests._client_helpers import TOKEN, asana_error, json_response, make_api, webhook_json

OK = json_response(200, {"data": webhook_json()})
CREATED = json_response(201, {"data": webhook_json(), "X-Hook-Secret": "abc"})
CREATE = CreateWebhookRequest(data=WebhookRequest(resource="1", target="https://example.com/h/1"))


def rate_limited(retry_after: str | None = None) -> object:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return asana_error(429, "You've made too many requests and hit a rate limit.", headers)


@pytest.mark.parametrize("method", ["get", "create", "update", "delete"])
def test_429_is_retried_for_every_method_after_retry_after(method: str) -> None:
    sleeps: list[float] = []
    success = {
        "get": OK,
        "create": CREATED,
        "update": OK,
        "delete": json_response(200, {"data": {}}),
    }[method]
    api, script = make_api(rate_limited("7"), success, sleeps=sleeps)
    call = {
        "get": lambda: api.get_webhook("1"),
        "create": lambda: api.create_webhook(CREATE),
        "update": lambda: api.update_webhook("1", UpdateWebhookRequest()),
        "delete": lambda: api.delete_webhook("1"),
    }[method]
    call()
    assert len(script.seen) == 2
    assert sleeps == [7.0], "the wait must be exactly what Retry-After asked for"


def test_retry_after_as_http_date_is_honoured() -> None:
    sleeps: list[float] = []
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    api, _ = make_api(rate_limited(when), OK, sleeps=sleeps)
    api.get_webhook("1")
    assert len(sleeps) == 1 and 17 <= sleeps[0] <= 21


@pytest.mark.parametrize("value", [None, "0", "soon", ""])
def test_missing_or_useless_retry_after_falls_back_to_backoff(value: str | None) -> None:
    sleeps: list[float] = []
    api, _ = make_api(rate_limited(value), rate_limited(value), OK, sleeps=sleeps)
    api.get_webhook("1")
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0, f"backoff grew wrong: {sleeps}"


def test_retry_after_beyond_the_cap_surfaces_at_once() -> None:
    sleeps: list[float] = []
    api, script = make_api(rate_limited("3600"), OK, sleeps=sleeps)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        api.get_webhook("1")
    assert caught.value.retry_after == 3600.0
    assert sleeps == [] and len(script.seen) == 1, "must not sleep for an hour"
    assert time.monotonic() - started < 1


def test_retry_after_beyond_the_time_left_surfaces_instead_of_oversleeping() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(max_time=10.0, max_retry_after=60.0, sleep=sleeps.append)
    api, script = make_api(rate_limited("30"), OK, retry=policy)
    with pytest.raises(RateLimitError):
        api.get_webhook("1")
    assert sleeps == [] and len(script.seen) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_for_reads(status: int) -> None:
    api, script = make_api(asana_error(status, "Server Error"), OK)
    assert api.get_webhook("1").data is not None
    assert len(script.seen) == 2


def test_retries_stop_after_max_attempts_with_the_last_error() -> None:
    sleeps: list[float] = []
    api, script = make_api(*[asana_error(503, "Service Unavailable")] * 5, sleeps=sleeps)
    with pytest.raises(ServerError) as caught:
        api.get_webhook("1")
    assert caught.value.status == 503
    assert len(script.seen) == 5 and len(sleeps) == 4


def test_total_time_budget_bounds_the_retries() -> None:
    clock = [0.0]

    def fake_sleep(seconds: float) -> None:
        clock[0] += seconds

    policy = RetryPolicy(max_attempts=50, max_time=5.0, sleep=fake_sleep)
    api, script = make_api(*[rate_limited("2")] * 50, retry=policy)
    with pytest.raises(RateLimitError):
        api.get_webhook("1")
    assert clock[0] <= 5.0 and len(script.seen) == 3, f"{len(script.seen)} attempts, {clock[0]}s"


def test_the_time_budget_counts_the_first_attempt() -> None:
    # The first attempt runs before tenacity is involved; its time still counts.
    def slow_failure(request: object) -> object:
        time.sleep(0.3)
        return asana_error(503, "Service Unavailable")

    sleeps: list[float] = []
    policy = RetryPolicy(max_time=0.5, backoff_initial=0.5, sleep=sleeps.append)
    api, script = make_api(slow_failure, OK, retry=policy)
    with pytest.raises(ServerError):
        api.get_webhook("1")
    # 0.3 s spent + a backoff of at least 0.25 s would overrun 0.5 s: no retry.
    assert len(script.seen) == 1 and sleeps == [], f"retried after {sleeps}"


def test_a_retried_call_logs_each_retry_with_its_attempt_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, script = make_api(*[asana_error(503, "Service Unavailable")] * 2, OK)
    with caplog.at_level(logging.WARNING, logger="asana_webhooks"):
        api.get_webhook("1")
    lines = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(script.seen) == 3
    assert len(lines) == 2 and "attempt 1 of 5" in lines[0] and "attempt 2 of 5" in lines[1], lines


def test_4xx_other_than_429_is_never_retried() -> None:
    api, script = make_api(asana_error(404, "Unknown object"), OK)
    with pytest.raises(NotFoundError):
        api.get_webhook("1")
    assert len(script.seen) == 1


def test_create_is_not_retried_after_a_server_error() -> None:
    api, script = make_api(asana_error(500, "Server Error"), CREATED)
    with pytest.raises(ServerError):
        api.create_webhook(CREATE)
    assert len(script.seen) == 1, "a retried create could make a second webhook"


def test_create_is_not_retried_when_the_request_may_have_arrived() -> None:
    lost = ApiTimeoutError("read timeout", request_sent=True)
    api, script = make_api(lost, CREATED)
    with pytest.raises(ApiTimeoutError):
        api.create_webhook(CREATE)
    assert len(script.seen) == 1


def test_create_is_retried_when_the_request_provably_never_left() -> None:
    refused = ApiConnectionError("could not connect", request_sent=False)
    api, script = make_api(refused, CREATED)
    assert api.create_webhook(CREATE).x_hook_secret == "abc"
    assert len(script.seen) == 2


def test_connection_errors_are_retried_for_reads() -> None:
    api, script = make_api(ApiConnectionError("reset", request_sent=True), OK)
    api.get_webhook("1")
    assert len(script.seen) == 2


def test_retry_off_makes_one_attempt() -> None:
    api, script = make_api(asana_error(503, "Service Unavailable"), OK, retry=RetryPolicy.off())
    with pytest.raises(ServerError):
        api.get_webhook("1")
    assert len(script.seen) == 1


def test_each_retry_is_logged_once_at_warning_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, _ = make_api(asana_error(503, "Service Unavailable"), rate_limited("1"), OK)
    with caplog.at_level(logging.DEBUG, logger="asana_webhooks"):
        api.get_webhook("1")
    warnings_ = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_) == 2, [r.getMessage() for r in warnings_]
    assert "503" in warnings_[0].getMessage() and "429" in warnings_[1].getMessage()
    assert all("\n" not in r.getMessage() for r in warnings_)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("30", 30.0), ("0", 0.0), ("1.5", 1.5), ("-4", 0.0), ("nan", None), ("", None), (None, None)],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=4.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0)]:
        wait = backoff(policy, attempt)
        assert ceiling / 2 <= wait <= ceiling
