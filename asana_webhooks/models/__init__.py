"""The models, at the module paths of Asana's generated client.

``from asana_webhooks.models.create_webhook_request import CreateWebhookRequest`` works as
it does there; every class also lives at the top level of ``asana_webhooks``.
"""

from asana_webhooks._models import *  # noqa: F403 - the same names, one list to keep
from asana_webhooks._models import __all__ as __all__
