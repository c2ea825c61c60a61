"""asana_webhooks: typed, synchronous Asana webhooks.

Manage webhooks through Asana's REST API (``WebhooksApi``), complete the ``X-Hook-Secret``
handshake and verify ``X-Hook-Signature`` on every delivery (``WebhookReceiver``), and hand
the application typed events.
"""

from asana_webhooks._signature import sign_body, verify_signature
from asana_webhooks._version import __version__

# --- client (issue 2) ---

# --- receiving (issue 3) ---

# --- authentication (issue 8) ---

__all__ = [
    "__version__",
    "sign_body",
    "verify_signature",
]
