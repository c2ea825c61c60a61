"""``Error`` at the generated client's module path."""

from asana_webhooks._models import Error

__all__ = ["Error"]
