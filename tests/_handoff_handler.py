"""The handler the hand-off tests run in real worker processes (Celery, RQ).

It appends each event's key and target to the file named by ``ASANA_TEST_HANDLED``, one line
per event per call, so the test counts what reached the handler and how often.
"""

from __future__ import annotations

import os
from typing import Sequence

from asana_webhooks import Event
from asana_webhooks._inbox import event_key


def record(events: Sequence[Event], target: str) -> None:
    lines = "".join(f"{event_key(event)} {target}\n" for event in events)
    with open(os.environ["ASANA_TEST_HANDLED"], "a", encoding="utf-8") as handled:
        handled.write(lines)
        handled.flush()
        os.fsync(handled.fileno())
