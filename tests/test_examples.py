"""The examples in examples/ run against FakeAsana over real sockets on 127.0.0.1.

The Flask app and the sync script run in this process, served by werkzeug's threaded server
(what ``flask run`` uses). The Django project runs as its users run it: ``manage.py migrate``,
``manage.py runserver`` and ``manage.py establish_webhook`` in their own processes, sharing
the secret through the site's database. (That also keeps Django's one-per-process settings
out of this process, where the adapter tests configure their own.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import pytest
import requests
from werkzeug.serving import make_server

from asana_webhooks.testing import FakeAsana

EXAMPLES = Path(__file__).parent.parent / "examples"
DJANGO_PROJECT = EXAMPLES / "django_project"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 with a thread per request; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- the quick start -----------------------------------------------------------------------------


def test_quickstart_runs_from_start_to_finish() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivery answered 200; 1 event(s) received" in result.stdout, result.stdout
    assert "deleted; 0 webhooks left" in result.stdout, result.stdout


# --- Flask ----------------------------------------------------------------------------------------


@pytest.fixture
def flask_example(tmp_path: Path, asana_fake: FakeAsana) -> Iterator[tuple[Any, str]]:
    module = load_example("flask_app")
    app = module.create_app(
        {
            "ASANA_HOST": asana_fake.url,
            "ASANA_ACCESS_TOKEN": asana_fake.access_token,
            "WEBHOOK_DB": str(tmp_path / "webhooks.sqlite3"),
        }
    )
    with serve(app) as base_url:
        app.config["PUBLIC_URL"] = base_url
        yield app, base_url


def test_flask_app_establishes_a_webhook_and_keeps_each_event_once(
    flask_example: tuple[Any, str], asana_fake: FakeAsana
) -> None:
    _, base_url = flask_example
    answer = requests.post(
        f"{base_url}/subscriptions",
        json={"resource": "1200", "filters": [{"resource_type": "task", "action": "changed"}]},
        timeout=30,
    )
    assert answer.status_code == 201, f"establishing failed: {answer.text}"
    gid = answer.json()["gid"]
    assert answer.json()["target"] == f"{base_url}/asana/webhooks/1200"

    event = asana_fake.make_event("changed", "1200", field="due_on")
    assert asana_fake.deliver(gid, [event]) == 200
    assert asana_fake.deliver(gid, [event]) == 200, "a redelivery is answered 200 too"
    assert asana_fake.heartbeat(gid) == 200
    assert asana_fake.deliver(gid, [event], signature="0" * 64) == 401, "a forgery is refused"

    events = requests.get(f"{base_url}/events", timeout=10).json()
    assert len(events) == 1, f"the redelivered event should be stored once: {events}"
    assert events[0]["resource_gid"] == "1200" and events[0]["field"] == "due_on"
    assert events[0]["target"] == "/asana/webhooks/1200"


def test_flask_app_refuses_a_subscription_without_a_resource(
    flask_example: tuple[Any, str],
) -> None:
    _, base_url = flask_example
    answer = requests.post(f"{base_url}/subscriptions", json={}, timeout=10)
    assert answer.status_code == 400, answer.text


def test_flask_app_reports_a_failed_create(
    flask_example: tuple[Any, str], asana_fake: FakeAsana
) -> None:
    _, base_url = flask_example
    asana_fake.fail_next(403, message="Forbidden", method="POST")
    answer = requests.post(f"{base_url}/subscriptions", json={"resource": "1200"}, timeout=30)
    assert answer.status_code == 502 and "403" in answer.json()["error"], answer.text


# --- the sync script ---------------------------------------------------------------------------


def run_sync(*args: str) -> tuple[int, str]:
    module = load_example("sync_webhooks")
    out = io.StringIO()
    status = module.main(list(args), out=out)
    return status, out.getvalue()


def state(fake: FakeAsana) -> set[tuple[str, str, str]]:
    """Each webhook's resource, target and filters (without keys left unset)."""
    return {
        (
            w["resource"]["gid"],
            w["target"],
            json.dumps([{k: v for k, v in f.items() if v is not None} for f in w["filters"]]),
        )
        for w in fake.webhooks
    }


