"""``asana-webhooks demo`` runs end to end as a real process, quickly, and says what it does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest

pytestmark = pytest.mark.timeout(120)

#: The README promises the demo "finishes within seconds"; a slow CI machine gets slack.
TIME_BOUND = 30.0


def run(args: Sequence[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "ASANA_ACCESS_TOKEN": "", "PYTHONWARNINGS": "error::ResourceWarning"},
    )
    return done, time.monotonic() - started


def check_demo_output(out: str, served_by: str) -> None:
    def shows(pattern: str) -> None:
        assert re.search(pattern, out, re.M), f"the demo should show {pattern!r}:\n{out}"

    shows(r"FakeAsana serves Asana's webhooks API at http://127\.0\.0\.1:\d+/api/1\.0")
    shows(rf"receiver: {served_by}")
    # The handshake happens inside the create call, in this order on the wire.
    shows(
        r"client   -> POST /webhooks\n"
        r"    receiver <- POST /asana/webhooks/\d+ \(handshake, X-Hook-Secret header present\)\n"
        r".*secret stored \(64 hex chars\)\n"
        r"    receiver -> 200 OK with the X-Hook-Secret echoed\n"
        r"    client   <- 201 Created"
    )
    shows(r"on_events got 2 typed event\(s\)")
    shows(r"Event\(action=changed, resource=task \d+, change\.field=name")
    shows(r"Event\(action=added, resource=task \d+, parent=project \d+")
    shows(r"the target answered 200; the signature was verified")
    shows(r"the target answered 200; on_events was not called")
    shows(r"receiver -> 401 [A-Za-z]+: invalid X-Hook-Signature")
    shows(r"the target answered 401; nothing reached the app")
    shows(r"last_failure_content 401")
    shows(r"client   -> GET /webhooks\?workspace=\d+&limit=2\n")
    shows(r"client   -> GET /webhooks\?workspace=\d+&limit=2&offset=")
    assert out.count("client   -> GET /webhooks?workspace=") == 3, "5 webhooks, 2 a page"
    shows(r"filters now: task:changed:completed  story:added")
    assert out.count("client   -> DELETE /webhooks/") == 5
    shows(r"no webhooks left")
    shows(r"stopped\. The demo took")
    assert not re.search(r"\b[0-9a-f]{64}\b", out), "a secret was printed"


def test_the_demo_runs_with_flask_and_exits_0_within_seconds() -> None:
    done, elapsed = run(["-m", "asana_webhooks", "demo"])

    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    check_demo_output(done.stdout, "Flask")
    assert "Traceback" not in done.stderr, done.stderr
    assert elapsed < TIME_BOUND, f"the demo took {elapsed:.1f}s"


def test_the_demo_runs_without_flask_on_wsgiref() -> None:
    # Flask made unimportable, as on an install without it.
    code = (
        "import sys; sys.modules['flask'] = None\n"
        "from asana_webhooks._cli import main\n"
        "raise SystemExit(main(['demo']))\n"
    )

    done, elapsed = run(["-c", code])

    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    check_demo_output(done.stdout, "the standard library's wsgiref")
    assert elapsed < TIME_BOUND, f"the demo took {elapsed:.1f}s"


def test_asking_for_flask_without_it_is_one_clear_line() -> None:
    code = (
        "import sys; sys.modules['flask'] = None\n"
        "from asana_webhooks._cli import main\n"
        "raise SystemExit(main(['demo', '--server', 'flask']))\n"
    )

    done, _ = run(["-c", code])

    assert done.returncode == 2, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stderr.count("\n") == 1 and "Flask" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
