"""``CreateWebhookRequest`` at the generated client's module path."""

from asana_webhooks._models import CreateWebhookRequest

__all__ = ["CreateWebhookRequest"]