def test_sync_webhooks_reaches_the_declared_state_and_a_second_run_changes_nothing(
    tmp_path: Path, asana_fake: FakeAsana, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "webhooks.sqlite3"
    receiver_app = load_example("flask_app").create_app({"WEBHOOK_DB": str(secrets)})
    monkeypatch.setenv("ASANA_ACCESS_TOKEN", asana_fake.access_token)
    with serve(receiver_app) as base_url:
        hooks = f"{base_url}/asana/webhooks"
        changed = {"resource_type": "task", "action": "changed"}
        added = {"resource_type": "task", "action": "added"}
        declared = {
            "workspace": asana_fake.workspace_gid,
            "webhooks": [
                {"resource": "101", "target": f"{hooks}/missing", "filters": [changed]},
                {"resource": "102", "target": f"{hooks}/filters", "filters": [added, changed]},
                {"resource": "103", "target": f"{hooks}/failing"},
            ],
        }
        path = tmp_path / "declared.json"
        path.write_text(json.dumps(declared))
        asana_fake.add_webhook("102", f"{hooks}/filters", filters=[changed])
        failing = asana_fake.add_webhook("103", f"{hooks}/failing", secret="never-handed-over")
        assert asana_fake.deliver(failing["gid"], []) == 401, "no secret: the receiver refuses"
        stray = asana_fake.add_webhook("104", f"{hooks}/stray")
        argv = [str(path), "--host", asana_fake.url, "--secret-store", str(secrets)]

        status, printed = run_sync(*argv, "--dry-run")
        assert "would create  101" in printed and f"would delete  {stray['gid']}" in printed
        assert len(asana_fake.webhooks) == 3, "a dry run changes nothing"

        status, printed = run_sync(*argv)
        assert status == 1, f"one webhook is failing, so the status is 1:\n{printed}"
        assert f"deleted   {stray['gid']}" in printed, printed
        assert "updated" in printed and "created" in printed, printed
        assert f"FAILING   {failing['gid']}" in printed and "401" in printed, printed
        assert "1 created, 1 updated, 1 deleted, 1 unchanged, 1 failing" in printed, printed
        assert state(asana_fake) == {
            ("101", f"{hooks}/missing", json.dumps([changed])),
            ("102", f"{hooks}/filters", json.dumps([added, changed])),
            ("103", f"{hooks}/failing", "[]"),
        }
        created = next(w for w in asana_fake.webhooks if w["resource"]["gid"] == "101")
        assert asana_fake.deliver(created["gid"], [asana_fake.make_event()]) == 200, (
            "the receiver should verify with the secret the script's handshake stored"
        )

        asana_fake.clear_requests()
        status, printed = run_sync(*argv)
        assert "0 created, 0 updated, 0 deleted, 3 unchanged, 1 failing" in printed, printed
        methods = {request.method for request in asana_fake.requests}
        assert methods == {"GET"}, f"the second run should only read, it sent {methods}"


def test_sync_webhooks_without_a_token_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ASANA_ACCESS_TOKEN", raising=False)
    status, _ = run_sync(str(tmp_path / "declared.json"))
    assert status == 2 and "ASANA_ACCESS_TOKEN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "No such file"),
        ("{not json", "not valid JSON"),
        ('{"workspace": "1"}', "'webhooks' is missing"),
        ('{"workspace": "1", "webhooks": [{"resource": "1"}]}', "'target' is missing"),
        (
            '{"workspace": "1", "webhooks": [{"resource": "1", "target": "http://x/",'
            ' "filters": ["task changed"]}]}',
            "as in task:changed",
        ),
        (
            '{"workspace": "1", "webhooks": [{"resource": "1", "target": "http://x/",'
            ' "filters": [{"resource_type": "task", "colour": "red"}]}]}',
            "colour",
        ),
    ],
)
def test_sync_webhooks_with_a_bad_declared_file_exits_2_in_one_line(
    tmp_path: Path, content: Optional[str], complaint: str
) -> None:
    path = tmp_path / "declared.json"
    if content is not None:
        path.write_text(content)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "sync_webhooks.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ASANA_ACCESS_TOKEN": "token-for-a-test"},
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and complaint in result.stderr, result.stderr


def test_sync_webhooks_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "sync_webhooks.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--dry-run" in result.stdout, result.stderr


# --- Django --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"runserver exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    pytest.fail(f"runserver did not listen on {port} within 30 s:\n{log.read_text()}")


def test_django_project_establishes_a_webhook_and_stores_its_events(
    tmp_path: Path, asana_fake: FakeAsana
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_DB_PATH": str(tmp_path / "site.sqlite3"),
        "ASANA_HOST": asana_fake.url,
        "ASANA_ACCESS_TOKEN": asana_fake.access_token,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=DJANGO_PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    manage("migrate", "--verbosity", "0")
    log = tmp_path / "runserver.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=DJANGO_PROJECT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, server, log)
        # The command line's filter syntax, fields included (one syntax everywhere).
        gid, target = manage(
            "establish_webhook", "1300", "--filter", "task:changed:name,assignee"
        ).split()
        assert target == f"http://127.0.0.1:{port}/asana/webhooks/1300"
        webhook = asana_fake.get_webhook(gid)
        assert webhook is not None, f"FakeAsana has no webhook {gid}"
        assert [(f["resource_type"], f["action"], f["fields"]) for f in webhook["filters"]] == [
            ("task", "changed", ["name", "assignee"])
        ]

        event = asana_fake.make_event("changed", "1300", field="assignee")
        assert asana_fake.deliver(gid, [event]) == 200, log.read_text()
        assert asana_fake.deliver(gid, [event]) == 200, "a redelivery is answered 200"
        assert asana_fake.heartbeat(gid) == 200
        assert asana_fake.deliver(gid, [event], signature="f" * 64) == 401

        stored = [json.loads(line) for line in manage("list_events").splitlines()]
        assert len(stored) == 1, f"the redelivered event should be stored once: {stored}"
        assert stored[0]["resource_gid"] == "1300" and stored[0]["field"] == "assignee"
        assert stored[0]["target"] == "/asana/webhooks/1300"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
