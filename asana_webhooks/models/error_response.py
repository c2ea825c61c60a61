"""``ErrorResponse`` at the generated client's module path."""

from asana_webhooks._models import ErrorResponse

__all__ = ["ErrorResponse"]
