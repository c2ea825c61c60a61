"""asana_webhooks: typed, synchronous Asana webhooks.

Manage webhooks through Asana's REST API (``WebhooksApi``), complete the ``X-Hook-Secret``
handshake and verify ``X-Hook-Signature`` on every delivery (``WebhookReceiver``), and hand
the application typed events.
"""

# --- client (issue 2) ---
from asana_webhooks._client import ApiClient, ApiResponse, AsanaChangeWarning
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
    HTTPClientTransport,
    InsecureTransportWarning,
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
# isort: split
from asana_webhooks._establish import (
    AmbiguousCreateError,
    HandshakeError,
    SecretStoreError,
    establish_webhook,
)
from asana_webhooks._events import (
    Change,
    Event,
    EventResource,
    EventUser,
    InvalidPayloadError,
    parse_events,
)
from asana_webhooks._receiver import (
    DEFAULT_MAX_BODY_BYTES,
    ReceiverResponse,
    WebhookReceiver,
)
from asana_webhooks._secrets import (
    DEFAULT_ANNOUNCEMENT_TTL,
    MemorySecretStore,
    SecretStore,
    SQLiteSecretStore,
    target_key,
)

# --- declared webhooks, repair and health (issue 16) ---
# isort: split
from asana_webhooks._declared import (
    DeclarationError,
    DeclaredWebhook,
    load_declared,
    parse_declared,
)
from asana_webhooks._ensure import (
    EnsureError,
    EnsureResult,
    PlannedChange,
    ensure_webhooks,
)
from asana_webhooks._health import HealthMetrics, WebhookHealth, webhook_health
from asana_webhooks._secrets import Contact, RecordsContact, SupportsLocks

# --- the inbox and workers (issue 14) ---
# isort: split
from asana_webhooks._handoff import HandOff, sweep
from asana_webhooks._inbox import (
    DEFAULT_DEDUPE_WINDOW,
    Claim,
    Inbox,
    InboxError,
    InboxStats,
    StoredEvent,
    StoreResult,
    event_key,
)
from asana_webhooks._metrics import ReceiverMetrics, prometheus_text
from asana_webhooks._sqlite_inbox import SQLiteInbox
from asana_webhooks._urls import InvalidURLError, open_inbox, open_secret_store
from asana_webhooks._worker import DrainResult, Worker

# --- the Events API and the reconciler (issue 15) ---
# isort: split
from asana_webhooks._events_api import (
    EventsApi,
    EventsResponse,
    EventStream,
    InvalidSyncTokenError,
)
from asana_webhooks._inbox import SyncState
from asana_webhooks._reconcile import Reconciler, ReconcileResult

# --- authentication (issue 8) ---
# isort: split
from asana_webhooks._auth import (
    ASANA_TOKEN_URL,
    AuthenticationError,
    Credential,
    OAuthToken,
    TokenRefreshError,
    TokenSet,
)

# --- display (issue 7) ---
# isort: split
from asana_webhooks._display import Table, as_table, to_dataframe, to_dict, to_dicts

# --- filters as text (issue 13) ---
# isort: split
from asana_webhooks._filters import InvalidFilterError, check_filter, format_filter, parse_filter

__all__ = [
    "__version__",
    # client
    "ApiClient",
    "ApiResponse",
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
    "HTTPClientTransport",
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
    "AmbiguousCreateError",
    "Change",
    "DEFAULT_ANNOUNCEMENT_TTL",
    "DEFAULT_MAX_BODY_BYTES",
    "Event",
    "EventResource",
    "EventUser",
    "HandshakeError",
    "InvalidPayloadError",
    "MemorySecretStore",
    "ReceiverResponse",
    "SQLiteSecretStore",
    "SecretStore",
    "SecretStoreError",
    "WebhookReceiver",
    "establish_webhook",
    "parse_events",
    "target_key",
    # declared webhooks, repair and health
    "Contact",
    "DeclarationError",
    "DeclaredWebhook",
    "EnsureError",
    "EnsureResult",
    "HealthMetrics",
    "PlannedChange",
    "RecordsContact",
    "SupportsLocks",
    "WebhookHealth",
    "ensure_webhooks",
    "load_declared",
    "parse_declared",
    "webhook_health",
    # the inbox and workers
    "DEFAULT_DEDUPE_WINDOW",
    "Claim",
    "DrainResult",
    "HandOff",
    "Inbox",
    "InboxError",
    "InboxStats",
    "InvalidURLError",
    "ReceiverMetrics",
    "SQLiteInbox",
    "StoreResult",
    "StoredEvent",
    "Worker",
    "event_key",
    "open_inbox",
    "open_secret_store",
    "prometheus_text",
    "sweep",
    # the Events API and the reconciler
    "EventsApi",
    "EventsResponse",
    "EventStream",
    "InvalidSyncTokenError",
    "ReconcileResult",
    "Reconciler",
    "SyncState",
    # authentication
    "ASANA_TOKEN_URL",
    "AuthenticationError",
    "Credential",
    "OAuthToken",
    "TokenRefreshError",
    "TokenSet",
    # display
    "Table",
    "as_table",
    "to_dataframe",
    "to_dict",
    "to_dicts",
    # filters as text
    "InvalidFilterError",
    "check_filter",
    "format_filter",
    "parse_filter",
]
