"""A Django site with the inbox, each part in its own process as in production.

The view built from settings stores deliveries; ``manage.py asana_webhooks_worker`` hands
them to the settings' handler, parks what keeps failing, and exits 1 under ``--drain`` then;
the admin shows the failed events with their error and replays them. On PostgreSQL, two
worker processes drain one inbox side by side and no event reaches the handler twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import event_key

TESTS = Path(__file__).parent


def django(
    database: str, *args: str, timeout: float = 180, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "django_site.settings",
        "ASANA_WEBHOOKS_TEST_DJANGO_DB": database,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    return subprocess.run(
        [sys.executable, *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def step(database: str, name: str) -> dict[str, Any]:
    done = django(database, "-m", "django_site.steps", name)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_delivery_fails_is_parked_shown_in_the_admin_and_replayed(tmp_path: Path) -> None:
    database = str(tmp_path / "site.sqlite3")
    calls = tmp_path / "calls.txt"
    migrated = django(database, "-m", "django", "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr

    delivered = step(database, "deliver")
    assert delivered == {"statuses": [200, 200], "pending": 2, "duplicates": 2}, (
        "the settings' view must store a delivery once, and drop its redelivery"
    )

    failing = django(
        database,
        "-m",
        "django",
        "asana_webhooks_worker",
        "--drain",
        ASANA_WEBHOOKS_TEST_HANDLER="django_site.handlers:fail",
    )
    assert failing.returncode == 1, "a drain that parked events must exit 1"
    assert "0 handled" in failing.stdout and "2 parked" in failing.stdout, failing.stdout
    assert "Traceback" not in failing.stderr

    seen = step(database, "admin")
    assert seen["listing_status"] == 200 and seen["detail_status"] == 200
    assert seen["listing_shows_error"], "the admin must show why the events failed"
    assert seen["listing_shows_target"] and seen["detail_shows_json"]
    assert seen["failed_before"] == 2 and seen["replay_message"]
    assert seen["states_after"] == ["pending", "pending"]
    assert seen["attempts_after"] == [0, 0], "a replay starts the attempts again"

    handled = django(
        database,
        "-m",
        "django",
        "asana_webhooks_worker",
        "--drain",
        INBOX_TEST_CALLS=str(calls),
    )
    assert handled.returncode == 0, handled.stderr
    assert "2 handled" in handled.stdout
    assert len(calls.read_text().splitlines()) == 2


def test_a_bad_handler_setting_is_one_line_and_exit_1(tmp_path: Path) -> None:
    database = str(tmp_path / "site.sqlite3")
    assert django(database, "-m", "django", "migrate", "--noinput").returncode == 0
    done = django(
        database,
        "-m",
        "django",
        "asana_webhooks_worker",
        "--drain",
        ASANA_WEBHOOKS_TEST_HANDLER="django_site.no_such_module:handle",
    )
    assert done.returncode == 1
    assert "HANDLER" in done.stderr and "no_such_module" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_workers_on_postgresql_never_handle_an_event_twice(tmp_path: Path) -> None:
    from django.conf import settings
    from django_databases import postgres_alias
    from inbox_servers import _django_inbox

    alias = postgres_alias()
    url = settings.DATABASES[alias]
    database = (
        f"postgresql://{url['USER']}:{url['PASSWORD']}@{url['HOST']}:{url['PORT']}/{url['NAME']}"
    )
    inbox = next(_django_inbox(alias, clock=time.time))
    expected = []
    for delivery in range(150):
        events = [
            {
                "user": {"gid": "9001", "resource_type": "user"},
                "created_at": f"2026-03-01T10:{delivery // 60:02d}:{delivery % 60:02d}.{i:03d}Z",
                "action": "changed",
                "resource": {"gid": str(1200 + delivery), "resource_type": "task"},
                "parent": None,
            }
            for i in range(4)
        ]
        inbox.store(f"/asana/{delivery % 5}", events)
        expected += [event_key(e) for e in events]
    calls, meet = tmp_path / "calls.txt", tmp_path / "meet"
    meet.mkdir()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "asana_webhooks_worker",
                "--drain",
                "--batch-size",
                "4",
            ],
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "django_site.settings",
                "ASANA_WEBHOOKS_TEST_DJANGO_DB": database,
                "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                "INBOX_TEST_CALLS": str(calls),
                "INBOX_TEST_MEET": str(meet),
                "INBOX_TEST_SLEEP": "0.002",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    lines = [line.split() for line in calls.read_text().splitlines()]
    handled = Counter(key for _, key in lines)
    twice = [key for key, count in handled.items() if count > 1]
    assert not twice, f"{len(twice)} events reached the handler twice"
    assert sorted(handled) == sorted(expected), "some events never reached the handler"
    per_process = Counter(pid for pid, _ in lines)
    assert len(per_process) == 2, f"both workers must have handled events: {per_process}"
    assert inbox.stats().handled == len(expected)


def test_a_worker_survives_postgresql_dropping_its_connection() -> None:
    import psycopg
    from _services import require_postgres
    from django.db import connections
    from django_databases import postgres_alias
    from inbox_servers import _django_inbox

    from asana_webhooks import InboxError

    alias = postgres_alias()
    inbox = next(_django_inbox(alias, clock=time.time))
    inbox.store("/asana/1", [{"action": "added", "resource": {"gid": "1"}}])
    backend_pid = connections[alias].connection.info.backend_pid
    with psycopg.connect(require_postgres(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
    with pytest.raises(InboxError, match="could not read the stats"):
        inbox.stats()
    assert inbox.stats().pending == 1, "the next call must open a new connection"
