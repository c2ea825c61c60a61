"""The reconciler's logic over a scripted Events API (MockTransport) and an in-memory inbox.

What it must get right: store each answer's events with the token after them in one step,
tell on_gap when a token was refused (with when the last good one was stored), defer a
rate-limited resource while the others go on, and dedupe against webhook deliveries.
The same behaviour over real sockets, FakeAsana and real inboxes is in test_reconcile_e2e.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import urllib.parse
from typing import Any, Optional

import pytest

from asana_webhooks import (
    ApiClient,
    Configuration,
    InvalidRequestError,
    MockTransport,
    Reconciler,
    Request,
    Response,
    RetryPolicy,
)
from asana_webhooks._inbox import event_key, polled_target
from tests._memory_inbox import MemoryInbox

PROJECT = "1200000000000001"
TASK = "1200000000000002"
OTHER = "1200000000000003"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def webhook_event(n: int, resource: str = PROJECT) -> dict[str, Any]:
    """An event as a webhook delivers it: compact values, gid and resource_type only."""
    return {
        "user": {"gid": "9001", "resource_type": "user"},
        "created_at": f"2026-12-01T10:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z",
        "action": "changed",
        "resource": {"gid": str(7000 + n), "resource_type": "task"},
        "parent": None,
        "change": {
            "field": "assignee",
            "action": "changed",
            "new_value": {"gid": "9002", "resource_type": "user"},
        },
    }


def polled_event(n: int) -> dict[str, Any]:
    """The same event as GET /events returns it: names, the deprecated type, other spellings."""
    event = webhook_event(n)
    event["user"]["name"] = "Greg"
    event["resource"]["name"] = f"Task {n}"
    event["resource"]["resource_subtype"] = "default_task"
    event["type"] = "task"
    event["change"]["new_value"]["name"] = "Ann"
    event["created_at"] = event["created_at"].replace("Z", "+00:00")
    return event


class Stream:
    """Asana's Events API in miniature: per-resource streams, tokens, 412, 429, paging."""

    def __init__(self, page_size: int = 100) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.tokens: dict[str, tuple[str, int]] = {}
        self.counter = itertools.count(1)
        self.page_size = page_size
        self.throttle: dict[str, list[Optional[str]]] = {}
        self.requests: list[tuple[str, Optional[str]]] = []

    def add(self, resource: str, events: list[dict[str, Any]]) -> None:
        self.events.setdefault(resource, []).extend(events)

    def expire_all(self) -> None:
        self.tokens.clear()

    def _token(self, resource: str, position: int) -> str:
        token = f"tok-{next(self.counter)}"
        self.tokens[token] = (resource, position)
        return token

    def __call__(self, request: Request) -> Response:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        resource, sync = query["resource"], query.get("sync")
        self.requests.append((resource, sync))
        pending = self.throttle.get(resource)
        if pending:
            retry_after = pending.pop(0)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return _json(429, {"errors": [{"message": "too many requests"}]}, headers)
        events = self.events.get(resource, [])
        found = self.tokens.get(sync or "")
        if found is None or found[0] != resource:
            body = {"errors": [{"message": "Sync token invalid or too old."}]}
            return _json(412, {**body, "sync": self._token(resource, len(events))})
        position = found[1]
        page = events[position : position + self.page_size]
        end = position + len(page)
        return _json(
            200,
            {"data": page, "sync": self._token(resource, end), "has_more": end < len(events)},
        )


