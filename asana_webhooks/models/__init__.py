"""The models, at the module paths of Asana's generated client.

``from asana_webhooks.models.create_webhook_request import CreateWebhookRequest`` works as
it does there; every class also lives at the top level of ``asana_webhooks``.
"""

from asana_webhooks._models import (
    AsanaNamedResource,
    CreateWebhook201Response,
    CreateWebhookRequest,
    DeleteAllocation200Response,
    EmptyResponse,
    Error,
    ErrorResponse,
    GetWebhook200Response,
    GetWebhooks200Response,
    NextPage,
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookRequest,
    WebhookResponse,
    WebhookUpdateRequest,
)

__all__ = [
    "AsanaNamedResource",
    "CreateWebhook201Response",
    "CreateWebhookRequest",
    "DeleteAllocation200Response",
    "EmptyResponse",
    "Error",
    "ErrorResponse",
    "GetWebhook200Response",
    "GetWebhooks200Response",
    "NextPage",
    "UpdateWebhookRequest",
    "WebhookFilter",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookUpdateRequest",
]
