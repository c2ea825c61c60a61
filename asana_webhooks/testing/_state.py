"""FakeAsana's data: workspaces, resources and webhooks, guarded by one lock.

Webhook JSON follows ``WebhookCompact``/``WebhookResponse`` in Asana's OAS. Delivery
bookkeeping follows the webhooks guide: a failure streak bumps ``delivery_retry_count``,
schedules ``next_attempt_after`` with exponential backoff and sets
``failure_deletion_timestamp`` 24 hours after its first failure; a success clears all three.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import attrs

from asana_webhooks.testing._ids import format_time, new_gid
from asana_webhooks.testing._records import OutboundCall

#: Asana deletes a webhook after 24 hours without a successful delivery.
FAILURE_DELETION_DELAY = datetime.timedelta(hours=24)
#: Backoff between delivery attempts: 1 minute, doubling, capped at 1 hour (GUESS: Asana says
#: only "exponential backoff").
_FIRST_RETRY_DELAY = datetime.timedelta(minutes=1)
_MAX_RETRY_DELAY = datetime.timedelta(hours=1)
#: How much of a failing target's body ``last_failure_content`` keeps.
_FAILURE_CONTENT_CHARS = 500

#: Asana sends a heartbeat to every webhook this often.
HEARTBEAT_INTERVAL = datetime.timedelta(hours=8)

#: Resource types whose webhooks must have filters (OAS ``WebhookRequest.resource``).
HIGHER_LEVEL_TYPES = frozenset({"workspace", "team", "portfolio"})
#: Events on these never reach a workspace's, team's or portfolio's stream (webhooks guide:
#: "task, subtask, and story events are never propagated" to team/workspace webhooks).
_NOT_PROPAGATED_UP = frozenset({"task", "subtask", "story", "attachment", "section", "tag"})

UNDECLARED_RESOURCE_TYPE = "task"


@attrs.define
class Resource:
    gid: str
    name: str
    resource_type: str
    workspace_gid: str
    #: Where its events bubble up to besides its workspace: a task's projects, a subtask's
    #: parent task, a story's task.
    parents: list[str] = attrs.field(factory=list)

    def reference(self) -> dict[str, Any]:
        return {"gid": self.gid, "resource_type": self.resource_type, "name": self.name}


@attrs.define
class Webhook:
    gid: str
    seq: int
    resource: Resource
    target: str
    secret: str = attrs.field(repr=False)
    filters: list[dict[str, Any]]
    created_at: datetime.datetime
    active: bool = True
    last_failure_at: Optional[datetime.datetime] = None
    last_failure_content: Optional[str] = None
    last_success_at: Optional[datetime.datetime] = None
    delivery_retry_count: int = 0
    next_attempt_after: Optional[datetime.datetime] = None
    failure_deletion_timestamp: Optional[datetime.datetime] = None
    #: When the next heartbeat is due (Asana: "every eight hours").
    next_heartbeat_at: Optional[datetime.datetime] = None
    #: Events whose delivery failed, re-sent on the next attempt.
    pending: list[dict[str, Any]] = attrs.field(factory=list, repr=lambda p: f"<{len(p)} events>")

    @property
    def failing(self) -> bool:
        return self.delivery_retry_count > 0

    def compact(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "resource_type": "webhook",
            "active": self.active,
            "resource": self.resource.reference(),
            "target": self.target,
        }

    def full(self) -> dict[str, Any]:
        return {
            **self.compact(),
            "created_at": format_time(self.created_at),
            "last_failure_at": format_time(self.last_failure_at),
            "last_failure_content": self.last_failure_content,
            "last_success_at": format_time(self.last_success_at),
            "delivery_retry_count": self.delivery_retry_count,
            "next_attempt_after": format_time(self.next_attempt_after),
            "failure_deletion_timestamp": format_time(self.failure_deletion_timestamp),
            "filters": [dict(item) for item in self.filters],
        }

    def record_delivery(self, call: OutboundCall, now: datetime.datetime) -> None:
        if call.ok:
            self.last_success_at = now
            self.delivery_retry_count = 0
            self.next_attempt_after = None
            self.failure_deletion_timestamp = None
            return
        self.last_failure_at = now
        self.last_failure_content = describe_failure(call)
        self.delivery_retry_count += 1
        delay = min(_FIRST_RETRY_DELAY * 2 ** (self.delivery_retry_count - 1), _MAX_RETRY_DELAY)
        self.next_attempt_after = now + delay
        if self.failure_deletion_timestamp is None:
            self.failure_deletion_timestamp = now + FAILURE_DELETION_DELAY


def describe_failure(call: OutboundCall) -> str:
    """``last_failure_content`` in Asana's style: ``500 Server Error\\n\\n<body>``."""
    if call.status == 0:
        return call.error or "No response from target"
    text = call.response_body.decode("utf-8", "replace")[:_FAILURE_CONTENT_CHARS]
    return f"{call.status} {call.reason}\n\n{text}"


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else None


def filters_match(filters: Sequence[Mapping[str, Any]], event: Mapping[str, Any]) -> bool:
    """Whether a webhook with ``filters`` gets ``event``: no filters, or any one matches."""
    if not filters:
        return True
    resource = event.get("resource")
    change = event.get("change")
    for item in filters:
        if item.get("resource_type") and item["resource_type"] != _field(resource, "resource_type"):
            continue
        subtype = item.get("resource_subtype")
        if subtype and subtype != _field(resource, "resource_subtype"):
            continue
        if item.get("action") and item["action"] != event.get("action"):
            continue
        fields = item.get("fields")
        if fields and _field(change, "field") not in fields:
            continue
        return True
    return False


