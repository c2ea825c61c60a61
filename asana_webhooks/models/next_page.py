"""``NextPage`` at the generated client's module path."""

from asana_webhooks._models import NextPage

__all__ = ["NextPage"]
