"""Serve a ``WebhookReceiver`` from Django, and keep secrets in the site's own database.

``webhook_view(receiver)`` works whether or not this app is in ``INSTALLED_APPS``;
``DjangoSecretStore`` needs ``"asana_webhooks.contrib.django"`` there and its migration run.
"""

from asana_webhooks.contrib.django.store import DjangoSecretStore
from asana_webhooks.contrib.django.views import webhook_view

__all__ = ["DjangoSecretStore", "webhook_view"]
