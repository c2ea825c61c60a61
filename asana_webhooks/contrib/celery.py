"""Run the application's handler on a site's existing Celery workers.

::

    from celery import Celery
    from asana_webhooks.contrib.celery import CeleryHandOff, inbox_task

    app = Celery("mysite", broker="redis://127.0.0.1:6379/0")
    handle_inbox = inbox_task(
        app, inbox="sqlite:////srv/asana/inbox.sqlite3", handler="mysite.asana:on_events"
    )
    receiver = WebhookReceiver(store, inbox=inbox, on_stored=CeleryHandOff(handle_inbox))

The receiver stores a delivery's events in the inbox, answers Asana, and only then hands a
nudge to Celery; the task claims the events from the inbox and calls the handler through a
``Worker``. A message Celery loses costs nothing but a delay: schedule the same task every
minute with Celery beat (``beat_schedule_entry``), or call ``asana_webhooks.sweep``, and it
takes up whatever waited. A message delivered twice finds the work claimed or done.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from celery import Celery, Task

from asana_webhooks._handoff import describe_failure
from asana_webhooks._inbox import Inbox

__all__ = ["DEFAULT_TASK_NAME", "CeleryHandOff", "beat_schedule_entry", "inbox_task"]

logger = logging.getLogger("asana_webhooks")

DEFAULT_TASK_NAME = "asana_webhooks.handle_inbox"

#: Publishing happens inside Asana's request, which Asana gives 10 seconds: try twice, quickly,
#: then leave the work to the sweeper rather than keep Asana waiting on a broker that is down.
DEFAULT_RETRY_POLICY: Mapping[str, float] = {
    "max_retries": 1,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}

InboxSource = Union[Inbox, str, Callable[[], Inbox]]
HandlerSource = Union[str, Callable[[Sequence[Any], str], None]]


class _PerProcess:
    """Opens the inbox once per worker process, on first use (never across a fork)."""

    def __init__(self, source: InboxSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._opened: Optional[tuple[int, Inbox]] = None

    def __call__(self) -> Inbox:
        if not isinstance(self._source, str) and isinstance(self._source, Inbox):
            return self._source
        with self._lock:
            if self._opened is None or self._opened[0] != os.getpid():
                self._opened = (os.getpid(), _open(self._source))
            return self._opened[1]


def _open(source: Union[str, Callable[[], Inbox]]) -> Inbox:
    if isinstance(source, str):
        from asana_webhooks._urls import open_inbox

        return open_inbox(source)
    return source()


def inbox_task(
    app: Celery,
    *,
    inbox: InboxSource,
    handler: HandlerSource,
    name: str = DEFAULT_TASK_NAME,
    lease: Optional[float] = None,
    max_attempts: Optional[int] = None,
) -> Task:
    """Register on ``app`` the task that hands inbox events to ``handler(events, target)``.

    ``inbox`` is an inbox, an inbox URL (``sqlite:///...``, ``redis://...``) or a function
    returning one, opened once per worker process; ``handler`` is the function or its
    ``"module:function"`` name. Each run drains what is pending (retrying a raising handler
    with backoff, then parking the events as failed, as ``Worker.drain`` does).
    """
    opened = _PerProcess(inbox)
    resolved: list[Callable[[Sequence[Any], str], None]] = []
    options: dict[str, Any] = {}
    if lease is not None:
        options["lease"] = lease
    if max_attempts is not None:
        options["max_attempts"] = max_attempts

    @app.task(name=name, ignore_result=True)  # type: ignore[untyped-decorator]
    def handle_inbox(target: str = "") -> None:
        from asana_webhooks._worker import Worker, resolve_handler

        if not resolved:
            resolved.append(resolve_handler(handler) if isinstance(handler, str) else handler)
        worker_name = f"celery@{socket.gethostname()}:{os.getpid()}"
        Worker(opened(), resolved[0], name=worker_name, **options).drain()

    return handle_inbox


class CeleryHandOff:
    """``on_stored`` for a receiver: nudge the Celery task after events were stored.

    Never raises: if the broker cannot be reached the failure is logged (without credentials)
    and the events wait in the inbox for the next sweep or beat run.
    """

    def __init__(
        self,
        task: Task,
        *,
        retry_policy: Optional[Mapping[str, float]] = None,
        queue: Optional[str] = None,
    ) -> None:
        self.task = task
        self.retry_policy = dict(retry_policy or DEFAULT_RETRY_POLICY)
        self.queue = queue

    def __repr__(self) -> str:
        return f"CeleryHandOff({self.task.name!r})"

    def __call__(self, target: str, ids: Sequence[str]) -> None:
        try:
            self.task.apply_async(
                kwargs={"target": target},
                retry=True,
                retry_policy=self.retry_policy,
                queue=self.queue,
            )
        except Exception as exc:  # the broker is down or refused: the sweeper covers it
            logger.warning(
                "Could not hand %d stored events for %s to Celery (%s); they wait in the "
                "inbox for the next sweep",
                len(ids),
                target or "the inbox",
                describe_failure(exc),
            )


def beat_schedule_entry(task: Task, every: float = 60.0) -> dict[str, Any]:
    """A ``beat_schedule`` entry that runs ``task`` every ``every`` seconds: the sweeper.

    ``app.conf.beat_schedule = {"asana-webhooks-inbox": beat_schedule_entry(handle_inbox)}``
    """
    return {"task": task.name, "schedule": every}
