"""Driving a running stand-in from outside: the ``/_fake`` control endpoint, the
``FakeAsanaControl`` client, and ``asana-webhooks fake deliver/advance/...`` end to end with
a real ``asana-webhooks fake`` and a real ``asana-webhooks serve`` in their own processes.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import pytest
import requests

from asana_webhooks.testing import (
    FakeAsana,
    FakeAsanaControl,
    FakeControlError,
    RecordingTarget,
    make_event,
)

TIMEOUT = 10.0


@pytest.fixture
def control(asana_fake: FakeAsana) -> FakeAsanaControl:
    return FakeAsanaControl(asana_fake.url, asana_fake.access_token, timeout=30)


def posted_events(target: RecordingTarget) -> list[dict[str, Any]]:
    return [event for post in target.deliveries for event in json.loads(post.body)["events"]]


# --- the Python client against the endpoint ------------------------------------------------


def test_deliver_by_default_makes_one_event_for_every_webhook(
    asana_fake: FakeAsana, control: FakeAsanaControl, asana_target: RecordingTarget
) -> None:
    first = asana_fake.add_webhook("1200000000000001", asana_target.url)["gid"]
    second = asana_fake.add_webhook("1200000000000002", asana_target.url)["gid"]
    answer = control.deliver()
    assert sorted(d["webhook_gid"] for d in answer["deliveries"]) == sorted([first, second])
    assert all(d["outcome"] == "delivered" and d["status"] == 200 for d in answer["deliveries"])
    assert posted_events(asana_target) == answer["events"], "what it says it sent arrived"
    streamed = asana_fake.events_for("1200000000000001") + asana_fake.events_for("1200000000000002")
    assert sorted(map(json.dumps, streamed)) == sorted(map(json.dumps, answer["events"]))


def test_deliver_given_events_to_one_webhook(
    asana_fake: FakeAsana, control: FakeAsanaControl, asana_target: RecordingTarget
) -> None:
    gid = asana_fake.add_webhook("1200000000000001", asana_target.url)["gid"]
    event = make_event("changed", "1200000000000001", field="due_on")
    answer = control.deliver(gid, events=[event])
    assert [d["outcome"] for d in answer["deliveries"]] == ["delivered"]
    assert posted_events(asana_target) == [event]
    assert asana_fake.events_for("1200000000000001") == [event]


def test_deliver_on_a_resource_reaches_the_webhooks_above_it(
    asana_fake: FakeAsana, control: FakeAsanaControl, asana_target: RecordingTarget
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    asana_fake.add_webhook(project, asana_target.url)
    answer = control.deliver(resource=project, count=5, seed=3)
    assert len(answer["events"]) == 5
    assert posted_events(asana_target) == answer["events"]


def test_advance_heartbeat_drop_offline_online_and_status(
    asana_fake: FakeAsana, control: FakeAsanaControl, asana_target: RecordingTarget
) -> None:
    project = asana_fake.add_resource(resource_type="project")
    gid = asana_fake.add_webhook(project, asana_target.url)["gid"]
    assert [d["kind"] for d in control.heartbeat()] == ["heartbeat"]
    advanced = control.advance(8 * 3600 + 1)
    assert [d["kind"] for d in advanced["deliveries"]] == ["heartbeat"]

    control.drop_deliveries(1)
    assert [d["outcome"] for d in control.deliver()["deliveries"]] == ["dropped"]

    control.take_offline(asana_target.url)
    assert [d["outcome"] for d in control.deliver()["deliveries"]] == ["failed"]
    status = control.status()
    assert status["offline"] == {asana_target.url: None}
    [hook] = status["webhooks"]
    assert hook["gid"] == gid and hook["delivery_retry_count"] == 1 and hook["pending"] == 1
    assert status["clock_offset"] >= 8 * 3600

    control.bring_online()
    control.advance(61)
    assert control.status()["webhooks"][0]["pending"] == 0, "the waiting event went out"
    control.reset()
    assert control.status()["webhooks"] == []


def test_control_errors_are_typed_and_say_what_is_wrong(
    asana_fake: FakeAsana, control: FakeAsanaControl
) -> None:
    with pytest.raises(FakeControlError) as refused:
        control.deliver("1200000000000009")
    assert refused.value.status == 404 and "1200000000000009" in refused.value.message
    with pytest.raises(FakeControlError) as nothing:
        control.deliver()
    assert nothing.value.status == 404 and "no webhooks" in nothing.value.message.lower()
    with pytest.raises(FakeControlError) as negative:
        control.advance(-5)
    assert negative.value.status == 400 and "forward" in negative.value.message
    with pytest.raises(FakeControlError) as fraction:
        control.drop_deliveries(fraction=2.0)
    assert fraction.value.status == 400


def test_wrong_token_is_401_and_the_token_is_never_shown(asana_fake: FakeAsana) -> None:
    secret = "not-the-token-" + "x" * 20
    wrong = FakeAsanaControl(asana_fake.url, secret)
    with pytest.raises(FakeControlError) as refused:
        wrong.status()
    assert refused.value.status == 401
    assert secret not in str(refused.value) and secret not in repr(wrong)


def test_unreachable_stand_in_is_status_0(asana_fake: FakeAsana) -> None:
    gone = FakeAsanaControl("http://127.0.0.1:9/api/1.0", "t", timeout=5)
    with pytest.raises(FakeControlError) as refused:
        gone.status()
    assert refused.value.status == 0 and "cannot reach" in str(refused.value)


def test_endpoint_shapes_bodies_methods_and_paths(asana_fake: FakeAsana) -> None:
    headers = {"Authorization": f"Bearer {asana_fake.access_token}"}
    base = asana_fake.control_url
    bad_json = requests.post(f"{base}/deliver", data=b"{", headers=headers, timeout=TIMEOUT)
    assert bad_json.status_code == 400 and bad_json.json()["errors"][0]["message"]
    wrong_type = requests.post(
        f"{base}/advance", json={"seconds": "soon"}, headers=headers, timeout=TIMEOUT
    )
    assert wrong_type.status_code == 400 and "seconds" in wrong_type.text
    unknown = requests.post(f"{base}/explode", headers=headers, timeout=TIMEOUT)
    assert unknown.status_code == 404
    wrong_method = requests.get(f"{base}/advance", headers=headers, timeout=TIMEOUT)
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"


def test_control_calls_escape_api_faults_and_records(
    asana_fake: FakeAsana, control: FakeAsanaControl
) -> None:
    asana_fake.fail_next(503, count=5)
    asana_fake.rate_limit(1)
    for _ in range(3):
        control.status()
    assert asana_fake.requests == [], "control calls are not API requests"
    assert len(asana_fake.pending_faults) == 1, "and do not use up the API's faults"


# --- the command line, end to end -----------------------------------------------------------


class Process:
    """A long-running ``asana-webhooks`` subprocess whose output lines are read in threads."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "asana_webhooks", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, queue.Queue[str]] = {"out": queue.Queue(), "err": queue.Queue()}
        assert self.popen.stdout is not None and self.popen.stderr is not None
        for stream, name in ((self.popen.stdout, "out"), (self.popen.stderr, "err")):
            threading.Thread(target=self._pump, args=(stream, name), daemon=True).start()

    def _pump(self, stream: IO[str], name: str) -> None:
        for line in stream:
            self.lines[name].put(line.rstrip("\n"))

    def wait_for(self, pattern: str, which: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines[which].get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {which} line matching {pattern!r} in {timeout}s: {seen}")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(15)


def run(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asana_webhooks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fake_process() -> Iterator[tuple[Process, dict[str, str]]]:
    """``asana-webhooks fake`` on a free port; the environment a user exports after it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASANA_")}
    token = "stand-in-token-for-this-test"
    process = Process(["fake", "--port", "0", "--token", token], env)
    url = process.wait_for(r"serving at (http://127\.0\.0\.1:\d+/api/1\.0)", "out").group(1)
    yield process, {**env, "ASANA_HOST": url, "ASANA_ACCESS_TOKEN": token}
    process.stop()


def test_a_newcomer_sees_an_event_arrive_in_serve(
    fake_process: tuple[Process, dict[str, str]], tmp_path: Path
) -> None:
    _, env = fake_process
    secrets = str(tmp_path / "secrets.sqlite3")
    serve = Process(["serve", "--port", "0", "--secrets", secrets], env)
    try:
        url = serve.wait_for(r"listening on (http://127\.0\.0\.1:\d+)", "err").group(1)
        target = f"{url}/hook"
        created = run(
            ["create", "--resource", "1200000000000001", "--target", target, "--secrets", secrets],
            env,
        )
        assert created.returncode == 0, created.stderr

        delivered = run(["fake", "deliver"], env)
        assert delivered.returncode == 0, delivered.stderr
        assert re.search(r"webhook \d+: delivery of 1 event: delivered \(200\)", delivered.stdout)
        line = json.loads(serve.wait_for(r'^\{"target"', "out").string)
        assert line["target"] == "/hook"
        task = "1200000000000001"
        assert task in (
            line["event"]["resource"]["gid"],
            (line["event"]["parent"] or {}).get("gid"),
        )

        beat = run(["fake", "heartbeat"], env)
        assert beat.returncode == 0 and "heartbeat: delivered (200)" in beat.stdout, beat

        given = tmp_path / "events.json"
        event = make_event("changed", "1200000000000001", field="due_on")
        given.write_text(json.dumps({"events": [event]}))
        sent = run(["fake", "deliver", "--events", str(given), "--json"], env)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["events"] == [event]
        arrived = json.loads(serve.wait_for(r'"due_on"', "out").string)
        assert arrived["event"]["created_at"] == event["created_at"]
    finally:
        serve.stop()


def test_outage_from_the_command_line_ends_in_deletion(
    fake_process: tuple[Process, dict[str, str]],
) -> None:
    _, env = fake_process
    client = FakeAsanaControl(env["ASANA_HOST"], env["ASANA_ACCESS_TOKEN"])
    with RecordingTarget() as target:
        hook = requests.post(
            env["ASANA_HOST"] + "/webhooks",
            json={"data": {"resource": "1200000000000001", "target": target.url}},
            headers={"Authorization": f"Bearer {env['ASANA_ACCESS_TOKEN']}"},
            timeout=TIMEOUT,
        ).json()["data"]
        assert run(["fake", "offline", target.url], env).returncode == 0
        failed = run(["fake", "deliver"], env)
        assert failed.returncode == 1, "a delivery the target refused fails the command"
        assert (
            failed.stderr.startswith("asana-webhooks: error: ") and failed.stderr.count("\n") == 1
        )
        status = run(["fake", "status"], env)
        assert "failing (1 attempts" in status.stdout and "1 events waiting" in status.stdout
        advanced = run(["fake", "advance", "25h"], env)
        assert advanced.returncode == 0, advanced.stderr
        assert "webhook deleted after 24 hours of failures" in advanced.stdout
        assert client.status()["webhooks"] == []
        assert client.status()["deleted_webhooks"][0]["gid"] == hook["gid"]


@pytest.mark.parametrize(
    ("args", "env_changes", "status", "message"),
    [
        (["fake", "deliver"], {"ASANA_HOST": ""}, 2, "which stand-in"),
        (["fake", "deliver"], {"ASANA_HOST": "https://app.asana.com/api/1.0"}, 2, "not a stand-in"),
        (["fake", "deliver"], {"ASANA_ACCESS_TOKEN": ""}, 2, "no token"),
        (["fake", "deliver"], {"ASANA_ACCESS_TOKEN": "wrong"}, 1, "refused"),
        (["fake", "status"], {"ASANA_HOST": "http://127.0.0.1:9/api/1.0"}, 1, "cannot reach"),
        (["fake", "advance", "soon"], {}, 2, "not a duration"),
        (["fake", "deliver", "--count", "0"], {}, 2, "at least 1"),
        (["fake", "drop", "--fraction", "3"], {}, 2, "from 0 to 1"),
    ],
)
def test_command_line_errors_are_one_line_with_the_documented_exit_status(
    fake_process: tuple[Process, dict[str, str]],
    args: list[str],
    env_changes: dict[str, str],
    status: int,
    message: str,
) -> None:
    _, env = fake_process
    done = run(args, {**env, **env_changes})
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert env["ASANA_ACCESS_TOKEN"] not in done.stderr, "the token is never printed"
