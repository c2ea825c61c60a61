"""``manage.py asana_webhooks_ensure FILE``: make Asana's webhooks match a declared file.

The Django face of ``asana-webhooks ensure``: the secret store is the settings'
``SECRET_STORE`` (the one the site's view uses, so the handshakes are verified there), and when
``INBOX`` is set, the events a re-created webhook missed are recovered into it through the
Events API. The token is ``$ASANA_ACCESS_TOKEN`` (else ``RECONCILE["ACCESS_TOKEN"]``), the host
``$ASANA_HOST`` (else ``RECONCILE["HOST"]``, else Asana's). Exit status as the command line's:
0 all matches, 1 something could not be done, 2 a bad file, 3 with ``--dry-run`` changes are
needed, or a re-created webhook's missed events could not all be recovered.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = (
        "Create, update (and with --prune delete) Asana webhooks to match FILE, a TOML file of "
        "[[webhook]] entries, with the settings' SECRET_STORE. Run it at deploy and from cron: "
        "a second run changes nothing, and runs started together take turns."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", metavar="FILE", help="the declared webhooks (TOML)")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="also delete webhooks on the declared targets' hosts that FILE does not list",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan only")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.exceptions import ImproperlyConfigured
        from django.db import connections

        from asana_webhooks._cli.ensure import _change_json, _recover, _recovered_json
        from asana_webhooks._declared import DeclarationError, load_declared
        from asana_webhooks._ensure import ensure_webhooks
        from asana_webhooks._errors import AsanaError
        from asana_webhooks._webhooks_api import WebhooksApi
        from asana_webhooks.contrib.django.conf import (
            inbox_from_settings,
            secret_store_from_settings,
        )

        try:
            declared = load_declared(options["file"])
        except DeclarationError as exc:
            self.stderr.write(f"{options['file']}: {exc}")
            sys.exit(2)
        try:
            store = secret_store_from_settings()
            inbox = None if options["dry_run"] else inbox_from_settings()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        api = WebhooksApi(_api_client())
        repaired: list[tuple[Any, Optional[float]]] = []
        try:
            result = ensure_webhooks(
                api,
                store,
                declared,
                prune=options["prune"],
                dry_run=options["dry_run"],
                on_repaired=(lambda item, since: repaired.append((item, since))) if inbox else None,
            )
            recovered = _recover(api, inbox, repaired) if inbox is not None else []
        except AsanaError as exc:  # the listing failed, or another run held the lock
            raise CommandError(f"{type(exc).__name__}: {exc}") from None
        finally:
            if inbox is not None:
                inbox.close()
            api.api_client.close()
            connections.close_all()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "dry_run": result.dry_run,
                        "ok": result.ok,
                        "changes": [_change_json(change) for change in result.changes],
                        "recovered": [_recovered_json(r) for r in recovered],
                    },
                    indent=2,
                )
            )
        else:
            for change in result.changes:
                done = (
                    ""
                    if change.done is None
                    else " ok"
                    if change.done
                    else f" FAILED: {change.error}"
                )
                self.stdout.write(
                    f"{change.action} {change.resource} {change.target} ({change.reason}){done}"
                )
            for item in recovered:
                from asana_webhooks._cli.reconcile import _describe

                self.stdout.write(f"recovered {item.resource}: {_describe(item)}")
        if result.failed or any(r.error or r.rate_limited for r in recovered):
            sys.exit(1)
        if (result.dry_run and result.pending) or any(r.gap for r in recovered):
            sys.exit(3)


def _api_client() -> Any:
    from django.conf import settings

    from asana_webhooks._client import ApiClient
    from asana_webhooks._configuration import DEFAULT_HOST, Configuration

    reconcile = getattr(settings, "ASANA_WEBHOOKS", {}).get("RECONCILE", {})
    token = os.environ.get("ASANA_ACCESS_TOKEN", "").strip() or reconcile.get("ACCESS_TOKEN")
    if not token:
        raise CommandError(
            "set $ASANA_ACCESS_TOKEN (or ASANA_WEBHOOKS['RECONCILE']['ACCESS_TOKEN'])"
        )
    host = os.environ.get("ASANA_HOST") or reconcile.get("HOST") or DEFAULT_HOST
    if callable(token):
        return ApiClient(Configuration(host=host, token_provider=token))
    return ApiClient(Configuration(host=host, access_token=str(token)))
