"""Create a webhook and make sure the secret we stored is the one Asana will sign with.

Asana sends the handshake to the target *while* ``create_webhook`` waits, and repeats the
secret in its 201 answer. ``establish_webhook`` announces the target (so the receiver,
perhaps in another process, accepts exactly one handshake for it), creates the webhook, and
compares the two secrets. A mismatch means someone else's handshake reached the receiver
first; the webhook is then deleted rather than left delivering under a secret we never saw.

A create can also end without telling whether it worked: a 5xx, a read timeout, a
connection lost after the request was sent, a 2xx whose body is unreadable, or Asana's 403
"Duplicated webhook". Then the webhook may exist, and creating again blindly could make a
second one (every event delivered twice). Given ``workspace``, ``establish_webhook`` looks
the webhook up instead of guessing; without it, it raises ``AmbiguousCreateError``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Iterator, Optional, Protocol, Sequence, Union, runtime_checkable

from asana_webhooks._errors import (
    ApiConnectionError,
    AsanaError,
    ForbiddenError,
    InvalidResponseError,
    ServerError,
)
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

#: How many creates one call may send in all: the first, and one more after an ambiguous
#: failure that the lookup showed left no webhook (or left one whose secret is unknown).
MAX_CREATES = 2


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


class AmbiguousCreateError(AsanaError):
    """Creating a webhook ended without saying whether it exists; nothing was guessed.

    Raised by ``establish_webhook`` when the create failed ambiguously (a 5xx, a read
    timeout, a connection lost after sending, an unreadable 2xx, or Asana's 403 "Duplicated
    webhook") and no ``workspace`` was given to look the webhook up, or the lookup could not
    settle it. ``resource`` and ``target`` are what was asked for; ``workspace`` is the one
    searched (or None); the failure that made it ambiguous is ``__cause__``.

    Check before creating again: ``asana-webhooks list --workspace W --resource R``, or
    ``api.iter_webhooks(W, resource=R)`` and compare ``target``. Or call
    ``establish_webhook(..., workspace=W)``, which does exactly that.
    """

    def __init__(
        self,
        problem: str,
        *,
        resource: str,
        target: str,
        workspace: Optional[str] = None,
    ) -> None:
        self.problem = problem
        self.resource = resource
        self.target = target
        self.workspace = workspace
        where = workspace or "W"
        super().__init__(
            f"creating a webhook on {resource} for {target} {problem}: the webhook may exist. "
            f"Check with `asana-webhooks list --workspace {where} --resource {resource}` "
            f"(or iter_webhooks({where!r}, resource={resource!r}) and compare the target) "
            "before creating again, or pass workspace= to establish_webhook to let it check"
        )


class CreatesWebhooks(Protocol):
    """The part of ``WebhooksApi`` that ``establish_webhook`` uses."""

    def create_webhook(
        self, create_webhook_request: CreateWebhookRequest, /
    ) -> CreateWebhook201Response: ...

    def delete_webhook(self, webhook_gid: str, /) -> Any: ...


@runtime_checkable
class ListsWebhooks(Protocol):
    """What ``establish_webhook(..., workspace=...)`` also needs: ``WebhooksApi.iter_webhooks``."""

    def iter_webhooks(
        self, workspace: str, resource: Optional[str] = None
    ) -> Iterator[WebhookResponse]: ...


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed create may nonetheless have created the webhook."""
    if isinstance(exc, ForbiddenError):
        return exc.is_duplicate_webhook
    if isinstance(exc, ServerError):
        return True
    if isinstance(exc, ApiConnectionError):
        return exc.request_sent
    # A 2xx whose body we could not read: Asana created it, the answer was garbled.
    return isinstance(exc, InvalidResponseError)


def _what_happened(exc: BaseException) -> str:
    if isinstance(exc, ForbiddenError):
        return "was refused as a duplicate (Asana has one for this resource and target)"
    if isinstance(exc, ServerError):
        return f"ended with {exc.status} {exc.reason or ''}".rstrip()
    if isinstance(exc, ApiConnectionError):
        return f"lost its answer ({type(exc).__name__})"
    return "got an unreadable answer"


def establish_webhook(
    api: CreatesWebhooks,
    receiver: Union[WebhookReceiver, SecretStore],
    resource: str,
    target: str,
    filters: Optional[Sequence[WebhookFilter]] = None,
    *,
    workspace: Optional[str] = None,
    announcement_ttl: float = DEFAULT_ANNOUNCEMENT_TTL,
) -> WebhookResponse:
    """Create a webhook on ``resource`` delivering to ``target``, with a verified handshake.

    ``receiver`` is the ``WebhookReceiver`` serving ``target``, or just the secret store it
    uses: the receiver may run in another process, as long as both share the store. The
    receiver must be reachable by Asana while this call waits.

    Returns the created webhook (the ``data`` of Asana's 201 answer). Raises
    ``HandshakeError`` if no handshake arrived or its secret differs from the one in Asana's
    answer (the webhook is deleted again, and a secret planted by the wrong handshake is
    forgotten); a create Asana refused outright (a 400, say) propagates unchanged, and a
    secret a handshake stored during it is forgotten (no webhook signs with it).

    When the create ends ambiguously (see ``AmbiguousCreateError``), nothing is guessed:

    - without ``workspace``, ``AmbiguousCreateError`` is raised (the cause chained); a secret
      a handshake stored meanwhile is kept, since the webhook may exist;
    - with ``workspace`` (the resource's workspace gid), the webhooks on ``resource`` are
      listed and the one whose target is exactly ``target`` is looked for. Found, and the
      store holds a secret for the target (the handshake happened even if the answer was
      lost, or an earlier call stored it): that webhook is returned, so calling again is
      safe. Found, but no secret is stored: nothing could verify its deliveries, so it is
      deleted and created again. Not found: it is created again. At most ``MAX_CREATES``
      creates are sent; if it is still unsettled, ``AmbiguousCreateError`` is raised.

    The returned webhook from a lookup is the compact listing form; it cannot be checked
    against Asana's ``X-Hook-Secret`` (the answer carrying it was lost), so the stored secret
    is trusted: a delivery signed otherwise would be refused with 401 and logged.
    """
    store = receiver.secret_store if isinstance(receiver, WebhookReceiver) else receiver
    lister: Optional[ListsWebhooks] = None
    if workspace is not None:
        if not isinstance(api, ListsWebhooks):
            raise TypeError("establish_webhook(workspace=...) needs an api with iter_webhooks")
        lister = api
    key = target_key(target)
    request = CreateWebhookRequest(
        data=WebhookRequest(
            resource=resource,
            target=target,
            filters=list(filters) if filters is not None else None,
        )
    )
    last_failure: Optional[BaseException] = None
    for _ in range(MAX_CREATES):
        store.announce(key, announcement_ttl)
        try:
            created = api.create_webhook(request)
            if created.data is None:
                # A 2xx that names no webhook: it was created, but which one is unknown.
                raise InvalidResponseError("Asana's answer to the create carried no webhook")
        except BaseException as exc:
            received = store.withdraw_announcement(key)
            if not is_ambiguous(exc):
                if received is not None and isinstance(exc, AsanaError):
                    # Asana refused the create, so no webhook signs with this secret; kept,
                    # it would verify forged deliveries (a stranger's racing handshake, say).
                    _forget_if_unchanged(store, key, received)
                raise
            what = _what_happened(exc)
            if lister is None or workspace is None:
                raise AmbiguousCreateError(what, resource=resource, target=target) from exc
            logger.warning(
                "Creating a webhook on %s for %s %s; looking it up in workspace %s",
                resource,
                key,
                what,
                workspace,
            )
            existing = _find(lister, workspace, resource, target, exc)
            if existing is None:
                last_failure = exc
                continue  # it does not exist: creating again makes no duplicate
            if store.get(key) is not None:
                logger.info(
                    "Webhook %s for %s exists already; its secret is stored", existing.gid, key
                )
                return existing
            # It exists, but no handshake secret is known: its deliveries could never be
            # verified. Replace it rather than leave it failing for 24 hours.
            logger.warning(
                "Webhook %s for %s exists but no secret is stored for it; deleting and "
                "creating it again",
                existing.gid,
                key,
            )
            if not _delete_quietly(api, existing.gid):
                raise HandshakeError(
                    "the webhook exists but no handshake secret for it is stored",
                    target=target,
                    webhook_gid=existing.gid,
                    webhook_deleted=False,
                ) from exc
            last_failure = exc
            continue
        received = store.withdraw_announcement(key)
        return _verified(api, store, key, target, created, received)
    raise AmbiguousCreateError(
        f"stayed unsettled after {MAX_CREATES} creates (last: {_what_happened(last_failure)})"
        if last_failure is not None
        else "stayed unsettled",
        resource=resource,
        target=target,
        workspace=workspace,
    ) from last_failure


def _find(
    lister: ListsWebhooks, workspace: str, resource: str, target: str, cause: BaseException
) -> Optional[WebhookResponse]:
    try:
        for webhook in lister.iter_webhooks(workspace, resource=resource):
            if webhook.target == target:
                return webhook
    except AsanaError as lookup_failed:
        raise AmbiguousCreateError(
            f"{_what_happened(cause)}, and listing webhooks to check failed too "
            f"({type(lookup_failed).__name__}: {lookup_failed})",
            resource=resource,
            target=target,
            workspace=workspace,
        ) from cause
    return None


def _verified(
    api: CreatesWebhooks,
    store: SecretStore,
    key: str,
    target: str,
    created: CreateWebhook201Response,
    received: Optional[str],
) -> WebhookResponse:
    webhook = created.data
    gid = webhook.gid if webhook is not None else None
    if received is None:
        problem = "no handshake reached the receiver (is the target reachable from Asana?)"
    elif created.x_hook_secret is None:
        problem = "Asana's answer carried no X-Hook-Secret to check the handshake against"
    elif not hmac.compare_digest(received.encode("utf-8"), created.x_hook_secret.encode("utf-8")):
        problem = "the secret the handshake stored differs from the one Asana reported"
        _forget_if_unchanged(store, key, received)
    elif webhook is None:  # pragma: no cover - establish_webhook treats it as ambiguous
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
        logger.exception("Could not delete webhook %s; delete it by hand", gid)
        return False
    return True
