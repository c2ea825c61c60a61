"""``AsanaNamedResource`` at the generated client's module path."""

from asana_webhooks._models import AsanaNamedResource

__all__ = ["AsanaNamedResource"]
