"""Create a webhook and make sure the secret we stored is the one Asana will sign with.

Asana sends the handshake to the target *while* ``create_webhook`` waits, and repeats the
secret in its 201 answer. ``establish_webhook`` announces the target (so the receiver,
perhaps in another process, accepts exactly one handshake for it), creates the webhook, and
compares the two secrets. A mismatch means someone else's handshake reached the receiver
first; the webhook is then deleted rather than left delivering under a secret we never saw.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Optional, Protocol, Sequence, Union

from asana_webhooks._errors import AsanaError
from asana_webhooks._models import (
    CreateWebhook201Response,
    CreateWebhookRequest,
    WebhookFilter,
    WebhookRequest,
    WebhookResponse,
)
from asana_webhooks._receiver import WebhookReceiver
from asana_webhooks._secrets import DEFAULT_ANNOUNCEMENT_TTL, SecretStore, target_key

logger = logging.getLogger("asana_webhooks")


class HandshakeError(AsanaError):
    """Asana created the webhook, but its handshake did not store the secret it reported.

    ``target`` is the webhook's target URL; ``webhook_gid`` the webhook Asana created;
    ``webhook_deleted`` tells whether it was deleted again (if not, delete it yourself).
    """

    def __init__(
        self,
        problem: str,
        *,
        target: str,
        webhook_gid: Optional[str],
        webhook_deleted: bool,
    ) -> None:
        self.problem = problem
        self.target = target
        self.webhook_gid = webhook_gid
        self.webhook_deleted = webhook_deleted
        if webhook_gid is None:
            outcome = "Asana named no webhook to delete"
        elif webhook_deleted:
            outcome = f"webhook {webhook_gid} was deleted again"
        else:
            outcome = f"deleting webhook {webhook_gid} failed too: delete it by hand"
        super().__init__(f"handshake for {target} failed: {problem}; {outcome}")


class CreatesWebhooks(Protocol):
    """The part of ``WebhooksApi`` that ``establish_webhook`` uses."""

    def create_webhook(
        self, create_webhook_request: CreateWebhookRequest, /
    ) -> CreateWebhook201Response: ...

    def delete_webhook(self, webhook_gid: str, /) -> Any: ...


def establish_webhook(
    api: CreatesWebhooks,
    receiver: Union[WebhookReceiver, SecretStore],
    resource: str,
    target: str,
    filters: Optional[Sequence[WebhookFilter]] = None,
    *,
    announcement_ttl: float = DEFAULT_ANNOUNCEMENT_TTL,
) -> WebhookResponse:
    """Create a webhook on ``resource`` delivering to ``target``, with a verified handshake.

    ``receiver`` is the ``WebhookReceiver`` serving ``target``, or just the secret store it
    uses: the receiver may run in another process, as long as both share the store. The
    receiver must be reachable by Asana while this call waits.

    Returns the created webhook (the ``data`` of Asana's 201 answer). Raises
    ``HandshakeError`` if no handshake arrived or its secret differs from the one in Asana's
    answer (the webhook is deleted again, and a secret planted by the wrong handshake is
    forgotten); any error of ``create_webhook`` propagates unchanged. After a failed create
    a secret the handshake stored is kept: the webhook may exist all the same.
    """
    store = receiver.secret_store if isinstance(receiver, WebhookReceiver) else receiver
    key = target_key(target)
    request = CreateWebhookRequest(
        data=WebhookRequest(
            resource=resource,
            target=target,
            filters=list(filters) if filters is not None else None,
        )
    )
    store.announce(key, announcement_ttl)
    try:
        created = api.create_webhook(request)
    finally:
        received = store.withdraw_announcement(key)
    webhook = created.data
    gid = webhook.gid if webhook is not None else None

    if received is None:
        problem = "no handshake reached the receiver (is the target reachable from Asana?)"
    elif created.x_hook_secret is None:
        problem = "Asana's answer carried no X-Hook-Secret to check the handshake against"
    elif not hmac.compare_digest(received.encode("utf-8"), created.x_hook_secret.encode("utf-8")):
        problem = "the secret the handshake stored differs from the one Asana reported"
        _forget_if_unchanged(store, key, received)
    elif webhook is None:
        problem = "Asana's answer carried no webhook"
    else:
        logger.info("Established webhook %s for %s", gid, key)
        return webhook
    deleted = _delete_quietly(api, gid)
    raise HandshakeError(problem, target=target, webhook_gid=gid, webhook_deleted=deleted)


def _forget_if_unchanged(store: SecretStore, key: str, planted: str) -> None:
    # The wrong handshake's secret must not verify deliveries; a newer one is left alone.
    current = store.get(key)
    if current is not None and hmac.compare_digest(current.encode(), planted.encode()):
        store.delete(key)


def _delete_quietly(api: CreatesWebhooks, gid: Optional[str]) -> bool:
    if gid is None:
        return False
    try:
        api.delete_webhook(gid)
    except Exception:
        logger.exception("Could not delete webhook %s after its handshake failed", gid)
        return False
    return True
