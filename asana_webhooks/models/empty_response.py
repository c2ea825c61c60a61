"""``EmptyResponse`` at the generated client's module path."""

from asana_webhooks._models import EmptyResponse

__all__ = ["EmptyResponse"]
