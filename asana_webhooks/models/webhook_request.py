"""``WebhookRequest`` at the generated client's module path."""

from asana_webhooks._models import WebhookRequest

__all__ = ["WebhookRequest"]
