"""``manage.py asana_webhooks_ensure FILE`` in a real Django process, against FakeAsana.

The settings name a SQLite secret store that a real receiver (in this process) serves the
targets with, so the handshakes of the webhooks the command creates are really verified.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from asana_webhooks import SQLiteSecretStore, WebhookReceiver
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana

pytest.importorskip("django")
TIMEOUT = 120.0


class Site:
    def __init__(self, fake: FakeAsana, directory: Path) -> None:
        self.fake = fake
        self.directory = directory
        self.secrets = directory / "secrets.sqlite3"
        self.server = ReceiverServer.for_receiver(
            WebhookReceiver(SQLiteSecretStore(self.secrets))
        ).start()
        (directory / "ensure_settings.py").write_text(
            textwrap.dedent(
                f"""
                SECRET_KEY = "ensure-tests-only"
                INSTALLED_APPS = ["asana_webhooks.contrib.django"]
                DATABASES = {{"default": {{
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": {str(directory / "site.sqlite3")!r},
                }}}}
                USE_TZ = True
                ASANA_WEBHOOKS = {{"SECRET_STORE": "sqlite:///{self.secrets}"}}
                """
            )
        )
        self.file = directory / "webhooks.toml"
        self.projects = [fake.add_resource(resource_type="project") for _ in range(3)]
        self.file.write_text(
            "\n".join(
                f'[[webhook]]\nworkspace = "{fake.workspace_gid}"\nresource = "{project}"\n'
                f'target = "{self.server.url}/asana/{project}"\n'
                'filters = [{ resource_type = "task", action = "added" }]\n'
                for project in self.projects
            )
        )

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ensure_settings",
            "PYTHONPATH": os.pathsep.join([str(self.directory), os.environ.get("PYTHONPATH", "")]),
            "ASANA_ACCESS_TOKEN": self.fake.access_token,
            "ASANA_HOST": self.fake.url,
        }
        return subprocess.run(
            [sys.executable, "-m", "django", "asana_webhooks_ensure", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            cwd=self.directory,
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with FakeAsana() as fake:
        site = Site(fake, tmp_path)
        yield site
        site.server.stop()


def test_the_command_creates_what_is_declared_once(site: Site) -> None:
    dry = site.manage(str(site.file), "--dry-run")
    assert dry.returncode == 3, dry
    assert site.fake.webhooks == []

    first = site.manage(str(site.file), "--json")
    second = site.manage(str(site.file), "--json")

    assert first.returncode == 0, first.stderr
    made = [c["action"] for c in json.loads(first.stdout)["changes"]]
    assert made == ["create"] * 3
    assert sorted(w["resource"]["gid"] for w in site.fake.webhooks) == sorted(site.projects)
    assert second.returncode == 0, second.stderr
    assert [c["action"] for c in json.loads(second.stdout)["changes"]] == ["keep"] * 3


def test_a_bad_file_exits_2_naming_the_entry(site: Site) -> None:
    site.file.write_text(site.file.read_text() + '\n[[webhook]]\nworkspace = "1"\n')
    site.fake.clear_requests()
    result = site.manage(str(site.file))
    assert result.returncode == 2, result
    assert "webhook 4, resource: is missing" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert site.fake.requests == []
