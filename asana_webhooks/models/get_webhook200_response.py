"""``GetWebhook200Response`` at the generated client's module path."""

from asana_webhooks._models import GetWebhook200Response

__all__ = ["GetWebhook200Response"]
