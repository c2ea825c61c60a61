"""EventsApi against ``responses`` at Asana's host: tokens, 412, paging, retries, bad answers."""

from __future__ import annotations

import datetime as dt
import pickle
import re
import urllib.parse
from typing import Any

import pytest
import responses

from asana_webhooks import (
    ApiClient,
    Configuration,
    Event,
    EventsApi,
    EventsResponse,
    InvalidRequestError,
    InvalidResponseError,
    InvalidSyncTokenError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
)

HOST = "https://app.asana.com/api/1.0"
EVENTS = HOST + "/events"
TOKEN = "0/pat-events-secret-0123456789"
PROJECT = "1200000000000001"
STALE_MESSAGE = (
    "Sync token invalid or too old. If you are attempting to keep resources in sync, you must "
    "fetch the full dataset for this query now and use the new sync token for the next sync."
)


def event_json(n: int, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "user": {"gid": "9001", "resource_type": "user", "name": "Greg"},
        "created_at": f"2026-12-01T10:00:{n % 60:02d}.{n:03d}Z",
        "action": "changed",
        "resource": {"gid": str(7000 + n), "resource_type": "task", "name": f"Task {n}"},
        "parent": None,
        "type": "task",
        "change": {
            "field": "assignee",
            "action": "changed",
            "new_value": {"gid": "9002", "resource_type": "user", "name": "Ann"},
        },
    }
    event.update(overrides)
    return event


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def api(sleeps: Sleeps) -> EventsApi:
    config = Configuration(host=HOST, access_token=TOKEN, retry=RetryPolicy(sleep=sleeps))
    return EventsApi(ApiClient(config))


@pytest.fixture
def asana() -> Any:
    with responses.RequestsMock() as mock:
        yield mock


def query_of(call: Any) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(call.request.url).query)


def refuse(asana: Any, sync: Any = "fresh-token-1", message: str = STALE_MESSAGE) -> None:
    body: dict[str, Any] = {"errors": [{"message": message}]}
    if sync is not None:
        body["sync"] = sync
    asana.add(responses.GET, EVENTS, status=412, json=body)


# -- tokens and 412 -------------------------------------------------------------------------


def test_the_first_call_without_a_token_gives_the_starting_token(
    api: EventsApi, asana: Any
) -> None:
    refuse(asana, "start-token")
    with pytest.raises(InvalidSyncTokenError) as info:
        api.get_events(PROJECT)
    error = info.value
    assert error.status == 412
    assert error.sync == "start-token", "the 412 body's fresh token must be on the error"
    assert error.resource == PROJECT
    assert "starting token" in str(error)
    assert query_of(asana.calls[0]) == {"resource": [PROJECT]}, "no sync parameter on a first call"


def test_a_stale_token_is_refused_with_a_fresh_one_and_says_events_may_be_missed(
    api: EventsApi, asana: Any
) -> None:
    refuse(asana, "fresh-token-2")
    with pytest.raises(InvalidSyncTokenError) as info:
        api.get_events(PROJECT, sync="old-token")
    error = info.value
    assert error.sync == "fresh-token-2"
    assert "start from here; events before this point may be missed" in str(error)
    assert STALE_MESSAGE in str(error), "Asana's own message is kept"
    assert query_of(asana.calls[0]) == {"resource": [PROJECT], "sync": ["old-token"]}
    assert len(asana.calls) == 1, "a 412 is an answer, not something to retry"


def test_tokens_never_appear_in_the_message_or_repr(api: EventsApi, asana: Any) -> None:
    refuse(asana, "fresh-token-visible-only-as-attribute")
    with pytest.raises(InvalidSyncTokenError) as info:
        api.get_events(PROJECT, sync="old-token-never-shown")
    for text in (str(info.value), repr(info.value)):
        assert "fresh-token-visible-only-as-attribute" not in text
        assert "old-token-never-shown" not in text
        assert TOKEN not in text


def test_invalid_sync_token_error_survives_pickling(api: EventsApi, asana: Any) -> None:
    refuse(asana, "fresh-token-3")
    with pytest.raises(InvalidSyncTokenError) as info:
        api.get_events(PROJECT, sync="old")
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own bytes
    assert isinstance(copy, InvalidSyncTokenError)
    assert (copy.sync, copy.resource, copy.status) == ("fresh-token-3", PROJECT, 412)


def test_a_412_without_a_token_says_so(api: EventsApi, asana: Any) -> None:
    refuse(asana, sync=None)
    with pytest.raises(InvalidSyncTokenError) as info:
        api.get_events(PROJECT, sync="old")
    assert info.value.sync is None
    assert "carried no fresh sync token" in str(info.value)


def test_starting_sync_token(api: EventsApi, asana: Any) -> None:
    refuse(asana, "start-token")
    assert api.starting_sync_token(PROJECT) == "start-token"


# -- answers --------------------------------------------------------------------------------


