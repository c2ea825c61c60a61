"""``manage.py asana_webhooks_reconcile``: recover the events webhooks missed into the inbox.

Reads ``settings.ASANA_WEBHOOKS["RECONCILE"]`` (see ``asana_webhooks.contrib.django.reconcile``).
Runs until SIGTERM or Ctrl-C, or with ``--once`` reads every resource once, prints per
resource how many events were recovered and how many were already known, and exits: 0, 3 on a
gap (events may be missing: re-read the resource), 1 if a resource could not be read.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = (
        "Read the Events API of each resource in settings.ASANA_WEBHOOKS['RECONCILE'] and "
        "store the events webhooks did not deliver in the inbox, for the worker to hand to "
        "the handler. --once: one pass, then exit 0 (3 on a gap, 1 if a resource failed)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--resource",
            action="append",
            metavar="GID",
            help="watch this resource instead of RECONCILE['RESOURCES'] (repeat for more)",
        )
        parser.add_argument("--interval", type=float, help="seconds between two reads")
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--json", action="store_true", help="with --once: print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.exceptions import ImproperlyConfigured
        from django.db import connections

        from asana_webhooks._cli.reconcile import _as_json, _describe, _exit_status
        from asana_webhooks.contrib.django.reconcile import reconciler_from_settings

        try:
            reconciler = reconciler_from_settings(
                resources=options["resource"], interval=options["interval"]
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        library_logger = logging.getLogger("asana_webhooks")
        if not library_logger.handlers and not logging.getLogger().handlers:
            log_handler = logging.StreamHandler(sys.stderr)
            log_handler.setFormatter(logging.Formatter("asana_webhooks_reconcile: %(message)s"))
            library_logger.addHandler(log_handler)
            library_logger.setLevel(logging.INFO)
        try:
            if options["once"]:
                results = list(reconciler.run_once().values())
                if options["json"]:
                    self.stdout.write(json.dumps([_as_json(r) for r in results], indent=2))
                else:
                    for result in results:
                        self.stdout.write(f"{result.resource}: {_describe(result)}")
                status = _exit_status(results)
                if status:
                    sys.exit(status)
                return
            stop = threading.Event()
            previous = {
                signum: signal.signal(signum, lambda signum, frame: stop.set())
                for signum in (signal.SIGTERM, signal.SIGINT)
            }
            try:
                self.stderr.write(
                    f"reconciling {len(reconciler.resources)} resources every "
                    f"{reconciler.interval:g}s; stop with Ctrl-C or SIGTERM"
                )
                reconciler.run(stop)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        finally:
            reconciler.inbox.close()
            reconciler.api.api_client.close()
            connections.close_all()
