"""The guide's Celery recipe, run by a real Celery worker over a real Redis broker.

The task's code is taken from docs/guides/never-miss-an-event.rst as printed there, so the
recipe cannot drift from what works. The worker runs in a Django site configured the way the
guide says (``ASANA_WEBHOOKS["RECONCILE"]``) against FakeAsana.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from _services import require_redis, unique_name

from asana_webhooks import SQLiteInbox
from asana_webhooks.testing import FakeAsana

pytest.importorskip("celery")
pytest.importorskip("django")
pytestmark = pytest.mark.timeout(240)

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "never-miss-an-event.rst"
TIMEOUT = 120.0


def recipe_tasks() -> str:
    """The ``myapp/tasks.py`` block of the guide, up to where ``proj/celery.py`` begins."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(r"\n( +)# myapp/tasks\.py\n(.*?)\n\1# proj/celery\.py", text, re.S)
    assert match, "the guide's Celery recipe (# myapp/tasks.py ... # proj/celery.py) is gone"
    return textwrap.dedent(match.group(1) + "# myapp/tasks.py\n" + match.group(2))


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana() as running:
        yield running


def test_the_guides_celery_task_recovers_events_in_a_real_worker(
    fake: FakeAsana, tmp_path: Path
) -> None:
    broker = require_redis()
    queue = unique_name("aw_reconcile")
    project = fake.add_resource(resource_type="project", name="Launch")
    inbox_path = tmp_path / "inbox.sqlite3"
    (tmp_path / "site_settings.py").write_text(
        textwrap.dedent(
            f"""
            SECRET_KEY = "celery-recipe-tests-only"
            INSTALLED_APPS = ["asana_webhooks.contrib.django"]
            DATABASES = {{"default": {{
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": {str(tmp_path / "site.sqlite3")!r},
            }}}}
            USE_TZ = True
            ASANA_WEBHOOKS = {{
                "INBOX": "sqlite:///{inbox_path}",
                "RECONCILE": {{"RESOURCES": [{project!r}], "HOST": {fake.url!r}}},
            }}
            """
        )
    )
    (tmp_path / "myapp_tasks.py").write_text(recipe_tasks())
    (tmp_path / "proj_celery.py").write_text(
        textwrap.dedent(
            f"""
            import django
            from celery import Celery

            django.setup()
            app = Celery("proj", broker={broker!r})
            app.conf.task_default_queue = {queue!r}
            app.conf.worker_hijack_root_logger = False
            import myapp_tasks  # noqa: E402,F401  (registers the shared task)
            """
        )
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "site_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "ASANA_ACCESS_TOKEN": fake.access_token,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "proj_celery", "worker", "--pool=solo",
         "--concurrency=1", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "-Q", queue, "--loglevel=WARNING"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    send = textwrap.dedent(
        f"""
        from proj_celery import app
        app.send_task("myapp_tasks.reconcile_asana_events", queue={queue!r})
        """
    )

    def send_task() -> None:
        subprocess.run(
            [sys.executable, "-c", send], env=env, cwd=tmp_path, check=True, timeout=TIMEOUT
        )

    def wait(condition: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not check():
            if worker.poll() is not None:
                raise AssertionError(f"the Celery worker exited: {worker.communicate()[0]}")
            assert time.monotonic() < deadline, f"the task never {condition}"
            time.sleep(0.2)

    try:
        send_task()  # the first pass takes the token
        wait("took a token", lambda: SQLiteInbox(inbox_path).sync_state(project) is not None)
        generated = fake.generate_traffic(project, 25, seed=4)
        send_task()
        wait("recovered the events", lambda: SQLiteInbox(inbox_path).stats().stored >= 25)
    finally:
        worker.terminate()
        try:
            output = worker.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            output = worker.communicate()[0]
    assert SQLiteInbox(inbox_path).stats().stored == len(generated) == 25
    assert "Traceback" not in output, output
