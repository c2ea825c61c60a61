"""The stand-in's Events API over real HTTP: sync tokens, 412, paging, expiry on its clock,
bubbling, the event streams fed by deliveries (dropped ones too), rate limits.

Checked with plain ``requests`` against a real ``FakeAsana`` and ``RecordingTarget``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Optional

import pytest
import requests

from asana_webhooks.testing import FakeAsana, RecordingTarget, make_event

TIMEOUT = 10.0
SYNC = re.compile(r"^[0-9a-f]{32}$")
SYNC_MESSAGE = (
    "Sync token invalid or too old. If you are attempting to keep resources in sync, you must "
    "fetch the full dataset for this query now and use the new sync token for the next sync."
)


class Events:
    """``GET /events`` with a requests session bound to one stand-in."""

    def __init__(self, fake: FakeAsana) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {fake.access_token}"

    def get(self, resource: str, sync: Optional[str] = None, **params: Any) -> requests.Response:
        query = {"resource": resource, **params}
        if sync is not None:
            query["sync"] = sync
        return self.session.get(self.fake.url + "/events", params=query, timeout=TIMEOUT)

    def start(self, resource: str) -> str:
        """The first call, as a client makes it: no token, 412, keep the fresh token."""
        response = self.get(resource)
        assert response.status_code == 412, response.text
        return str(response.json()["sync"])

    def read_all(self, resource: str, sync: str) -> tuple[list[dict[str, Any]], str, int]:
        """Follow ``has_more``; return the events, the last token and how many calls it took."""
        events: list[dict[str, Any]] = []
        calls = 0
        while True:
            response = self.get(resource, sync)
            calls += 1
            assert response.status_code == 200, response.text
            body = response.json()
            assert set(body) == {"data", "sync", "has_more"}, body
            events.extend(body["data"])
            sync = body["sync"]
            if not body["has_more"]:
                return events, sync, calls
            assert calls < 1000, "has_more never ended"


@pytest.fixture
def events(asana_fake: FakeAsana) -> Iterator[Events]:
    client = Events(asana_fake)
    yield client
    client.session.close()


def as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """An /events item without what only the Events API adds (``type``, the resource's name)."""
    event = {key: value for key, value in event.items() if key != "type"}
    event["resource"] = {k: v for k, v in event["resource"].items() if k != "name"}
    return event


def webhook_on(fake: FakeAsana, resource: str, target: RecordingTarget, **kw: Any) -> str:
    return str(fake.add_webhook(resource, target.url, **kw)["gid"])


def delivered_events(target: RecordingTarget) -> list[dict[str, Any]]:
    return [event for post in target.deliveries for event in json.loads(post.body)["events"]]


# --- sync tokens and 412 ----------------------------------------------------------------


def test_first_call_without_a_token_is_412_with_asanas_body_and_a_fresh_token(
    events: Events,
) -> None:
    response = events.get("1200000000000001")
    assert response.status_code == 412
    body = response.json()
    assert body == {"errors": [{"message": SYNC_MESSAGE}], "sync": body["sync"]}
    assert SYNC.match(body["sync"]), f"sync should look like Asana's: {body['sync']!r}"

    first = events.get("1200000000000001", body["sync"])
    assert first.status_code == 200, "the token from a 412 must be usable at once"
    assert first.json()["data"] == [] and first.json()["has_more"] is False
    assert SYNC.match(first.json()["sync"])


@pytest.mark.parametrize("token", ["not-a-token", "0" * 32, ""])
def test_unknown_tokens_are_412_with_a_fresh_token(events: Events, token: str) -> None:
    response = events.get("1200000000000001", token)
    assert response.status_code == 412, response.text
    fresh = response.json()["sync"]
    assert SYNC.match(fresh) and fresh != token
    assert events.get("1200000000000001", fresh).status_code == 200


def test_a_token_for_another_resource_is_412(events: Events) -> None:
    token = events.start("1200000000000001")
    assert events.get("1200000000000002", token).status_code == 412


def test_events_after_the_token_are_returned_in_order(
    asana_fake: FakeAsana, events: Events
) -> None:
    task = "1200000000000001"
    before = make_event("changed", task, field="name")
    asana_fake.emit([before])
    token = events.start(task)
    after = [make_event("changed", task, field=field) for field in ("notes", "due_on")]
    asana_fake.emit(after)
    got, _, _ = events.read_all(task, token)
    assert [as_delivered(event) for event in got] == after, "only what happened after the token"
    assert all(event["type"] == "task" for event in got), "/events adds the deprecated type"


def test_paging_gives_at_most_100_per_call_and_every_event_once(
    asana_fake: FakeAsana, events: Events
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    token = events.start(project)
    generated = asana_fake.generate_traffic(project, 250, seed=3)
    first = events.get(project, token).json()
    assert len(first["data"]) == 100 and first["has_more"] is True
    got, last, calls = events.read_all(project, token)
    assert calls == 3, f"250 events should take 3 calls of at most 100, took {calls}"
    assert [as_delivered(event) for event in got] == generated
    again, _, _ = events.read_all(project, last)
    assert again == [], "the last token returns nothing new"


def test_re_requesting_the_current_token_returns_the_same_results(
    asana_fake: FakeAsana, events: Events
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    token = events.start(project)
    asana_fake.generate_traffic(project, 120, seed=4)
    first = events.get(project, token).json()
    second = events.get(project, token).json()
    assert first["data"] == second["data"] and first["has_more"] == second["has_more"]


def test_tokens_expire_after_the_configured_age_on_the_stand_ins_clock(
    asana_target: RecordingTarget,
) -> None:
    with FakeAsana(sync_token_lifetime=3600) as fake:
        client = Events(fake)
        task = "1200000000000001"
        young = client.start(task)
        fake.advance(3590)
        assert client.get(task, young).status_code == 200, "a token younger than its lifetime"
        old = client.start(task)
        fake.emit([make_event("changed", task)])
        fake.advance(3601)
        response = client.get(task, old)
        assert response.status_code == 412, "a token older than its lifetime must be refused"
        fresh = response.json()["sync"]
        assert client.get(task, fresh).json()["data"] == [], "the fresh token starts from now"


def test_default_token_lifetime_is_24_hours(asana_fake: FakeAsana, events: Events) -> None:
    assert asana_fake.sync_token_lifetime == 24 * 3600
    token = events.start("1200000000000001")
    asana_fake.advance(23 * 3600)
    assert events.get("1200000000000001", token).status_code == 200
    token = events.start("1200000000000001")
    asana_fake.advance(24 * 3600 + 1)
    assert events.get("1200000000000001", token).status_code == 412


def test_expire_sync_tokens_makes_every_token_412(asana_fake: FakeAsana, events: Events) -> None:
    token = events.start("1200000000000001")
    asana_fake.expire_sync_tokens()
    assert events.get("1200000000000001", token).status_code == 412


def test_events_older_than_24_hours_are_forgotten_and_their_token_is_412(
    asana_fake: FakeAsana, events: Events
) -> None:
    # A reader that polls often keeps fresh tokens but is still behind forgotten events.
    asana_fake.sync_token_lifetime = 48 * 3600
    task = "1200000000000001"
    token = events.start(task)
    asana_fake.emit([make_event("changed", task)])
    asana_fake.advance(25 * 3600)
    assert asana_fake.events_for(task) == [], "events are kept 24 hours"
    assert events.get(task, token).status_code == 412, "its events are gone: a gap, not silence"


# --- what the streams hold --------------------------------------------------------------


def test_events_bubble_up_from_stories_and_tasks_to_projects_not_workspaces(
    asana_fake: FakeAsana,
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    task = asana_fake.add_resource(resource_type="task", parent=project)
    story = {"gid": "1200000000000009", "resource_type": "story"}
    comment = make_event("added", story, parent=task, parent_type="task")
    changed = make_event("changed", task, field="due_on")
    project_renamed = make_event("changed", project, resource_type="project", field="name")
    asana_fake.emit([comment, changed, project_renamed])
    assert asana_fake.events_for(task) == [comment, changed]
    assert asana_fake.events_for(project) == [comment, changed, project_renamed]
    assert asana_fake.events_for(asana_fake.workspace_gid) == [project_renamed], (
        "task and story events never reach a workspace; project events do"
    )


def test_a_task_in_two_projects_reaches_both(asana_fake: FakeAsana) -> None:
    first = asana_fake.add_resource(resource_type="project")
    second = asana_fake.add_resource(resource_type="project")
    task = asana_fake.add_resource(resource_type="task", parent=[first, second])
    event = make_event("changed", task)
    asana_fake.emit([event])
    assert asana_fake.events_for(first) == [event] and asana_fake.events_for(second) == [event]


def test_workspace_events_endpoint(asana_fake: FakeAsana, events: Events) -> None:
    url = f"{asana_fake.url}/workspaces/{asana_fake.workspace_gid}/events"
    response = events.session.get(url, timeout=TIMEOUT)
    assert response.status_code == 412
    token = response.json()["sync"]
    generated = asana_fake.generate_traffic(asana_fake.workspace_gid, 5, seed=1)
    body = events.session.get(url, params={"sync": token}, timeout=TIMEOUT).json()
    assert [as_delivered(event) for event in body["data"]] == generated
    assert all(event["resource"]["resource_type"] == "project" for event in generated)
    unknown = events.session.get(
        f"{asana_fake.url}/workspaces/1200000000000077/events", timeout=TIMEOUT
    )
    assert unknown.status_code == 404


def test_emit_delivers_to_webhooks_whose_filters_match(
    asana_fake: FakeAsana, asana_target: RecordingTarget
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    task = asana_fake.add_resource(resource_type="task", parent=project)
    webhook_on(
        asana_fake,
        project,
        asana_target,
        filters=[{"resource_type": "task", "action": "changed", "fields": ["due_on"]}],
    )
    wanted = make_event("changed", task, field="due_on")
    unwanted = make_event("changed", task, field="name")
    outcomes = asana_fake.emit([wanted, unwanted])
    assert [(o.outcome, o.events) for o in outcomes] == [("delivered", 1)]
    assert delivered_events(asana_target) == [wanted], "filters decide what is delivered"
    assert len(asana_fake.events_for(project)) == 2, "the stream has both"


def test_deliver_records_its_events_in_the_webhooks_resource_stream(
    asana_fake: FakeAsana, asana_target: RecordingTarget, events: Events
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    gid = webhook_on(asana_fake, project, asana_target)
    token = events.start(project)
    sent = [make_event("changed", "1200000000000001"), make_event("deleted", "1200000000000002")]
    asana_fake.deliver(gid, sent)
    asana_fake.heartbeat(gid)
    got, _, _ = events.read_all(project, token)
    assert [as_delivered(event) for event in got] == sent


def test_dropped_deliveries_still_enter_the_stream(
    asana_fake: FakeAsana, asana_target: RecordingTarget, events: Events
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    webhook_on(asana_fake, project, asana_target)
    token = events.start(project)
    asana_fake.drop_deliveries(fraction=0.2, seed=11)
    generated = asana_fake.generate_traffic(project, 500, seed=5)
    delivered = delivered_events(asana_target)
    dropped = [d for d in asana_fake.deliveries if d.outcome == "dropped"]
    assert 60 <= len(dropped) <= 140, f"about 20% of 500 should be dropped, not {len(dropped)}"
    assert len(delivered) + len(dropped) == 500
    streamed, _, _ = events.read_all(project, token)
    assert [as_delivered(event) for event in streamed] == generated, "the stream has all 500"
    assert all(event in generated for event in delivered)


def test_the_same_seed_drops_the_same_deliveries(asana_target: RecordingTarget) -> None:
    def dropped_positions() -> list[int]:
        with FakeAsana() as fake:
            project = fake.add_resource(resource_type="project")
            webhook_on(fake, project, asana_target)
            fake.drop_deliveries(fraction=0.3, seed=2)
            fake.generate_traffic(project, 40, seed=9)
            return [i for i, d in enumerate(fake.deliveries) if d.outcome == "dropped"]

    first = dropped_positions()
    assert first and first == dropped_positions()


def test_drop_the_next_n_deliveries(asana_fake: FakeAsana, asana_target: RecordingTarget) -> None:
    project = asana_fake.add_resource(resource_type="project")
    webhook_on(asana_fake, project, asana_target)
    asana_fake.drop_deliveries(3)
    asana_fake.generate_traffic(project, 5, seed=1)
    assert [d.outcome for d in asana_fake.deliveries] == ["dropped"] * 3 + ["delivered"] * 2
    assert len(asana_target.deliveries) == 2
    assert len(asana_fake.events_for(project)) == 5


def test_generated_traffic_is_realistic_seeded_and_distinct(asana_fake: FakeAsana) -> None:
    project = asana_fake.add_resource(resource_type="project")
    generated = asana_fake.generate_traffic(project, 300, seed=8)
    actions = {event["action"] for event in generated}
    assert {"added", "changed", "removed", "deleted"} <= actions, actions
    fields = {event["change"]["field"] for event in generated if event["action"] == "changed"}
    assert {"name", "assignee", "followers"} <= fields, fields
    types = {event["resource"]["resource_type"] for event in generated}
    assert types == {"task", "story"}, types
    for event in generated:
        assert set(event) >= {"user", "created_at", "action", "resource", "parent"}, event
        assert ("change" in event) == (event["action"] == "changed"), event
        if event["action"] in ("added", "removed"):
            assert event["parent"] is not None, event
        else:
            assert event["parent"] is None, event
        change = event.get("change") or {}
        if change.get("field") == "assignee":
            assert change["new_value"]["resource_type"] == "user", event
        if change.get("field") == "followers":
            assert change["action"] == "added" and "added_value" in change, event
    stamps = [event["created_at"] for event in generated]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), "distinct, in order"
    with FakeAsana() as other:
        other.add_resource(project, resource_type="project")
        again = other.generate_traffic(project, 300, seed=8)
    strip = [{k: v for k, v in e.items() if k != "created_at"} for e in generated]
    assert strip == [{k: v for k, v in e.items() if k != "created_at"} for e in again]


def test_a_story_on_a_generated_task_reaches_the_tasks_own_stream(asana_fake: FakeAsana) -> None:
    project = asana_fake.add_resource(resource_type="project")
    generated = asana_fake.generate_traffic(project, 200, seed=6)
    story = next(e for e in generated if e["resource"]["resource_type"] == "story")
    task = story["parent"]["gid"]
    assert story in asana_fake.events_for(task)


# --- bad requests and limits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 400),
        ({"resource": "abc"}, 400),
        ({"resource": "1200000000000001", "opt_pretty": "foo"}, 400),
    ],
)
def test_bad_events_requests_are_400(events: Events, params: dict[str, str], status: int) -> None:
    response = events.session.get(events.fake.url + "/events", params=params, timeout=TIMEOUT)
    assert response.status_code == status, response.text
    assert response.json()["errors"][0]["message"]


def test_events_need_the_token(asana_fake: FakeAsana) -> None:
    response = requests.get(
        asana_fake.url + "/events", params={"resource": "1200000000000001"}, timeout=TIMEOUT
    )
    assert response.status_code == 401


def test_rate_limits_apply_to_events_with_retry_after(events: Events) -> None:
    events.fake.rate_limit(2, retry_after=7)
    token = events.start("1200000000000001")
    assert events.get("1200000000000001", token).status_code == 200
    limited = events.get("1200000000000001", token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert "rate limit" in limited.json()["errors"][0]["message"]


def test_other_methods_on_events_are_405(events: Events) -> None:
    response = events.session.post(events.fake.url + "/events", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_event_retention_can_be_longer_for_tests_of_long_outages(events: Events) -> None:
    with FakeAsana(sync_token_lifetime=72 * 3600, event_retention=72 * 3600) as fake:
        client = Events(fake)
        task = "1200000000000001"
        token = client.start(task)
        event = make_event("changed", task)
        fake.emit([event])
        fake.advance(48 * 3600)
        got, _, _ = client.read_all(task, token)
        assert [as_delivered(e) for e in got] == [event]
        fake.event_retention = 3600
        assert fake.events_for(task) == []


def test_traffic_on_other_resources_is_typed_as_them(asana_fake: FakeAsana) -> None:
    goal = asana_fake.add_resource(resource_type="goal")
    generated = asana_fake.generate_traffic(goal, 10, seed=2)
    assert {event["resource"]["resource_type"] for event in generated} == {"goal"}
    assert all(event["action"] == "changed" and event["change"]["field"] for event in generated)
    assert asana_fake.events_for(goal) == generated
