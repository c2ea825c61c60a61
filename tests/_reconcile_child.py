"""A reconciler process that stops, for the test to kill it, with events fetched but not stored.

Usage: ``python _reconcile_child.py INBOX_PATH RESOURCE MARK_PATH`` with ``ASANA_HOST`` and
``ASANA_ACCESS_TOKEN`` set. On the ``PAUSE_AT_STORE``-th call to ``store_polled`` (default 1) it
writes MARK_PATH and sleeps instead of storing: the test then sends SIGKILL.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from asana_webhooks import ApiClient, Configuration, Reconciler, SQLiteInbox, StoreResult


class PausingInbox:
    def __init__(self, inbox: SQLiteInbox, mark: Path, pause_at: int) -> None:
        self._inbox = inbox
        self._mark = mark
        self._pause_at = pause_at
        self._calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inbox, name)

    def store_polled(
        self, resource: str, events: Sequence[Mapping[str, Any]], sync: str, **kw: Any
    ) -> StoreResult:
        self._calls += 1
        if self._calls == self._pause_at:
            self._mark.write_text(f"{len(events)} events fetched, not stored\n")
            time.sleep(600)  # killed here
        return self._inbox.store_polled(resource, events, sync, **kw)


def main() -> None:
    inbox_path, resource, mark = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    config = Configuration(
        host=os.environ["ASANA_HOST"], access_token=os.environ["ASANA_ACCESS_TOKEN"]
    )
    inbox = PausingInbox(SQLiteInbox(inbox_path), mark, int(os.environ.get("PAUSE_AT_STORE", "1")))
    Reconciler(ApiClient(config), inbox, [resource]).run_once()  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
