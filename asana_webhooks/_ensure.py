"""Keep the webhooks Asana has equal to the ones the application declared.

``ensure_webhooks`` lists what Asana has in each declared workspace, plans what to change
(create what is missing, update filters that differ, with ``prune`` delete what is not
declared on the declared targets' hosts) and carries the plan out, unless ``dry_run``. A
second run plans nothing. Runs from several processes at once are serialised by a short lock
in the secret store, so two deploys that start together make each webhook once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any, Callable, Literal, Optional, Sequence, Union
from urllib.parse import urlsplit

import attrs

from asana_webhooks._declared import DeclaredWebhook, load_declared, parse_declared
from asana_webhooks._errors import AsanaError, NotFoundError
from asana_webhooks._models import (
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookResponse,
    WebhookUpdateRequest,
)
from asana_webhooks._secrets import RecordsContact, SecretStore, SupportsLocks

logger = logging.getLogger("asana_webhooks")

#: How long the store's lock lasts unless renewed, in seconds. A run renews it between steps,
#: so a long run keeps it, and a run that dies holding it delays the next by at most this.
DEFAULT_LOCK_TTL = 120.0
#: How long a run waits for another run's lock before giving up, in seconds.
DEFAULT_LOCK_WAIT = 300.0
_LOCK_NAME = "ensure_webhooks"

#: The fields ``ensure_webhooks`` and ``webhook_health`` read from Asana's listing.
WEBHOOK_FIELDS = (
    "active", "created_at", "delivery_retry_count", "failure_deletion_timestamp",
    "filters", "filters.action", "filters.fields", "filters.resource_subtype",
    "filters.resource_type", "last_failure_at", "last_failure_content", "last_success_at",
    "next_attempt_after", "resource", "resource.name", "resource.resource_type", "target",
)  # fmt: skip

Action = Literal["create", "update", "delete", "keep"]
Declared = Union[str, "os.PathLike[str]", Sequence[Any]]  # a file, or entries
#: ``on_repaired(webhook, since)``: a declared webhook was missing and is created again;
#: ``since`` is when its target last heard from Asana (a Unix time), or None if never. Hand
#: it to ``Reconciler.recover`` to fetch the missed events through the Events API.
RepairHandler = Callable[[DeclaredWebhook, Optional[float]], None]


class EnsureError(AsanaError):
    """Another ``ensure_webhooks`` run held the store's lock for longer than we would wait."""


@attrs.frozen
class PlannedChange:
    """One step of a plan: what to do to which webhook, and why; after running, how it went."""

    action: Action
    reason: str
    declared: Optional[DeclaredWebhook] = None
    webhook: Optional[WebhookResponse] = None  #: What Asana has (None when missing).
    done: Optional[bool] = None  #: None in a plan; True or False once carried out.
    error: Optional[str] = None  #: Why it could not be done.
    result_gid: Optional[str] = None  #: The webhook's gid after the step.

    @property
    def resource(self) -> str:
        if self.declared is not None:
            return self.declared.resource
        return self.webhook.resource.gid if self.webhook and self.webhook.resource else "-"

    @property
    def target(self) -> str:
        if self.declared is not None:
            return self.declared.target
        return (self.webhook.target if self.webhook else None) or "-"

    @property
    def gid(self) -> Optional[str]:
        return self.result_gid or (self.webhook.gid if self.webhook else None)


@attrs.frozen
class EnsureResult:
    """The plan, and (unless it was a dry run) what carrying it out did."""

    changes: tuple[PlannedChange, ...]
    dry_run: bool

    @property
    def pending(self) -> tuple[PlannedChange, ...]:
        """The steps that change something (everything but ``keep``)."""
        return tuple(change for change in self.changes if change.action != "keep")

    @property
    def failed(self) -> tuple[PlannedChange, ...]:
        return tuple(change for change in self.changes if change.done is False)

    @property
    def ok(self) -> bool:
        """Everything matches now: nothing failed, and (in a dry run) nothing needs doing."""
        return not self.failed and (not self.dry_run or not self.pending)


