"""``WebhookUpdateRequest`` at the generated client's module path."""

from asana_webhooks._models import WebhookUpdateRequest

__all__ = ["WebhookUpdateRequest"]
