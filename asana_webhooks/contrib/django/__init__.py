"""Serve a ``WebhookReceiver`` from Django, keep secrets and the inbox in the site's database.

``webhook_view(receiver)`` works whether or not this app is in ``INSTALLED_APPS``;
``DjangoSecretStore`` and ``DjangoInbox`` need ``"asana_webhooks.contrib.django"`` there and
its migrations run.
"""

from asana_webhooks.contrib.django.inbox import DjangoInbox
from asana_webhooks.contrib.django.store import DjangoSecretStore
from asana_webhooks.contrib.django.views import webhook_view

__all__ = ["DjangoInbox", "DjangoSecretStore", "webhook_view"]
