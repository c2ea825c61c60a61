"""Where the generated client keeps ``ApiException``; here it is the same class."""

from asana_webhooks._errors import ApiException

__all__ = ["ApiException"]
