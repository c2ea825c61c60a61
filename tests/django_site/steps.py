"""Steps the Django site tests run in the site's own process: ``python -m django_site.steps NAME``.

Each prints one JSON line of what it saw, for the test to check.
"""

from __future__ import annotations

import json
import sys
from typing import Any

SECRET = "6f" * 32
TARGET = "/asana/1201"


def _event(n: int) -> dict[str, Any]:
    return {
        "user": {"gid": "9001", "resource_type": "user"},
        "created_at": f"2026-03-01T10:00:{n:02d}.000Z",
        "action": "changed",
        "resource": {"gid": str(1200 + n), "resource_type": "task"},
        "parent": None,
        "change": {"field": "name", "action": "changed"},
    }


def deliver() -> dict[str, Any]:
    """A signed delivery of two events through the settings' view, into the inbox."""
    from django.test import Client

    from asana_webhooks import sign_body
    from asana_webhooks.contrib.django import DjangoInbox, DjangoSecretStore

    DjangoSecretStore().set(TARGET, SECRET)
    body = json.dumps({"events": [_event(1), _event(2)]}).encode()
    client = Client()
    headers = {"HTTP_X_HOOK_SIGNATURE": sign_body(body, SECRET)}
    first = client.post(TARGET, body, content_type="application/json", **headers)
    again = client.post(TARGET, body, content_type="application/json", **headers)
    stats = DjangoInbox().stats()
    return {
        "statuses": [first.status_code, again.status_code],
        "pending": stats.pending,
        "duplicates": stats.duplicates,
    }


def admin() -> dict[str, Any]:
    """Look at the failed events in the admin, then replay them with its action."""
    from django.contrib.auth.models import User
    from django.test import Client

    from asana_webhooks.contrib.django.models import InboxEvent

    user = User.objects.create_superuser("ops", "ops@example.com", "not-used")
    client = Client()
    client.force_login(user)
    listing = client.get("/admin/asana_webhooks/inboxevent/", {"state__exact": "failed"})
    failed = list(InboxEvent.objects.filter(state="failed").values_list("pk", flat=True))
    detail = client.get(f"/admin/asana_webhooks/inboxevent/{failed[0]}/change/")
    replay = client.post(
        "/admin/asana_webhooks/inboxevent/",
        {"action": "replay", "_selected_action": [str(pk) for pk in failed]},
        follow=True,
    )
    rows = InboxEvent.objects.order_by("pk")
    return {
        "listing_status": listing.status_code,
        "listing_shows_error": "RuntimeError: cannot handle" in listing.content.decode(),
        "listing_shows_target": TARGET in listing.content.decode(),
        "detail_status": detail.status_code,
        "detail_shows_json": "&quot;resource_type&quot;: &quot;task&quot;"
        in detail.content.decode(),
        "failed_before": len(failed),
        "replay_message": "Replayed 2 failed events." in replay.content.decode(),
        "states_after": [row.state for row in rows],
        "attempts_after": [row.attempts for row in rows],
    }


if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(globals()[sys.argv[1]]()))
