"""``asana-webhooks reconcile`` against FakeAsana: what --once prints, exit codes, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import SQLiteInbox
from asana_webhooks._cli import main
from asana_webhooks.testing import FakeAsana

pytestmark = pytest.mark.timeout(120)


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err

    def __repr__(self) -> str:
        return f"<exit {self.status}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana() as running:
        yield running


@pytest.fixture
def project(fake: FakeAsana) -> str:
    return fake.add_resource(resource_type="project", name="Launch")


@pytest.fixture
def inbox_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inbox.sqlite3'}"


@pytest.fixture
def cli(
    fake: FakeAsana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    monkeypatch.setenv("ASANA_HOST", fake.url)
    monkeypatch.setenv("ASANA_ACCESS_TOKEN", fake.access_token)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            status = main(["reconcile", *args])
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


def test_once_prints_per_resource_what_was_recovered_and_already_known(
    fake: FakeAsana, project: str, inbox_url: str, cli: Any
) -> None:
    task = fake.add_resource(resource_type="task", name="Alone")
    first = cli("--inbox", inbox_url, "--resource", project, "--resource", task, "--once")
    assert first.status == 0, first
    assert first.out.splitlines() == [
        f"{project}: 0 recovered, 0 already known; first pass: watching from now on",
        f"{task}: 0 recovered, 0 already known; first pass: watching from now on",
    ]
    events = fake.generate_traffic(project, 30, seed=1)
    inbox = SQLiteInbox(inbox_url[len("sqlite://") :])
    inbox.store("/asana/hook", events[:12])  # what webhooks brought
    inbox.close()
    second = cli("--inbox", inbox_url, "--resource", project, "--resource", task, "--once")
    assert second.status == 0, second
    assert second.out.splitlines() == [
        f"{project}: 18 recovered, 12 already known",
        f"{task}: 0 recovered, 0 already known",
    ]
    assert "Traceback" not in second.err


def test_once_json(fake: FakeAsana, project: str, inbox_url: str, cli: Any) -> None:
    cli("--inbox", inbox_url, "--resource", project, "--once")
    fake.generate_traffic(project, 5, seed=2)
    result = cli("--inbox", inbox_url, "--resource", project, "--once", "--json")
    assert result.status == 0, result
    [entry] = json.loads(result.out)
    assert (entry["resource"], entry["recovered"], entry["already_known"]) == (project, 5, 0)
    assert entry["gap"] is False and entry["error"] is None


def test_a_gap_exits_3_and_says_when_it_began(
    fake: FakeAsana, project: str, inbox_url: str, cli: Any
) -> None:
    cli("--inbox", inbox_url, "--resource", project, "--once")
    fake.advance(25 * 3600)
    result = cli("--inbox", inbox_url, "--resource", project, "--once")
    assert result.status == 3, result
    assert "GAP: events since 20" in result.out and "re-read the resource" in result.out
    assert "may be missing" in result.err, "a gap is logged at ERROR on stderr too"
    assert "Traceback" not in result.err
    again = cli("--inbox", inbox_url, "--resource", project, "--once")
    assert again.status == 0, "the fresh token was stored: the next pass is clean"


def test_a_rate_limited_resource_exits_1_and_says_when_to_retry(
    fake: FakeAsana, project: str, inbox_url: str, cli: Any
) -> None:
    cli("--inbox", inbox_url, "--resource", project, "--once")
    fake.fail_next(429, retry_after=90, path="/events")
    result = cli("--inbox", inbox_url, "--resource", project, "--once")
    assert result.status == 1, result
    assert "rate limited, retry in 90s" in result.out
    assert len([r for r in fake.requests if r.path == "/events"]) == 2, "no waiting, no retry"


def test_an_unreachable_asana_is_reported_without_a_traceback(
    project: str, inbox_url: str, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASANA_HOST", "http://127.0.0.1:9/api/1.0")  # the discard port
    result = cli("--inbox", inbox_url, "--resource", project, "--once")
    assert result.status == 1, result
    assert f"{project}: 0 recovered, 0 already known; error:" in result.out
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--inbox", "ftp://example.com/x", "--resource", "1", "--once"], "--inbox"),
        (["--inbox", "/no/such/dir/inbox.sqlite3", "--resource", "1", "--once"], "--inbox"),
        (["--inbox", "x.sqlite3", "--once"], "--resource"),
        (["--inbox", "x.sqlite3", "--resource", "abc", "--once"], "not a gid"),
        (["--inbox", "x.sqlite3", "--resource", "1", "--interval", "0"], "--interval"),
        (["--inbox", "x.sqlite3", "--resource", "1", "--interval", "30", "--once"], "not allowed"),
        (["--resource", "1", "--once"], "--inbox"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    cli: Any, args: list[str], complaint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.status == 2, result
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1, result
    assert complaint in result.err, result


def test_a_missing_token_exits_2(
    project: str, inbox_url: str, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASANA_ACCESS_TOKEN")
    result = cli("--inbox", inbox_url, "--resource", project, "--once")
    assert result.status == 2, result
    assert "ASANA_ACCESS_TOKEN" in result.err


def test_the_long_running_reconciler_polls_on_its_interval_and_stops_on_sigterm(
    fake: FakeAsana, project: str, inbox_url: str
) -> None:
    env = {**os.environ, "ASANA_HOST": fake.url, "ASANA_ACCESS_TOKEN": fake.access_token}
    process = subprocess.Popen(
        [sys.executable, "-m", "asana_webhooks", "reconcile", "--inbox", inbox_url,
         "--resource", project, "--interval", "1", "-v"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len([r for r in fake.requests if r.path == "/events"]) < 1:
            assert time.monotonic() < deadline, "the reconciler never polled"
            time.sleep(0.05)
        fake.generate_traffic(project, 7, seed=3)
        path = inbox_url[len("sqlite://") :]
        while SQLiteInbox(path).stats().stored < 7:
            assert time.monotonic() < deadline, "the events were never recovered"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "recovered 7 events" in err, err
    assert "stopped (SIGTERM)" in err, err
    assert "Traceback" not in err
    assert fake.access_token not in err + out
