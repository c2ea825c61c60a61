"""``DeleteAllocation200Response`` at the generated client's module path."""

from asana_webhooks._models import DeleteAllocation200Response

__all__ = ["DeleteAllocation200Response"]
