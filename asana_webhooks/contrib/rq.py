"""Run the application's handler on RQ workers.

::

    from redis import Redis
    from rq import Queue
    from asana_webhooks.contrib.rq import RQHandOff

    queue = Queue("asana", connection=Redis())
    hand_off = RQHandOff(queue, inbox="sqlite:////srv/asana/inbox.sqlite3",
                         handler="mysite.asana:on_events")
    receiver = WebhookReceiver(store, inbox=inbox, on_stored=hand_off)

and run ``rq worker asana``. As with Celery, the job is a nudge: the events stay in the inbox
and ``handle_inbox`` claims them there, so a lost job costs a delay (``hand_off.sweep()`` or
``asana_webhooks.sweep`` hands over again) and a doubled job does nothing twice.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Optional, Sequence

from rq import Queue

from asana_webhooks._handoff import DEFAULT_SWEEP_AFTER, describe_failure, sweep
from asana_webhooks._inbox import Inbox

__all__ = ["RQHandOff", "handle_inbox"]

logger = logging.getLogger("asana_webhooks")

_opened: dict[tuple[int, str], Inbox] = {}
_lock = threading.Lock()


def _inbox(url: str) -> Inbox:
    # One inbox per URL per worker process: RQ forks a work horse per job, so never reuse a
    # connection opened before the fork.
    with _lock:
        key = (os.getpid(), url)
        if key not in _opened:
            from asana_webhooks._urls import open_inbox

            _opened[key] = open_inbox(url)
        return _opened[key]


def handle_inbox(
    inbox: str,
    handler: str,
    lease: Optional[float] = None,
    max_attempts: Optional[int] = None,
) -> dict[str, int]:
    """The RQ job: drain ``inbox`` (a URL) through ``handler`` (``"module:function"``)."""
    from asana_webhooks._worker import Worker, resolve_handler

    options: dict[str, Any] = {}
    if lease is not None:
        options["lease"] = lease
    if max_attempts is not None:
        options["max_attempts"] = max_attempts
    name = f"rq:{os.getpid()}"
    result = Worker(_inbox(inbox), resolve_handler(handler), name=name, **options).drain()
    return {"handled": result.handled, "retried": result.retried, "parked": result.parked}


class RQHandOff:
    """``on_stored`` for a receiver: enqueue ``handle_inbox`` on ``queue``. Never raises."""

    def __init__(
        self,
        queue: Queue,
        *,
        inbox: str,
        handler: str,
        lease: Optional[float] = None,
        max_attempts: Optional[int] = None,
        job_timeout: float = 600.0,
    ) -> None:
        self.queue = queue
        self.inbox = inbox
        self.handler = handler
        self.lease = lease
        self.max_attempts = max_attempts
        self.job_timeout = job_timeout

    def __repr__(self) -> str:
        return f"RQHandOff(queue={self.queue.name!r}, handler={self.handler!r})"

    def __call__(self, target: str, ids: Sequence[str]) -> None:
        try:
            self.queue.enqueue(
                handle_inbox,
                self.inbox,
                self.handler,
                self.lease,
                self.max_attempts,
                job_timeout=int(self.job_timeout),
                result_ttl=0,
            )
        except Exception as exc:  # Redis is down: the events wait in the inbox for a sweep
            logger.warning(
                "Could not hand %d stored events for %s to RQ (%s); they wait in the inbox "
                "for the next sweep",
                len(ids),
                target or "the inbox",
                describe_failure(exc),
            )

    def sweep(self, *, older_than: float = DEFAULT_SWEEP_AFTER) -> bool:
        """Enqueue again if inbox work waited ``older_than`` seconds (a lost job)."""
        return sweep(_inbox(self.inbox), self, older_than=older_than)
