"""``CreateWebhook201Response`` at the generated client's module path."""

from asana_webhooks._models import CreateWebhook201Response

__all__ = ["CreateWebhook201Response"]
