"""``manage.py asana_webhooks_reconcile`` in a real Django process, against FakeAsana.

The site is a settings module written to a temp dir; the command runs as a user runs it,
``python -m django asana_webhooks_reconcile`` with ``DJANGO_SETTINGS_MODULE`` set.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asana_webhooks import SQLiteInbox
from asana_webhooks.testing import FakeAsana

pytest.importorskip("django")
pytestmark = pytest.mark.timeout(180)
TIMEOUT = 120.0


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana() as running:
        yield running


class Site:
    def __init__(self, fake: FakeAsana, directory: Path) -> None:
        self.fake = fake
        self.directory = directory
        self.inbox_path = directory / "inbox.sqlite3"
        self.gaps_path = directory / "gaps.jsonl"
        self.project = fake.add_resource(resource_type="project", name="Launch")
        (directory / "site_settings.py").write_text(
            textwrap.dedent(
                f"""
                SECRET_KEY = "reconcile-tests-only"
                INSTALLED_APPS = ["asana_webhooks.contrib.django"]
                DATABASES = {{"default": {{
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": {str(directory / "site.sqlite3")!r},
                }}}}
                USE_TZ = True
                ASANA_WEBHOOKS = {{
                    "INBOX": "sqlite:///{self.inbox_path}",
                    "RECONCILE": {{
                        "RESOURCES": [{self.project!r}],
                        "HOST": {fake.url!r},
                        "ON_GAP": "site_gaps:record",
                    }},
                }}
                """
            )
        )
        (directory / "site_gaps.py").write_text(
            textwrap.dedent(
                f"""
                import json

                def record(resource, since):
                    with open({str(self.gaps_path)!r}, "a") as f:
                        f.write(json.dumps([resource, since.isoformat() if since else None]))
                        f.write("\\n")
                """
            )
        )

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "site_settings",
            "PYTHONPATH": os.pathsep.join([str(self.directory), os.environ.get("PYTHONPATH", "")]),
            "ASANA_ACCESS_TOKEN": self.fake.access_token,
        }

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "asana_webhooks_reconcile", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            cwd=self.directory,
        )


@pytest.fixture
def site(fake: FakeAsana, tmp_path: Path) -> Site:
    return Site(fake, tmp_path)


def test_once_recovers_into_the_settings_inbox(site: Site) -> None:
    first = site.manage("--once")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        f"{site.project}: 0 recovered, 0 already known; first pass: watching from now on"
    )
    events = site.fake.generate_traffic(site.project, 12, seed=1)
    inbox = SQLiteInbox(site.inbox_path)
    inbox.store("/asana/hook", events[:5])
    second = site.manage("--once", "--json")
    assert second.returncode == 0, second.stderr
    [entry] = json.loads(second.stdout)
    assert (entry["recovered"], entry["already_known"]) == (7, 5)
    assert inbox.stats().stored == 12
    inbox.close()


def test_a_gap_reaches_the_settings_on_gap_and_exits_3(site: Site) -> None:
    assert site.manage("--once").returncode == 0
    last_good = SQLiteInbox(site.inbox_path).sync_state(site.project)
    assert last_good is not None
    site.fake.advance(25 * 3600)
    result = site.manage("--once")
    assert result.returncode == 3, result.stderr
    assert "GAP" in result.stdout
    [line] = site.gaps_path.read_text().splitlines()
    resource, since = json.loads(line)
    assert resource == site.project
    began = dt.datetime.fromtimestamp(last_good.stored_at, tz=dt.timezone.utc)
    assert since == began.isoformat(), "on_gap gets when the last good pass stored its token"


def test_a_missing_setting_is_one_line_not_a_traceback(site: Site) -> None:
    settings = site.directory / "site_settings.py"
    settings.write_text(settings.read_text().replace('"RESOURCES"', '"RESOURCE"'))
    result = site.manage("--once")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert "unknown RECONCILE keys ['RESOURCE']" in result.stderr


def test_the_long_running_command_stops_on_sigterm(site: Site) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "asana_webhooks_reconcile", "--interval", "1"],
        env=site.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=site.directory,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while SQLiteInbox(site.inbox_path).sync_state(site.project) is None:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command never took a token"
            time.sleep(0.1)
        site.fake.generate_traffic(site.project, 4, seed=2)
        while SQLiteInbox(site.inbox_path).stats().stored < 4:
            assert time.monotonic() < deadline, "the events were never recovered"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
