"""Every path under ``asana/webhooks/`` is a webhook target, told apart by its path."""

from django.urls import path
from feed.webhooks import receiver

from asana_webhooks.contrib.django import webhook_view

urlpatterns = [
    path("asana/webhooks/<path:rest>", webhook_view(receiver)),
]
