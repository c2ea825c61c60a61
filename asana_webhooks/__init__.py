"""asana_webhooks: typed, synchronous Asana webhooks.

Manage webhooks through Asana's REST API (``WebhooksApi``), complete the ``X-Hook-Secret``
handshake and verify ``X-Hook-Signature`` on every delivery (``WebhookReceiver``), and hand
the application typed events.
"""

# --- client (issue 2) ---
from asana_webhooks._client import ApiClient, AsanaChangeWarning, InsecureTransportWarning
from asana_webhooks._configuration import Configuration
from asana_webhooks._converter import make_converter
from asana_webhooks._errors import (
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    AsanaError,
    BadRequestError,
    ForbiddenError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    PaginationError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    UnauthorizedError,
)
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
from asana_webhooks._retry import RetryPolicy
from asana_webhooks._signature import sign_body, verify_signature
from asana_webhooks._transport import (
    MockTransport,
    Request,
    RequestsTransport,
    Response,
    Timeout,
    Transport,
    Urllib3Transport,
)
from asana_webhooks._version import __version__
from asana_webhooks._webhooks_api import WebhooksApi

# --- receiving (issue 3) ---

# --- authentication (issue 8) ---

__all__ = [
    "__version__",
    # client
    "ApiClient",
    "AsanaChangeWarning",
    "InsecureTransportWarning",
    "Configuration",
    "make_converter",
    "ApiConnectionError",
    "ApiException",
    "ApiTimeoutError",
    "AsanaError",
    "BadRequestError",
    "ForbiddenError",
    "InvalidRequestError",
    "InvalidResponseError",
    "NotFoundError",
    "PaginationError",
    "PaymentRequiredError",
    "RateLimitError",
    "ServerError",
    "UnauthorizedError",
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
    "RetryPolicy",
    "MockTransport",
    "Request",
    "RequestsTransport",
    "Response",
    "Timeout",
    "Transport",
    "Urllib3Transport",
    "WebhooksApi",
    # receiving and the rest
    "sign_body",
    "verify_signature",
]
