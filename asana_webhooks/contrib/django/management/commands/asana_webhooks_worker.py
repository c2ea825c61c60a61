"""``manage.py asana_webhooks_worker``: hand the inbox's events to the settings' HANDLER.

Runs until SIGTERM or Ctrl-C (the batch in hand is finished, the rest released), or with
``--drain`` handles what is pending and exits: 0, or 1 if some events were parked as failed.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = (
        "Hand events stored in the Asana webhooks inbox (settings.ASANA_WEBHOOKS['INBOX']) to "
        "the handler (ASANA_WEBHOOKS['HANDLER']) until stopped. A handler that raises is "
        "retried with backoff, then parked as failed (see the admin). Delivery is at least "
        "once: make the handler idempotent with asana_webhooks.event_key."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--lease", type=float, help="seconds a claim is held (default 30)")
        parser.add_argument("--concurrency", type=int, help="threads handling claims at once")
        parser.add_argument("--max-attempts", type=int, help="failed calls before parking")
        parser.add_argument("--batch-size", type=int, help="events per claim")
        parser.add_argument("--name", help="this worker's name in logs and claims")
        parser.add_argument(
            "--drain",
            action="store_true",
            help="handle what is pending and exit: 0, or 1 if some events were parked",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.exceptions import ImproperlyConfigured
        from django.db import connections

        from asana_webhooks.contrib.django.conf import worker_from_settings

        try:
            worker = worker_from_settings(
                lease=options["lease"],
                concurrency=options["concurrency"],
                max_attempts=options["max_attempts"],
                batch_size=options["batch_size"],
                name=options["name"],
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        library_logger = logging.getLogger("asana_webhooks")
        if not library_logger.handlers and not logging.getLogger().handlers:
            log_handler = logging.StreamHandler(sys.stderr)
            log_handler.setFormatter(logging.Formatter("asana_webhooks_worker: %(message)s"))
            library_logger.addHandler(log_handler)
            library_logger.setLevel(logging.INFO)
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda signum, frame: stop.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            if options["drain"]:
                result = worker.drain(stop)
            else:
                self.stderr.write(f"{worker.name}: handling events; stop with Ctrl-C or SIGTERM")
                result = worker.run(stop)
        except Exception as exc:  # the inbox failed under a drain: one line, no traceback
            raise CommandError(f"the inbox failed: {type(exc).__name__}: {exc}") from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            worker.inbox.close()
            connections.close_all()
        summary = f"{result.handled} handled, {result.retried} retried, {result.parked} parked"
        self.stdout.write(summary)
        if options["drain"] and result.parked:
            sys.exit(1)
