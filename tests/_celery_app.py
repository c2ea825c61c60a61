"""The Celery app that the hand-off tests run in a real ``celery worker`` process.

``make_app`` builds it for the test process; a worker process (``celery -A _celery_app``)
builds the same app from the environment: ``ASANA_TEST_BROKER`` (broker URL),
``ASANA_TEST_INBOX`` (inbox URL), ``ASANA_TEST_QUEUE`` (a queue of the test's own) and
``ASANA_TEST_HANDLED`` (where ``_handoff_handler.record`` writes what it was handed).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from asana_webhooks.contrib.celery import inbox_task

try:  # imported as tests._celery_app by the test, as _celery_app by the worker
    from tests._handoff_handler import record
except ImportError:
    from _handoff_handler import record  # type: ignore[no-redef]


def make_app(broker: str, inbox: str, queue: str) -> tuple[Celery, Any]:
    app = Celery("asana_webhooks_tests", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2.0,
        broker_transport_options={"socket_connect_timeout": 1.0, "socket_timeout": 2.0},
        worker_hijack_root_logger=False,
    )
    return app, inbox_task(app, inbox=inbox, handler=record, lease=10.0)


if "ASANA_TEST_BROKER" in os.environ:
    app, handle_inbox = make_app(
        os.environ["ASANA_TEST_BROKER"],
        os.environ["ASANA_TEST_INBOX"],
        os.environ["ASANA_TEST_QUEUE"],
    )
