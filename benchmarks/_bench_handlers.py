"""Handlers for ``benchmarks/inbox.py``'s worker processes."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from asana_webhooks import Event


def noop(events: Sequence[Event], target: str) -> None:
    pass


def sleepy(events: Sequence[Event], target: str) -> None:
    time.sleep(float(os.environ.get("BENCH_HANDLER_SLEEP", "0.5")))
