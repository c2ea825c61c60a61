"""``manage.py establish_webhook <resource gid>``: create a webhook delivering to this site.

The site must be running (``manage.py runserver`` is threaded) and reachable at
``PUBLIC_URL``: Asana's handshake reaches it while this command waits, and both share the
secret through the database.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from asana_webhooks import AsanaError, establish_webhook, parse_filter
from feed.webhooks import receiver, target_for, webhooks_api


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Create an Asana webhook on a resource, delivering to this site."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("resource", help="gid of the project, task, ... to watch")
        parser.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="SPEC",
            help=(
                "TYPE[/SUBTYPE][:ACTION[:FIELD,...]], as on the asana-webhooks command line, "
                "e.g. task:changed:name (repeatable)"
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        resource: str = options["resource"]
        if not (settings.ASANA_ACCESS_TOKEN or "").strip():
            raise CommandError(
                "ASANA_ACCESS_TOKEN is not set: set it to an Asana personal access token"
            )
        try:
            filters = [parse_filter(spec) for spec in options["filter"]]
        except AsanaError as exc:  # InvalidFilterError: says what is wrong and the form
            raise CommandError(f"--filter: {exc}") from exc
        api = webhooks_api()
        try:
            webhook = establish_webhook(
                api, receiver, resource, target_for(resource), filters or None
            )
        except AsanaError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            api.api_client.close()
        self.stdout.write(f"{webhook.gid} {webhook.target}")