def test_events_are_typed_like_the_receivers(api: EventsApi, asana: Any) -> None:
    asana.add(
        responses.GET,
        EVENTS,
        json={"data": [event_json(1), event_json(2)], "sync": "next-1", "has_more": False},
    )
    page = api.get_events(PROJECT, sync="tok", opt_pretty=True, opt_fields=["user", "resource"])
    assert isinstance(page, EventsResponse)
    assert (page.sync, page.has_more) == ("next-1", False)
    assert [type(e) for e in page.data] == [Event, Event]
    first = page.data[0]
    assert first.resource is not None and first.resource.gid == "7001"
    assert first.change is not None and first.change.field == "assignee"
    assert first.created_at == dt.datetime(2026, 12, 1, 10, 0, 1, 1000, tzinfo=dt.timezone.utc)
    call = asana.calls[0]
    assert query_of(call) == {
        "resource": [PROJECT],
        "sync": ["tok"],
        "opt_pretty": ["true"],
        "opt_fields": ["user,resource"],
    }
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_iter_events_follows_has_more_and_ends_with_the_token_to_store(
    api: EventsApi, asana: Any
) -> None:
    pages = [
        ([event_json(n) for n in range(0, 100)], "t1", True),
        ([event_json(n) for n in range(100, 200)], "t2", True),
        ([event_json(n) for n in range(200, 230)], "t3", False),
    ]
    for data, sync, more in pages:
        asana.add(responses.GET, EVENTS, json={"data": data, "sync": sync, "has_more": more})
    stream = api.iter_events(PROJECT, "t0")
    gids = [e.resource.gid for e in stream if e.resource is not None]
    assert gids == [str(7000 + n) for n in range(230)]
    assert stream.sync == "t3" and stream.exhausted
    assert [query_of(c)["sync"] for c in asana.calls] == [["t0"], ["t1"], ["t2"]]


def test_stopping_mid_answer_keeps_the_token_before_that_answer(api: EventsApi, asana: Any) -> None:
    asana.add(
        responses.GET,
        EVENTS,
        json={"data": [event_json(n) for n in range(3)], "sync": "t1", "has_more": True},
    )
    asana.add(
        responses.GET,
        EVENTS,
        json={"data": [event_json(n) for n in range(3, 6)], "sync": "t2", "has_more": False},
    )
    stream = api.iter_events(PROJECT, "t0")
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 2:
            break
    assert stream.sync == "t0", "storing this token must not skip the unread third event"
    for _ in stream.pages():
        pass
    assert stream.sync == "t2"


def test_iter_events_without_a_token_starts_now(api: EventsApi, asana: Any) -> None:
    refuse(asana, "start-token")
    stream = api.iter_events(PROJECT)
    assert list(stream) == []
    assert stream.sync == "start-token" and stream.exhausted


def test_iter_events_raises_on_a_refused_token(api: EventsApi, asana: Any) -> None:
    refuse(asana, "fresh")
    stream = api.iter_events(PROJECT, "too-old")
    with pytest.raises(InvalidSyncTokenError) as info:
        list(stream)
    assert info.value.sync == "fresh"
    assert stream.sync == "too-old", "the stream does not silently jump over a gap"


def test_has_more_with_the_same_token_does_not_loop_forever(api: EventsApi, asana: Any) -> None:
    asana.add(responses.GET, EVENTS, json={"data": [], "sync": "t0", "has_more": True})
    with pytest.raises(InvalidResponseError, match="same sync token"):
        list(api.iter_events(PROJECT, "t0"))


# -- the client's rules: retries, errors, bad input ------------------------------------------


def test_429_is_waited_out_as_retry_after_says(api: EventsApi, asana: Any, sleeps: Sleeps) -> None:
    asana.add(
        responses.GET,
        EVENTS,
        status=429,
        headers={"Retry-After": "7"},
        json={"errors": [{"message": "You've made too many requests"}]},
    )
    asana.add(responses.GET, EVENTS, json={"data": [], "sync": "t1", "has_more": False})
    assert api.get_events(PROJECT, "t0").sync == "t1"
    assert sleeps.waits == [7.0]


def test_a_long_retry_after_surfaces_as_rate_limit_error(api: EventsApi, asana: Any) -> None:
    asana.add(responses.GET, EVENTS, status=429, headers={"Retry-After": "3600"}, json={})
    with pytest.raises(RateLimitError) as info:
        api.get_events(PROJECT, "t0")
    assert info.value.retry_after == 3600.0


def test_5xx_is_retried(api: EventsApi, asana: Any, sleeps: Sleeps) -> None:
    asana.add(responses.GET, EVENTS, status=503, body="busy")
    answer = {"data": [event_json(1)], "sync": "t1", "has_more": False}
    asana.add(responses.GET, EVENTS, json=answer)
    assert len(api.get_events(PROJECT, "t0").data) == 1
    assert len(sleeps.waits) == 1


def test_other_errors_keep_their_types(api: EventsApi, asana: Any) -> None:
    asana.add(responses.GET, EVENTS, status=404, json={"errors": [{"message": "Unknown object"}]})
    with pytest.raises(NotFoundError, match="Unknown object"):
        api.get_events(PROJECT, "t0")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>proxy</html>", "HTML page"),
        (b"[]", "expected an object"),
        (b'{"sync": "t1", "has_more": false}', "'data' is missing"),
        (b'{"data": [], "has_more": false}', "'sync' is missing"),
        (b'{"data": [], "sync": "t1", "has_more": "no"}', "'has_more' is str"),
        (b'{"data": [{"resource": "7001"}], "sync": "t1"}', "data[0].resource"),
    ],
)
def test_malformed_answers_are_typed_errors_that_name_the_problem(
    api: EventsApi, asana: Any, body: bytes, problem: str
) -> None:
    asana.add(responses.GET, EVENTS, body=body, content_type="application/json")
    with pytest.raises(InvalidResponseError, match=re.escape(problem)):
        api.get_events(PROJECT, "t0")


@pytest.mark.parametrize("resource", ["", "12/34", None, 1.5])
def test_bad_resource_is_refused_before_sending(api: EventsApi, asana: Any, resource: Any) -> None:
    with pytest.raises(InvalidRequestError, match="resource"):
        api.get_events(resource, "t0")
    assert len(asana.calls) == 0


def test_bad_sync_is_refused_before_sending(api: EventsApi, asana: Any) -> None:
    with pytest.raises(InvalidRequestError, match="sync"):
        api.get_events(PROJECT, sync="")
    assert len(asana.calls) == 0
