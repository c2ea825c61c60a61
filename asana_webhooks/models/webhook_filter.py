"""``WebhookFilter`` at the generated client's module path."""

from asana_webhooks._models import WebhookFilter

__all__ = ["WebhookFilter"]