def ensure_webhooks(
    api: Any,
    receiver_store: SecretStore,
    desired: Declared,
    *,
    prune: bool = False,
    dry_run: bool = False,
    on_repaired: Optional[RepairHandler] = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> EnsureResult:
    """Make Asana's webhooks match ``desired`` (a TOML file's path, or a list of entries).

    ``api`` is a ``WebhooksApi``; ``receiver_store`` the secret store of the receiver that
    serves the targets. Raises ``DeclarationError`` for a bad declaration before any request,
    and ``EnsureError`` if another run holds the lock longer than ``lock_wait`` seconds.
    Failures of single steps do not stop the others: they are in the result's ``failed``.
    """
    if isinstance(desired, (str, os.PathLike)):
        declared = load_declared(desired)
    else:
        declared = parse_declared(list(desired))
    with _locked(receiver_store, lock_wait, dry_run) as lock:
        changes = plan_changes(api, receiver_store, declared, prune=prune)
        if dry_run:
            return EnsureResult(tuple(changes), dry_run=True)
        done = []
        for change in changes:
            if change.action != "keep" and not lock.keep():
                # Another run may be changing the same webhooks now: do nothing more.
                error = "this run lost the store's lock (a step took longer than its ttl)"
                done.append(attrs.evolve(change, done=False, error=error))
                continue
            done.append(_carry_out(api, receiver_store, change, on_repaired))
    return EnsureResult(tuple(done), dry_run=False)


def plan_changes(
    api: Any, store: SecretStore, declared: Sequence[DeclaredWebhook], *, prune: bool = False
) -> list[PlannedChange]:
    """Compare ``declared`` with what Asana has; list the steps, in file order, then deletes."""
    existing: list[WebhookResponse] = []
    for workspace in dict.fromkeys(webhook.workspace for webhook in declared):
        existing.extend(api.iter_webhooks(workspace, opt_fields=list(WEBHOOK_FIELDS)))
    by_place = {(_resource_gid(webhook), webhook.target): webhook for webhook in existing}
    changes: list[PlannedChange] = []
    wanted: set[str] = set()
    for item in declared:
        webhook = by_place.get((item.resource, item.target))
        if webhook is not None:
            wanted.add(webhook.gid)
        changes.append(_compare(store, item, webhook))
    if prune:
        hosts = {_origin(item.target) for item in declared}
        for webhook in existing:
            if webhook.gid not in wanted and _origin(webhook.target or "") in hosts:
                changes.append(PlannedChange("delete", "not declared", webhook=webhook))
    return changes


def _compare(
    store: SecretStore, item: DeclaredWebhook, webhook: Optional[WebhookResponse]
) -> PlannedChange:
    if webhook is None:
        return PlannedChange("create", "missing", declared=item)
    if store.get(item.key) is None:
        # Exists, but the receiver could verify none of its deliveries (a store restored from
        # an old backup, say): only a new handshake gives a secret again.
        return PlannedChange(
            "create", "no secret stored for its target", declared=item, webhook=webhook
        )
    if _filter_set(webhook.filters or []) != _filter_set(item.filters):
        return PlannedChange("update", "filters differ", declared=item, webhook=webhook)
    return PlannedChange("keep", "matches", declared=item, webhook=webhook)


def _carry_out(
    api: Any, store: SecretStore, change: PlannedChange, on_repaired: Optional[RepairHandler]
) -> PlannedChange:
    try:
        if change.action == "keep":
            return attrs.evolve(change, done=True)
        if change.action == "delete":
            assert change.webhook is not None
            _delete(api, change.webhook.gid)
            store.delete(change.webhook.target or "")
            return attrs.evolve(change, done=True)
        assert change.declared is not None
        if change.action == "update":
            assert change.webhook is not None
            # Asana's PUT replaces the whole filter list: send all of it.
            filters = list(change.declared.filters)
            request = UpdateWebhookRequest(data=WebhookUpdateRequest(filters=filters))
            updated = api.update_webhook(change.webhook.gid, request)
            return attrs.evolve(change, done=True, result_gid=updated.data.gid)
        return _create(api, store, change, on_repaired)
    except AsanaError as exc:
        logger.error("Could not %s the webhook for %s: %s", change.action, change.target, exc)
        return attrs.evolve(change, done=False, error=f"{type(exc).__name__}: {exc}")


def _create(
    api: Any, store: SecretStore, change: PlannedChange, on_repaired: Optional[RepairHandler]
) -> PlannedChange:
    from asana_webhooks._establish import establish_webhook

    item = change.declared
    assert item is not None
    since = _last_contact(store, item.key)
    # A stored secret proves a handshake once succeeded: the webhook existed, even if the
    # receiver never heard from it after (then ``since`` is None: the window is unknown).
    existed = since is not None or change.webhook is not None or _has_secret(store, item.key)
    if change.webhook is not None:
        _delete(api, change.webhook.gid)
    created = establish_webhook(
        api,
        store,
        item.resource,
        item.target,
        list(item.filters) or None,
        workspace=item.workspace,
    )
    logger.info("Created webhook %s on %s for %s", created.gid, item.resource, item.target)
    if on_repaired is not None and existed:
        # It had existed (we heard from it, or it was there without a secret): its events
        # since then may be lost, and the Events API can still give them back.
        try:
            on_repaired(item, since)
        except Exception:
            logger.exception("on_repaired raised for %s", item.target)
    return attrs.evolve(change, done=True, result_gid=created.gid)


def _delete(api: Any, gid: str) -> None:
    # Another run, or Asana itself, deleted it first: the goal is reached.
    with contextlib.suppress(NotFoundError):
        api.delete_webhook(gid)


def _last_contact(store: SecretStore, key: str) -> Optional[float]:
    if not isinstance(store, RecordsContact):
        return None
    try:
        return store.last_contact(key).last
    except Exception:  # a record we cannot read must not stop the repair itself
        logger.exception("Could not read when %s last heard from Asana", key)
        return None


def _has_secret(store: SecretStore, key: str) -> bool:
    try:
        return store.get(key) is not None
    except Exception:
        logger.exception("Could not read the secret store for %s", key)
        return False


def _resource_gid(webhook: WebhookResponse) -> Optional[str]:
    return webhook.resource.gid if webhook.resource is not None else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _filter_set(filters: Sequence[WebhookFilter]) -> frozenset[tuple[Any, ...]]:
    # Asana keeps filters as a set: order, and the order of fields, carry no meaning.
    return frozenset(
        (f.resource_type, f.resource_subtype, f.action, frozenset(f.fields or ())) for f in filters
    )


class _locked:
    """Hold the store's ensure lock, if it has one; a dry run changes nothing and takes none.

    Without a lock (a store that cannot hold one) every step still tolerates a concurrent run:
    a second create finds Asana's duplicate, a second delete its 404.
    """

    def __init__(self, store: SecretStore, wait: float, dry_run: bool) -> None:
        self.store: Optional[SupportsLocks] = None
        if not dry_run and isinstance(store, SupportsLocks):
            self.store = store
        self.wait = wait
        self.token: Optional[str] = None
        self.renewed = 0.0  # monotonic time of the last acquire or renewal
        self.lost = False

    def keep(self) -> bool:
        """Renew the lock if a third of its ttl has passed; False if it was lost meanwhile."""
        if self.lost:
            return False
        if self.store is None or self.token is None:
            return True
        if time.monotonic() - self.renewed < DEFAULT_LOCK_TTL / 3:
            return True
        if not self.store.renew_lock(_LOCK_NAME, self.token, DEFAULT_LOCK_TTL):
            logger.error("ensure_webhooks lost the store's lock; stopping its changes")
            self.token, self.lost = None, True
            return False
        self.renewed = time.monotonic()
        return True

    def __enter__(self) -> _locked:
        if self.store is None:
            return self
        deadline = time.monotonic() + self.wait
        delay = 0.05
        while True:
            self.token = self.store.acquire_lock(_LOCK_NAME, DEFAULT_LOCK_TTL)
            if self.token is not None:
                self.renewed = time.monotonic()
                return self
            if time.monotonic() >= deadline:
                raise EnsureError(
                    f"another ensure_webhooks run has held the lock for over {self.wait:.0f} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def __exit__(self, *exc: object) -> None:
        if self.store is not None and self.token is not None:
            self.store.release_lock(_LOCK_NAME, self.token)


__all__ = [
    "DEFAULT_LOCK_TTL",
    "EnsureError",
    "EnsureResult",
    "PlannedChange",
    "ensure_webhooks",
    "plan_changes",
]
