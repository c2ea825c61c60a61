"""The site's ``WebhookReceiver`` and ``WebhooksApi``, and what to do with events."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from asana_webhooks import ApiClient, Configuration, Event, WebhookReceiver, WebhooksApi
from asana_webhooks.contrib.django import DjangoSecretStore

WEBHOOK_PATH = "/asana/webhooks/"


def event_key(event: Event, target: str) -> str:
    """What makes two deliveries of one event the same: Asana sends no event id."""
    parts = [
        target,
        event.created_at.isoformat() if event.created_at else "",
        event.action or "",
        event.resource.gid if event.resource else "",
        event.parent.gid if event.parent else "",
        event.change.field or "" if event.change else "",
        event.user.gid if event.user else "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def store_events(events: Sequence[Event], target: str) -> None:
    """Keep each event once. Raising here answers 500, and Asana delivers again later."""
    from feed.models import ReceivedEvent

    with transaction.atomic():
        for event in events:
            ReceivedEvent.objects.get_or_create(
                event_key=event_key(event, target),
                defaults={
                    "target": target,
                    "created_at": event.created_at,
                    "action": event.action or "",
                    "resource_gid": event.resource.gid if event.resource else "",
                    "resource_type": (event.resource.resource_type or "") if event.resource else "",
                    "field": (event.change.field or "") if event.change else "",
                    "user_gid": event.user.gid if event.user else "",
                },
            )


#: One receiver for the whole site; the secret store is the site's database, so the web
#: processes and a management command creating a webhook see the same secrets.
receiver = WebhookReceiver(DjangoSecretStore(), on_events=store_events)


def webhooks_api() -> WebhooksApi:
    configuration = Configuration(
        host=settings.ASANA_HOST, access_token=settings.ASANA_ACCESS_TOKEN
    )
    return WebhooksApi(ApiClient(configuration))


def target_for(resource: str) -> str:
    return f"{settings.PUBLIC_URL.rstrip('/')}{WEBHOOK_PATH}{resource}"
