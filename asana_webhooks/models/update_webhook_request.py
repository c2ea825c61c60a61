"""``UpdateWebhookRequest`` at the generated client's module path."""

from asana_webhooks._models import UpdateWebhookRequest

__all__ = ["UpdateWebhookRequest"]
