"""``WebhookResponse`` at the generated client's module path."""

from asana_webhooks._models import WebhookResponse

__all__ = ["WebhookResponse"]