class DuplicateWebhookError(Exception):
    """A webhook with the same resource and target exists."""


class Store:
    """All mutable state. Every method takes the lock; ``lock`` is public for multi-step reads."""

    def __init__(self, default_workspace_gid: str, default_workspace_name: str) -> None:
        self.lock = threading.RLock()
        self.default_workspace_gid = default_workspace_gid
        self._default_workspace_name = default_workspace_name
        self.resources: dict[str, Resource] = {}
        self.webhooks: dict[str, Webhook] = {}  # insertion order is creation order
        self._seq = 0
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.resources.clear()
            self.webhooks.clear()
            self.add_workspace(self.default_workspace_gid, self._default_workspace_name)

    def _unused_gid(self) -> str:
        while True:
            gid = new_gid()
            if gid not in self.resources and gid not in self.webhooks:
                return gid

    def add_workspace(self, gid: Optional[str], name: str) -> Resource:
        with self.lock:
            gid = gid or self._unused_gid()
            workspace = Resource(gid=gid, name=name, resource_type="workspace", workspace_gid=gid)
            self.resources[gid] = workspace
            return workspace

    def is_workspace(self, gid: str) -> bool:
        with self.lock:
            resource = self.resources.get(gid)
            return resource is not None and resource.resource_type == "workspace"

    def add_resource(
        self,
        gid: Optional[str],
        name: Optional[str],
        resource_type: str,
        workspace_gid: str,
        parents: Sequence[str] = (),
    ) -> Resource:
        with self.lock:
            if not self.is_workspace(workspace_gid):
                raise KeyError(f"unknown workspace {workspace_gid!r}: add_workspace() it first")
            gid = gid or self._unused_gid()
            resource = Resource(
                gid=gid,
                name=name if name is not None else f"{resource_type.title()} {gid}",
                resource_type=resource_type,
                workspace_gid=workspace_gid,
                parents=list(dict.fromkeys(parents)),
            )
            self.resources[gid] = resource
            return resource

    def streams_for(self, event: Mapping[str, Any], also: Iterable[str] = ()) -> list[str]:
        """The resources whose event streams (and webhooks) ``event`` reaches.

        Its resource and, for added/removed events, its parent; then, bubbling up, their
        declared parents and workspaces, except that task, subtask and story events stop
        below workspaces, teams and portfolios (as Asana's webhooks guide says).
        """
        resource_type = _field(event.get("resource"), "resource_type")
        start = [_field(event.get(key), "gid") for key in ("resource", "parent")]
        seen: dict[str, None] = {}
        todo = [gid for gid in [*start, *also] if isinstance(gid, str) and gid]
        with self.lock:
            while todo:
                gid = todo.pop(0)
                if gid in seen:
                    continue
                seen[gid] = None
                resource = self.resources.get(gid)
                if resource is not None:
                    todo.extend(resource.parents)
                    if resource.workspace_gid != gid:
                        todo.append(resource.workspace_gid)
            if resource_type in _NOT_PROPAGATED_UP:
                for gid in list(seen):
                    resource = self.resources.get(gid)
                    if (
                        resource is not None
                        and resource.resource_type in HIGHER_LEVEL_TYPES
                        and gid not in also
                    ):
                        del seen[gid]
        return list(seen)

    def resource_for(self, gid: str) -> Resource:
        """The declared resource, or a task in the default workspace for an undeclared gid."""
        with self.lock:
            resource = self.resources.get(gid)
            if resource is None:
                resource = self.add_resource(
                    gid, None, UNDECLARED_RESOURCE_TYPE, self.default_workspace_gid
                )
            return resource

    def find_duplicate(self, resource_gid: str, target: str) -> Optional[Webhook]:
        with self.lock:
            for webhook in self.webhooks.values():
                if webhook.resource.gid == resource_gid and webhook.target == target:
                    return webhook
            return None

    def insert(
        self,
        resource: Resource,
        target: str,
        filters: list[dict[str, Any]],
        secret: str,
        created_at: datetime.datetime,
    ) -> Webhook:
        """Add a webhook; raise ``DuplicateWebhookError`` if resource+target is taken."""
        with self.lock:
            if self.find_duplicate(resource.gid, target) is not None:
                raise DuplicateWebhookError(resource.gid)
            self._seq += 1
            webhook = Webhook(
                gid=self._unused_gid(),
                seq=self._seq,
                resource=resource,
                target=target,
                secret=secret,
                filters=filters,
                created_at=created_at,
                next_heartbeat_at=created_at + HEARTBEAT_INTERVAL,
            )
            self.webhooks[webhook.gid] = webhook
            return webhook

    def page(
        self,
        workspace_gid: str,
        resource_gid: Optional[str],
        after_seq: int,
        limit: Optional[int],
        render: Callable[[Webhook], dict[str, Any]],
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Webhooks after ``after_seq`` in creation order, rendered under the lock.

        Returns up to ``limit`` items (all when ``None``), the ``seq`` of the last one and
        whether more matching webhooks follow.
        """
        with self.lock:
            matching = [
                webhook
                for webhook in self.webhooks.values()
                if webhook.seq > after_seq
                and webhook.resource.workspace_gid == workspace_gid
                and (resource_gid is None or webhook.resource.gid == resource_gid)
            ]
            chosen = matching if limit is None else matching[:limit]
            last_seq = chosen[-1].seq if chosen else after_seq
            return [render(webhook) for webhook in chosen], last_seq, len(chosen) < len(matching)
