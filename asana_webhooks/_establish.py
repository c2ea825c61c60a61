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
import time
from typing import (
    Any,
    Callable,
    Iterator,
    Optional,
    Protocol,
    Sequence,
    TypeVar,
    Union,
    runtime_checkable,
)

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

_T = TypeVar("_T")


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


class SecretStoreError(AsanaError):
    """``establish_webhook`` could not use the secret store: it failed (a database error,
    a lock held past its timeout), or another call kept the target's turn too long.

    ``target`` is the webhook's target URL; ``webhook_gid`` the webhook created before the
    store failed (None if none was); ``webhook_deleted`` whether it was deleted again (if
    not, delete it yourself). The store's own exception is ``__cause__``.
    """

    def __init__(
        self,
        problem: str,
        *,
        target: str,
        webhook_gid: Optional[str] = None,
        webhook_deleted: bool = False,
    ) -> None:
        self.problem = problem
        self.target = target
        self.webhook_gid = webhook_gid
        self.webhook_deleted = webhook_deleted
        message = f"could not use the secret store for {target}: {problem}"
        if webhook_gid is not None:
            message += (
                f"; webhook {webhook_gid} was deleted again"
                if webhook_deleted
                else f"; deleting webhook {webhook_gid} failed too: delete it by hand"
            )
        super().__init__(message)

    def with_webhook(self, webhook_gid: Optional[str], deleted: bool) -> SecretStoreError:
        """The same failure, naming the webhook created before it and its fate."""
        return SecretStoreError(
            self.problem, target=self.target, webhook_gid=webhook_gid, webhook_deleted=deleted
        )


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

    Calls for one target take turns, through the store: each announces, waits until its
    announcement is the target's current one (while another call's create is under way),
    and only then creates. A call that had to wait, given ``workspace``, first looks for
    the webhook the other call made, and returns it if the store holds its secret; so two
    processes establishing one target at once make one webhook and both return it. (Without
    ``workspace`` the second one's create is refused as a duplicate: see below.) A call
    waits at most ``announcement_ttl`` seconds for its turn.

    When the create ends ambiguously (see ``AmbiguousCreateError``), nothing is guessed:

    - without ``workspace``, ``AmbiguousCreateError`` is raised (the cause chained); a secret
      a handshake stored meanwhile is kept, since the webhook may exist (unless Asana refused
      the create as a duplicate: then the secret is put back as it was);
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

    A failing secret store (a database error, say) raises ``SecretStoreError``, never the
    database's own exception; a webhook created before the store failed is deleted again.
    """
    store = receiver.secret_store if isinstance(receiver, WebhookReceiver) else receiver
    if not callable(getattr(store, "current_announcement", None)):
        raise TypeError(
            f"{type(store).__name__} lacks current_announcement(): secret stores written for "
            "the SecretStore protocol before announcements had ids must be updated (see the "
            "changelog)"
        )
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
    turns = _Turns(store, key, target, announcement_ttl)
    last_failure: Optional[BaseException] = None
    for _ in range(MAX_CREATES):
        waited = turns.take()
        if waited and lister is not None and workspace is not None:
            # Another call held the target while we waited: it may have made the webhook.
            try:
                existing = _find(lister, workspace, resource, target, None)
            except BaseException:
                turns.end_quietly()
                raise
            if existing is not None and turns.store_call(store.get, key) is not None:
                turns.end()
                logger.info(
                    "Webhook %s for %s was established meanwhile by another caller",
                    existing.gid,
                    key,
                )
                return existing
        previous = turns.store_call(store.get, key)
        try:
            created = api.create_webhook(request)
            if created.data is None:
                # A 2xx that names no webhook: it was created, but which one is unknown.
                raise InvalidResponseError("Asana's answer to the create carried no webhook")
        except BaseException as exc:
            received = turns.end()
            if not is_ambiguous(exc):
                if received is not None and isinstance(exc, AsanaError):
                    # Asana refused the create, so no webhook signs with this secret; kept,
                    # it would verify forged deliveries (a stranger's racing handshake, say).
                    turns.store_call(_forget_if_unchanged, store, key, received)
                raise
            if received is not None and isinstance(exc, ForbiddenError):
                # A duplicate: the webhook that exists was made earlier, with the secret the
                # store held then; our handshake's secret signs nothing.
                turns.store_call(_put_back, store, key, received, previous)
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
            if turns.store_call(store.get, key) is not None:
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
        gid = created.data.gid
        try:
            received = turns.end()
            return _verified(api, store, key, target, created, received)
        except SecretStoreError as failed:
            # The handshake cannot be checked: delete rather than leave a webhook whose
            # secret may be unknown (an orphan delivering into 401s for 24 hours).
            raise failed.with_webhook(gid, _delete_quietly(api, gid)) from failed.__cause__
    raise AmbiguousCreateError(
        f"stayed unsettled after {MAX_CREATES} creates (last: {_what_happened(last_failure)})"
        if last_failure is not None
        else "stayed unsettled",
        resource=resource,
        target=target,
        workspace=workspace,
    ) from last_failure


class _Turns:
    """One ``establish_webhook`` call's announcements: taking the target's turn, ending it,
    and turning store failures into ``SecretStoreError``."""

    #: Seconds between looks at whose turn it is while waiting (doubling up to the last).
    POLL = (0.02, 0.25)

    def __init__(self, store: SecretStore, key: str, target: str, ttl: float) -> None:
        self.store = store
        self.key = key
        self.target = target
        self.ttl = ttl
        self.announcement: Optional[str] = None

    def store_call(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return function(*args)
        except Exception as exc:
            self.end_quietly()
            raise SecretStoreError(f"{type(exc).__name__}: {exc}", target=self.target) from exc

    def _announce(self) -> str:
        try:
            self.announcement = self.store.announce(self.key, self.ttl)
        except ValueError:
            raise  # a bad ttl: the caller's mistake, not the store's
        except Exception as exc:
            raise SecretStoreError(f"{type(exc).__name__}: {exc}", target=self.target) from exc
        return self.announcement

    def take(self) -> bool:
        """Announce, and wait until the announcement is current; tell whether we waited."""
        started = time.monotonic()
        deadline = started + self.ttl + 1.0
        announcement = self._announce()
        announced_at = started
        waited = False
        delay, longest = self.POLL
        while True:
            current = self.store_call(self.store.current_announcement, self.key)
            if current == announcement:
                return waited
            if not waited:
                logger.info("Waiting for another establish_webhook of %s to finish", self.key)
            waited = True
            now = time.monotonic()
            if now >= deadline:
                self.end_quietly()
                raise SecretStoreError(
                    f"another establish_webhook for this target kept its turn for over "
                    f"{self.ttl:g} s (a process that died mid-way? its announcement expires "
                    "by itself)",
                    target=self.target,
                )
            if current is None or now - announced_at > self.ttl / 2:
                # Ours expired, or half of its window went by waiting: queue a fresh one so
                # that our own handshake still has time when our turn comes.
                self.end()
                announcement = self._announce()
                announced_at = now
            time.sleep(delay)
            delay = min(delay * 2, longest)

    def end(self) -> Optional[str]:
        """Withdraw our announcement; the secret its handshake stored, if any."""
        announcement, self.announcement = self.announcement, None
        if announcement is None:
            return None
        try:
            return self.store.withdraw_announcement(self.key, announcement)
        except Exception as first:
            try:  # once more: a lock held a moment too long should not fail the call
                return self.store.withdraw_announcement(self.key, announcement)
            except Exception:
                raise SecretStoreError(
                    f"{type(first).__name__}: {first}", target=self.target
                ) from first

    def end_quietly(self) -> None:
        try:
            self.end()
        except SecretStoreError:
            logger.warning(
                "Could not withdraw the announcement of %s; it expires by itself", self.key
            )


def _find(
    lister: ListsWebhooks,
    workspace: str,
    resource: str,
    target: str,
    cause: Optional[BaseException],
) -> Optional[WebhookResponse]:
    try:
        for webhook in lister.iter_webhooks(workspace, resource=resource):
            if webhook.target == target:
                return webhook
    except AsanaError as lookup_failed:
        if cause is None:
            raise  # nothing was created: the listing's own error says enough
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
        try:
            _forget_if_unchanged(store, key, received)
        except Exception as exc:
            raise SecretStoreError(f"{type(exc).__name__}: {exc}", target=target) from exc
    elif webhook is None:  # pragma: no cover - establish_webhook treats it as ambiguous
        problem = "Asana's answer carried no webhook"
    else:
        logger.info("Established webhook %s for %s", gid, key)
        return webhook
    deleted = _delete_quietly(api, gid)
    raise HandshakeError(problem, target=target, webhook_gid=gid, webhook_deleted=deleted)


def _put_back(store: SecretStore, key: str, planted: str, previous: Optional[str]) -> None:
    # Undo our handshake's secret if nothing replaced it since: restore what was there.
    current = store.get(key)
    if current is None or not hmac.compare_digest(current.encode(), planted.encode()):
        return
    if previous is None:
        store.delete(key)
    else:
        store.set(key, previous)


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
