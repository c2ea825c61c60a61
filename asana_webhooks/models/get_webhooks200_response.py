"""``GetWebhooks200Response`` at the generated client's module path."""

from asana_webhooks._models import GetWebhooks200Response

__all__ = ["GetWebhooks200Response"]
