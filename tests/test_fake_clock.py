"""The stand-in's clock: what Asana does over hours and days, played out in a moment.

Heartbeats every 8 hours, failed deliveries retried with exponential backoff, later events
waiting behind a failure, a webhook deleted after 24 hours of failures, offline targets.
Over real sockets: a real ``FakeAsana`` delivering to a real ``RecordingTarget``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from typing import Any

import pytest
import requests

from asana_webhooks.testing import FakeAsana, RecordingTarget, make_event

TIMEOUT = 10.0
HOUR = 3600.0


def parse(moment: str) -> datetime.datetime:
    return datetime.datetime.strptime(moment, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc
    )


@pytest.fixture
def project(asana_fake: FakeAsana) -> str:
    return asana_fake.add_resource(resource_type="project")


@pytest.fixture
def webhook(asana_fake: FakeAsana, asana_target: RecordingTarget, project: str) -> str:
    """A webhook made as a user makes one: POST /webhooks with the handshake."""
    response = requests.post(
        asana_fake.url + "/webhooks",
        json={"data": {"resource": project, "target": asana_target.url}},
        headers={"Authorization": f"Bearer {asana_fake.access_token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["gid"])


def state(fake: FakeAsana, gid: str) -> dict[str, Any]:
    current = fake.get_webhook(gid)
    assert current is not None, f"webhook {gid} is gone"
    return current


def task_events(project: str, count: int) -> list[dict[str, Any]]:
    return [make_event("added", f"12000000000001{i:02d}", parent=project) for i in range(count)]


# --- heartbeats ---------------------------------------------------------------------------


def test_heartbeats_every_8_hours_of_the_clock(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str
) -> None:
    created = parse(state(asana_fake, webhook)["created_at"])
    done = asana_fake.advance(24 * HOUR + 60)
    beats = [d for d in done if d.kind == "heartbeat"]
    assert [d.outcome for d in beats] == ["delivered"] * 3, done
    gaps = [parse(d.at) - created for d in beats]
    assert [round(gap.total_seconds() / HOUR, 3) for gap in gaps] == [8.0, 16.0, 24.0]
    posts = asana_target.deliveries
    assert [json.loads(post.body) for post in posts] == [{"events": []}] * 3
    secret = asana_fake.secret_for(webhook)
    for post in posts:
        expected = hmac.new(secret.encode(), post.body, hashlib.sha256).hexdigest()
        assert post.headers["X-Hook-Signature"] == expected, "heartbeats are signed"
    assert parse(state(asana_fake, webhook)["last_success_at"]) == parse(beats[-1].at)


def test_nothing_happens_before_anything_is_due(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str
) -> None:
    assert asana_fake.run_due() == []
    assert asana_fake.advance(7 * HOUR) == []
    assert asana_target.deliveries == []


def test_the_clock_only_goes_forward(asana_fake: FakeAsana) -> None:
    before = asana_fake.now()
    with pytest.raises(ValueError, match="forward"):
        asana_fake.advance(-1)
    asana_fake.advance(90)
    assert asana_fake.now() - before >= datetime.timedelta(seconds=90)


# --- failures, retries, deletion -------------------------------------------------------------


def test_an_offline_target_is_retried_with_exponential_backoff(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str, project: str
) -> None:
    asana_fake.take_offline(asana_target.url)
    [outcome] = asana_fake.emit(task_events(project, 2))
    assert outcome.outcome == "failed" and outcome.status == 0
    first = state(asana_fake, webhook)
    assert first["delivery_retry_count"] == 1
    failed_at = parse(first["last_failure_at"])
    assert parse(first["next_attempt_after"]) - failed_at == datetime.timedelta(minutes=1)
    assert parse(first["failure_deletion_timestamp"]) - failed_at == datetime.timedelta(hours=24)
    assert "offline" in first["last_failure_content"]

    done = asana_fake.advance(6 * HOUR)
    retries = [d for d in done if d.kind == "retry"]
    moments = [failed_at] + [parse(d.at) for d in retries]
    gaps = [round((b - a).total_seconds() / 60) for a, b in zip(moments, moments[1:])]
    assert gaps[:8] == [1, 2, 4, 8, 16, 32, 60, 60], f"backoff in minutes: {gaps}"
    assert all(d.outcome == "failed" and d.events == 2 for d in retries), retries
    later = state(asana_fake, webhook)
    assert later["delivery_retry_count"] == 1 + len(retries)
    assert later["failure_deletion_timestamp"] == first["failure_deletion_timestamp"]
    assert asana_target.deliveries == [], "nothing reached an offline target"


def test_events_wait_behind_a_failure_and_arrive_in_order_once_it_is_back(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str, project: str
) -> None:
    asana_fake.take_offline(asana_target.url, seconds=HOUR)
    first, second = task_events(project, 2)
    assert [d.outcome for d in asana_fake.emit([first])] == ["failed"]
    assert [d.outcome for d in asana_fake.emit([second])] == ["queued"], "it waits its turn"
    back = asana_fake.now() + datetime.timedelta(hours=1)
    done = asana_fake.advance(3 * HOUR)
    delivered = [d for d in done if d.outcome == "delivered" and d.kind == "retry"]
    assert delivered, done
    # Asana: no longer than about an hour after the target comes back.
    assert parse(delivered[0].at) - back <= datetime.timedelta(hours=1)
    [post] = asana_target.deliveries[:1]
    assert json.loads(post.body) == {"events": [first, second]}
    healthy = state(asana_fake, webhook)
    assert healthy["delivery_retry_count"] == 0
    assert healthy["next_attempt_after"] is None and healthy["failure_deletion_timestamp"] is None


def test_a_webhook_failing_for_24_hours_is_deleted(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str, project: str
) -> None:
    asana_fake.take_offline(asana_target.url)
    events = task_events(project, 3)
    asana_fake.emit(events)
    deadline = parse(state(asana_fake, webhook)["failure_deletion_timestamp"])
    done = asana_fake.advance(25 * HOUR)
    assert done[-1].kind == "deletion" and done[-1].outcome == "deleted", done[-3:]
    assert parse(done[-1].at) == deadline, "deleted at failure_deletion_timestamp"
    assert asana_fake.get_webhook(webhook) is None
    response = requests.get(
        f"{asana_fake.url}/webhooks/{webhook}",
        headers={"Authorization": f"Bearer {asana_fake.access_token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 404, "Asana's GET no longer finds it"
    [gone] = asana_fake.deleted_webhooks
    assert gone["gid"] == webhook and gone["delivery_retry_count"] > 20
    assert asana_fake.events_for(project) == [], "a day later the stream has let them go"


def test_a_target_answering_500_to_heartbeats_is_deleted_24_hours_after_the_first(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str
) -> None:
    asana_target.status = 500
    asana_fake.advance(8 * HOUR + 1)
    failing = state(asana_fake, webhook)
    assert failing["delivery_retry_count"] == 1
    assert failing["last_failure_content"].startswith("500 ")
    asana_fake.advance(23 * HOUR)
    assert asana_fake.get_webhook(webhook) is not None, "not before 24 hours of failures"
    asana_fake.advance(HOUR)
    assert asana_fake.get_webhook(webhook) is None


def test_a_target_that_recovers_in_time_keeps_its_webhook(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str, project: str
) -> None:
    asana_fake.take_offline(asana_target.url, seconds=20 * HOUR)
    asana_fake.emit(task_events(project, 1))
    asana_fake.advance(30 * HOUR)
    healthy = state(asana_fake, webhook)
    assert healthy["delivery_retry_count"] == 0 and healthy["failure_deletion_timestamp"] is None
    assert json.loads(asana_target.deliveries[0].body)["events"], "the waiting event arrived"


def test_bring_online_ends_an_outage(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str, project: str
) -> None:
    asana_fake.take_offline(asana_target.url)
    asana_fake.emit(task_events(project, 1))
    asana_fake.bring_online(asana_target.url)
    asana_fake.advance(61)
    assert state(asana_fake, webhook)["delivery_retry_count"] == 0
    assert len(asana_target.deliveries) == 1


def test_offline_applies_to_deliver_too(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str
) -> None:
    asana_fake.take_offline(asana_target.url)
    assert asana_fake.deliver(webhook, [make_event()]) == 0
    assert asana_fake.outbound[-1].error and "offline" in asana_fake.outbound[-1].error


def test_dropped_heartbeats_only_when_asked(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str
) -> None:
    asana_fake.drop_deliveries(1)
    asana_fake.advance(8 * HOUR + 1)
    assert len(asana_target.deliveries) == 1, "heartbeats are spared by default"
    asana_fake.drop_deliveries(1, heartbeats=True)
    asana_fake.advance(8 * HOUR)
    assert len(asana_target.deliveries) == 1, "a dropped heartbeat never arrives"
    assert asana_fake.deliveries[-1].outcome == "dropped"


def test_reset_and_clear_faults_forget_delivery_faults(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str, project: str
) -> None:
    asana_fake.take_offline(asana_target.url)
    asana_fake.drop_deliveries(fraction=1.0, seed=1)
    asana_fake.clear_faults()
    assert [d.outcome for d in asana_fake.emit(task_events(project, 1))] == ["delivered"]
    asana_fake.reset()
    assert asana_fake.deliveries == [] and asana_fake.events_for(project) == []


def test_a_failed_deliver_is_a_one_shot_probe_never_retried(
    asana_fake: FakeAsana, asana_target: RecordingTarget, webhook: str
) -> None:
    # A test that sends a forged delivery must not see it re-sent, validly signed, later.
    asana_target.status = 401
    assert asana_fake.deliver(webhook, [make_event()], signature="0" * 64) == 401
    assert state(asana_fake, webhook)["delivery_retry_count"] == 1, "its state records it"
    asana_target.status = 200
    asana_fake.advance(2 * HOUR)
    bodies = [json.loads(post.body) for post in asana_target.deliveries[1:]]
    assert bodies and all(body == {"events": []} for body in bodies), bodies
