# mypy: disable-error-code="untyped-decorator"
# (Django ships no type hints: its admin decorators are untyped.)
"""The inbox in the Django admin: pending and failed events with their errors, and replay.

Loaded by the admin's autodiscovery when ``django.contrib.admin`` is installed. Events are
read-only here; the one change is the *Replay* action (needs the change permission), which
makes the selected failed events pending again, attempts reset, for the workers.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Optional

from django.contrib import admin, messages
from django.utils.html import format_html

from asana_webhooks.contrib.django.inbox import DjangoInbox
from asana_webhooks.contrib.django.models import InboxCounter, InboxEvent, SyncToken


def _when(seconds: Optional[float]) -> Optional[datetime.datetime]:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


class ReadOnly(admin.ModelAdmin):  # type: ignore[misc]  # Django ships no type hints
    def has_add_permission(self, request: Any) -> bool:
        return False

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields] + list(self.readonly_fields)


@admin.register(InboxEvent)
class InboxEventAdmin(ReadOnly):
    list_display = ("id", "state", "target", "received", "attempts", "short_error", "in_hands_of")
    list_filter = ("state",)
    search_fields = ("=key", "target", "error")
    ordering = ("-id",)
    readonly_fields = ("event", "received", "available", "lease_expires", "finished")
    exclude = ("raw",)
    actions = ["replay"]

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: InboxEvent) -> Optional[datetime.datetime]:
        return _when(obj.received_at)

    @admin.display(description="available from")
    def available(self, obj: InboxEvent) -> Optional[datetime.datetime]:
        return _when(obj.available_at)

    @admin.display(description="lease expires")
    def lease_expires(self, obj: InboxEvent) -> Optional[datetime.datetime]:
        return _when(obj.lease_expires_at)

    @admin.display(description="finished")
    def finished(self, obj: InboxEvent) -> Optional[datetime.datetime]:
        return _when(obj.finished_at)

    @admin.display(description="error")
    def short_error(self, obj: InboxEvent) -> str:
        lines = (obj.error or "").strip().splitlines()
        return lines[-1][:200] if lines else ""

    @admin.display(description="claimed by")
    def in_hands_of(self, obj: InboxEvent) -> str:
        token = obj.claim_token or ""
        return token.rpartition(":")[0] if obj.state == InboxEvent.PENDING else ""

    @admin.display(description="event JSON")
    def event(self, obj: InboxEvent) -> str:
        try:
            text = json.dumps(json.loads(obj.raw), indent=2, sort_keys=True)
        except ValueError:
            text = obj.raw
        return format_html("<pre>{}</pre>", text)  # type: ignore[no-any-return]

    @admin.action(description="Replay the selected failed events", permissions=["change"])
    def replay(self, request: Any, queryset: Any) -> None:
        ids = [
            str(pk) for pk in queryset.filter(state=InboxEvent.FAILED).values_list("pk", flat=True)
        ]
        replayed = DjangoInbox(using=queryset.db).replay(ids)
        skipped = queryset.count() - replayed
        self.message_user(request, f"Replayed {replayed} failed events.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} selected events were not failed: left alone.", messages.INFO
            )


@admin.register(InboxCounter)
class InboxCounterAdmin(ReadOnly):
    list_display = ("name", "value")


@admin.register(SyncToken)
class SyncTokenAdmin(ReadOnly):
    list_display = ("resource", "updated_at")
    exclude = ("sync",)

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return ["resource", "updated_at"]
