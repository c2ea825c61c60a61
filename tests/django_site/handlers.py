"""Handlers the test site's workers run.

``record`` appends ``<pid> <event key>`` per event to ``INBOX_TEST_CALLS`` (one write per
call, so lines of two processes never interleave). With ``INBOX_TEST_MEET`` set to a
directory, each process's first call waits (up to a minute) until two processes have
checked in there, so two workers are sure to run side by side.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from asana_webhooks import Event, event_key

_met = False


def _meet() -> None:
    global _met
    directory = os.environ.get("INBOX_TEST_MEET")
    if _met or not directory:
        return
    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(directory)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    _met = True


def record(events: Sequence[Event], target: str) -> None:
    _meet()
    lines = "".join(f"{os.getpid()} {event_key(event)}\n" for event in events)
    fd = os.open(os.environ["INBOX_TEST_CALLS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, lines.encode())
    finally:
        os.close(fd)
    time.sleep(float(os.environ.get("INBOX_TEST_SLEEP", "0")))


def fail(events: Sequence[Event], target: str) -> None:
    raise RuntimeError(f"cannot handle {len(events)} events for {target}")
