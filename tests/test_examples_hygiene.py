"""Following the README, the guides and the examples leaves a clone as it found it.

Two things a newcomer trips over when running them in order: files the examples create that
``git status`` then shows, and one port used for two things at once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.rst"))]
EXAMPLES = ROOT / "examples"

#: The one port of each role, as README.md and docs/quickstart.rst announce them.
PORTS = {"fake": 8100, "serve": 8080, "runserver": 8000, "flask": 5000}


def git(*args: str, cwd: Path) -> str:
    executable = shutil.which("git")
    assert executable is not None
    result = subprocess.run(
        [executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


@pytest.fixture
def scratch_clone(tmp_path: Path) -> Path:
    """The examples and this checkout's .gitignore, committed in a repository of their own
    (so the test sees the working tree's .gitignore, committed or not)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "clone"
    shutil.copytree(EXAMPLES, clone / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".gitignore", clone / ".gitignore")
    git("init", "-q", cwd=clone)
    git("add", "-A", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x", cwd=clone)
    return clone


FLASK_WITH_DEFAULTS = """
import sys
sys.path.insert(0, "examples")
import flask_app
app = flask_app.create_app({"ASANA_ACCESS_TOKEN": "t"})
client = app.test_client()
# A handshake nobody announced is refused, but the store and the event log are open by then.
client.post("/asana/webhooks/1", headers={"X-Hook-Secret": "s"})
print(client.get("/events").status_code)
"""


def test_running_the_examples_with_their_defaults_leaves_git_status_clean(
    scratch_clone: Path,
) -> None:
    # The Flask app's default SQLite file (and its -wal/-shm), in the directory it runs from.
    flask = subprocess.run(
        [sys.executable, "-c", FLASK_WITH_DEFAULTS],
        cwd=scratch_clone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert flask.returncode == 0 and flask.stdout.strip() == "200", flask.stderr
    # The Django example's default database beside manage.py.
    django = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=scratch_clone / "examples" / "django_project",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert django.returncode == 0, django.stderr
    created = {p.name for p in scratch_clone.rglob("*.sqlite3*")}
    assert {"webhooks.sqlite3", "db.sqlite3"} <= created, f"the examples made {created}"
    # The files the guides' commands name: the stores of `serve --secrets` and the scripts.
    for name in ("secrets.sqlite3", "asana-secrets.sqlite3", "webhooks.sqlite3-wal"):
        (scratch_clone / name).write_bytes(b"")
    status = git("status", "--porcelain", "--untracked-files=all", cwd=scratch_clone)
    assert status == "", f"running the examples left files git shows:\n{status}"


def port_uses(role: str) -> list[tuple[str, int]]:
    """Every port the README and the guides give ``role``, with the file it is in."""
    patterns = {
        "fake": r"asana-webhooks fake\b[^\n]*--port (\d+)|ASANA_HOST=http://127\.0\.0\.1:(\d+)",
        "serve": r"asana-webhooks serve\b[^\n]*--port (\d+)|--target http://127\.0\.0\.1:(\d+)",
        "runserver": r"runserver (?:127\.0\.0\.1:)?(\d+)",
        "flask": r"localhost:(\d+)/subscriptions|flask [^\n]*--port (\d+)",
    }
    uses = []
    for path in DOCS:
        for match in re.finditer(patterns[role], path.read_text(encoding="utf-8")):
            port = next(group for group in match.groups() if group)
            uses.append((path.name, int(port)))
    return uses


@pytest.mark.parametrize("role", list(PORTS))
def test_each_role_has_its_own_port_in_every_document(role: str) -> None:
    uses = port_uses(role)
    assert uses, f"no document shows a port for {role}: the pattern no longer matches"
    wrong = [(name, port) for name, port in uses if port != PORTS[role]]
    assert not wrong, f"{role} should be on {PORTS[role]} everywhere, found {wrong}"


def test_the_examples_defaults_match_the_documented_ports() -> None:
    settings = (EXAMPLES / "django_project" / "mysite" / "settings.py").read_text()
    assert f'"http://127.0.0.1:{PORTS["runserver"]}"' in settings
    flask = (EXAMPLES / "flask_app.py").read_text()
    assert f"port={PORTS['flask']}" in flask and f"127.0.0.1:{PORTS['flask']}" in flask