def _json(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(
        status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stream() -> Stream:
    return Stream()


@pytest.fixture
def client(stream: Stream) -> ApiClient:
    config = Configuration(access_token="t", retry=RetryPolicy(sleep=lambda s: None))
    return ApiClient(config, transport=MockTransport(stream))


@pytest.fixture
def inbox(clock: Clock) -> MemoryInbox:
    return MemoryInbox(clock)


def make(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, *resources: str, **kw: Any
) -> Reconciler:
    return Reconciler(client, inbox, resources or (PROJECT,), clock=clock, **kw)


# -- the ordinary path ---------------------------------------------------------------------


def test_the_first_pass_takes_a_token_and_the_next_recovers_what_came_since(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    stream.add(PROJECT, [polled_event(n) for n in range(5)])  # before watching: not ours
    reconciler = make(client, inbox, clock)
    first = reconciler.run_once()[PROJECT]
    assert first.started and first.ok and first.recovered == 0
    assert inbox.sync_token(PROJECT) is not None
    stream.add(PROJECT, [polled_event(n) for n in range(5, 12)])
    clock.now += 300
    second = reconciler.run_once()[PROJECT]
    assert (second.recovered, second.already_known, second.ok) == (7, 0, True)
    assert [e.target for e in inbox.events] == [polled_target(PROJECT)] * 7


def test_events_a_webhook_brought_are_already_known(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    reconciler = make(client, inbox, clock)
    reconciler.run_once()
    stream.add(PROJECT, [polled_event(n) for n in range(10)])
    # Webhooks delivered 7 of the 10, in their own (compact) shape.
    inbox.store("/asana/webhooks/1", [webhook_event(n) for n in range(10) if n % 4 != 1])
    result = reconciler.run_once()[PROJECT]
    assert (result.recovered, result.already_known) == (3, 7)
    assert len(inbox.events) == 10, "each event once, whichever channel brought it"
    assert {e.key for e in inbox.events} == {event_key(webhook_event(n)) for n in range(10)}


def test_has_more_is_followed_and_each_answer_stored_with_its_own_token(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    reconciler = make(client, inbox, clock)
    reconciler.run_once()
    stream.add(PROJECT, [polled_event(n) for n in range(250)])
    inbox.polled_calls.clear()
    result = reconciler.run_once()[PROJECT]
    assert result.recovered == 250
    assert [(n, restart) for _, n, _, restart in inbox.polled_calls] == [
        (100, False),
        (100, False),
        (50, False),
    ], "events and the token after them go in together, one answer at a time"
    tokens = [sync for _, _, sync, _ in inbox.polled_calls]
    assert inbox.sync_token(PROJECT) == tokens[-1]


def test_a_failed_store_keeps_the_old_token_and_the_next_pass_loses_nothing(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    reconciler = make(client, inbox, clock)
    reconciler.run_once()
    before = inbox.sync_token(PROJECT)
    stream.add(PROJECT, [polled_event(n) for n in range(30)])
    inbox.fail_next_store_polled = 1
    failed = reconciler.run_once()[PROJECT]
    assert failed.error and "disk full" in failed.error and not failed.ok
    assert inbox.sync_token(PROJECT) == before, "a token must never run ahead of its events"
    result = reconciler.run_once()[PROJECT]
    assert (result.recovered, len(inbox.events)) == (30, 30)


# -- gaps ------------------------------------------------------------------------------------


def test_a_refused_token_calls_on_gap_with_when_the_last_good_token_was_stored(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    gaps: list[tuple[str, Optional[dt.datetime]]] = []
    reconciler = make(client, inbox, clock, on_gap=lambda r, s: gaps.append((r, s)))
    reconciler.run_once()
    stored_at = clock.now
    clock.now += 25 * 3600
    stream.expire_all()
    result = reconciler.run_once()[PROJECT]
    since = dt.datetime.fromtimestamp(stored_at, tz=dt.timezone.utc)
    assert gaps == [(PROJECT, since)]
    assert result.gap and result.gap_since == since and not result.ok
    state = inbox.sync_state(PROJECT)
    assert state is not None and state.covered_since == clock.now, "a fresh run of tokens"
    assert inbox.gaps == [(PROJECT, stored_at)] and inbox.stats().gaps == 1
    stream.add(PROJECT, [polled_event(1)])
    assert reconciler.run_once()[PROJECT].recovered == 1, "polling goes on from the fresh token"


def test_without_on_gap_a_gap_is_logged_at_error_and_counted(
    client: ApiClient,
    inbox: MemoryInbox,
    clock: Clock,
    stream: Stream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconciler = make(client, inbox, clock)
    reconciler.run_once()
    stream.expire_all()
    with caplog.at_level(logging.ERROR, logger="asana_webhooks"):
        reconciler.run_once()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and PROJECT in errors[0].getMessage()
    assert "may be missing" in errors[0].getMessage()
    assert inbox.stats().gaps == 1


def test_on_gap_that_raises_is_told_again_at_the_next_poll(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    calls = []

    def on_gap(resource: str, since: Optional[dt.datetime]) -> None:
        calls.append(since)
        if len(calls) == 1:
            raise RuntimeError("re-read queue unavailable")

    reconciler = make(client, inbox, clock, on_gap=on_gap)
    reconciler.run_once()
    stored_at = clock.now
    stream.expire_all()
    clock.now += 60
    first = reconciler.run_once()[PROJECT]
    assert first.gap and first.error and "re-read queue unavailable" in first.error
    assert inbox.gaps == [], "not counted as reported"
    clock.now += 60
    second = reconciler.run_once()[PROJECT]
    assert second.gap and second.error is None
    since = dt.datetime.fromtimestamp(stored_at, tz=dt.timezone.utc)
    assert calls == [since, since], "the same gap, with the same start, until told"


def test_recover_a_window_the_token_run_covers(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    gaps: list[Any] = []
    reconciler = make(client, inbox, clock, on_gap=lambda r, s: gaps.append((r, s)))
    reconciler.run_once()
    clock.now += 3600
    outage_start = clock.now
    stream.add(PROJECT, [polled_event(n) for n in range(4)])
    clock.now += 3600
    result = reconciler.recover(PROJECT, outage_start)
    assert (result.recovered, result.gap, gaps) == (4, False, [])


def test_recover_a_window_before_the_resource_was_watched_is_a_gap(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    gaps: list[Any] = []
    reconciler = make(client, inbox, clock, on_gap=lambda r, s: gaps.append((r, s)))
    window = dt.datetime.fromtimestamp(clock.now - 7200, tz=dt.timezone.utc)
    result = reconciler.recover(PROJECT, window)
    assert result.started and result.gap and result.gap_since == window
    assert gaps == [(PROJECT, window)]
    assert inbox.sync_token(PROJECT) is not None, "watched from now on"


# -- rate limits ------------------------------------------------------------------------------


def test_a_429_defers_that_resource_while_the_others_go_on(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    reconciler = make(client, inbox, clock, PROJECT, TASK, OTHER)
    reconciler.run_once()
    for resource in (PROJECT, TASK, OTHER):
        stream.add(resource, [polled_event(n + 100 * int(resource[-1])) for n in range(3)])
    stream.throttle[TASK] = ["120"]
    stream.requests.clear()
    results = reconciler.run_once()
    assert results[TASK].rate_limited and results[TASK].retry_after == 120.0
    assert results[PROJECT].recovered == 3 and results[OTHER].recovered == 3
    assert [r for r, _ in stream.requests] == [PROJECT, TASK, OTHER], "no wait on TASK's 429"
    clock.now += 60
    stream.requests.clear()
    early = reconciler.run_once()
    assert early[TASK].rate_limited and early[TASK].retry_after == pytest.approx(60.0)
    assert TASK not in [r for r, _ in stream.requests], "Retry-After is honoured"
    clock.now += 61
    assert reconciler.run_once()[TASK].recovered == 3


def test_a_429_without_retry_after_backs_off(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    reconciler = make(client, inbox, clock)
    reconciler.run_once()
    stream.throttle[PROJECT] = [None] * 10
    result = reconciler.run_once()[PROJECT]
    assert result.rate_limited and result.retry_after is not None
    assert 15.0 <= result.retry_after <= 30.0


def test_an_unreachable_resource_is_reported_and_the_others_go_on(
    inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    def handler(request: Request) -> Response:
        if TASK in request.url:
            return _json(404, {"errors": [{"message": "Unknown object: " + TASK}]})
        return stream(request)

    config = Configuration(access_token="t", retry=RetryPolicy(sleep=lambda s: None))
    reconciler = make(ApiClient(config, MockTransport(handler)), inbox, clock, TASK, PROJECT)
    results = reconciler.run_once()
    assert results[TASK].error and "Unknown object" in results[TASK].error
    assert results[PROJECT].started


# -- running ----------------------------------------------------------------------------------


def test_run_polls_each_resource_once_per_interval_until_stopped(
    client: ApiClient, inbox: MemoryInbox, stream: Stream
) -> None:
    reconciler = Reconciler(client, inbox, [PROJECT, TASK], interval=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=reconciler.run, args=(stop,))
    thread.start()
    threading.Event().wait(1.1)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive(), "run() must return once stop is set"
    per_resource = [sum(1 for r, _ in stream.requests if r == res) for res in (PROJECT, TASK)]
    # About 1.1 s / 0.2 s = 6 polls each; a loaded machine may manage fewer, never more.
    assert all(2 <= n <= 7 for n in per_resource), per_resource


@pytest.mark.parametrize(
    ("resources", "interval", "problem"),
    [
        ([], 300.0, "at least one resource"),
        (["12/3"], 300.0, "resource"),
        ([PROJECT], 0, "interval"),
        ([PROJECT], 86400, "interval"),
        ([PROJECT], float("nan"), "interval"),
        ([PROJECT], "300", "interval"),
    ],
)
def test_bad_arguments_are_refused(
    client: ApiClient, inbox: MemoryInbox, resources: Any, interval: Any, problem: str
) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        Reconciler(client, inbox, resources, interval=interval)


def test_the_callers_client_still_waits_out_429s(client: ApiClient, inbox: MemoryInbox) -> None:
    Reconciler(client, inbox, [PROJECT])
    assert client.configuration.retry.max_retry_after == 60.0, "only the reconciler's view changes"


def test_event_key_is_the_same_for_both_channels_and_for_typed_events() -> None:
    """The finding behind event_key: only fields both channels carry, so a webhook's compact
    event and the Events API's fuller one (names, the deprecated type, expanded values,
    another spelling of the same instant) are one event, typed or raw."""
    from asana_webhooks._events import parse_events

    for n in (0, 1, 59, 61):
        webhook, polled = webhook_event(n), polled_event(n)
        assert webhook != polled
        assert event_key(webhook) == event_key(polled), n
        [typed] = parse_events(json.dumps({"events": [polled]}).encode())
        assert event_key(typed) == event_key(webhook), "a handler's typed event has the key too"
    assert event_key(webhook_event(1)) != event_key(webhook_event(2))
    other_value = webhook_event(1)
    other_value["change"]["new_value"]["gid"] = "9003"
    assert event_key(other_value) != event_key(webhook_event(1)), "a different assignee"


def test_a_429_after_some_answers_keeps_what_was_stored_and_says_so(
    client: ApiClient, inbox: MemoryInbox, clock: Clock, stream: Stream
) -> None:
    reconciler = make(client, inbox, clock)
    reconciler.run_once()
    stream.add(PROJECT, [polled_event(n) for n in range(150)])
    real = stream.__call__
    answered = []

    def second_answer_limited(request: Request) -> Response:
        answered.append(request)
        if len(answered) == 2:
            return _json(429, {"errors": [{"message": "slow down"}]}, {"Retry-After": "30"})
        return real(request)

    limited = Reconciler(
        ApiClient(client.configuration, MockTransport(second_answer_limited)),
        inbox,
        [PROJECT],
        clock=clock,
    )
    result = limited.run_once()[PROJECT]
    assert (result.rate_limited, result.recovered, result.retry_after) == (True, 100, 30.0)
    clock.now += 31
    assert limited.run_once()[PROJECT].recovered == 50, "it goes on from the stored token"
