"""``manage.py establish_webhook <resource gid>``: create a webhook delivering to this site.

The site must be running (``manage.py runserver`` is threaded) and reachable at
``PUBLIC_URL``: Asana's handshake reaches it while this command waits, and both share the
secret through the database.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from asana_webhooks import AsanaError, WebhookFilter, establish_webhook
from feed.webhooks import receiver, target_for, webhooks_api


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Create an Asana webhook on a resource, delivering to this site."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("resource", help="gid of the project, task, ... to watch")
        parser.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="TYPE:ACTION",
            help="only events of this resource type and action, e.g. task:changed",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        resource: str = options["resource"]
        filters = []
        for spec in options["filter"]:
            resource_type, _, action = spec.partition(":")
            filters.append(WebhookFilter(resource_type=resource_type, action=action or None))
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
