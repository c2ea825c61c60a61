"""The stand-in's clock: real time (or a test's clock) plus an offset that only grows.

``advance(seconds)`` moves it forward, so a test can see what Asana does after hours or days
(sync tokens expiring, retries, heartbeats, a failing webhook deleted) in a fraction of a second.
"""

from __future__ import annotations

import datetime
import threading
from typing import Callable

Clock = Callable[[], datetime.datetime]


class FakeClock:
    """``now()`` is ``base() + offset``; the offset never goes back, so time never does."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._offset = datetime.timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime.datetime:
        with self._lock:
            offset = self._offset
        return self._base() + offset

    @property
    def offset(self) -> datetime.timedelta:
        """How far ahead of its base clock this clock runs."""
        with self._lock:
            return self._offset

    def advance_to(self, moment: datetime.datetime) -> None:
        """Move forward so that ``now() >= moment``; never moves back."""
        with self._lock:
            wanted = moment - self._base()
            if wanted > self._offset:
                self._offset = wanted

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the clock only goes forward: seconds must be >= 0, not {seconds}")
        with self._lock:
            self._offset += datetime.timedelta(seconds=seconds)
