"""``manage.py list_events``: the events received so far, one JSON object per line."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Print the received events as JSON lines."

    def handle(self, *args: Any, **options: Any) -> None:
        from feed.models import ReceivedEvent

        fields = ["target", "created_at", "action", "resource_gid", "resource_type", "field"]
        for event in ReceivedEvent.objects.all():
            row = {name: getattr(event, name) for name in fields}
            self.stdout.write(json.dumps(row, default=str))
