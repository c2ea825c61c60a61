"""Builders for the events Asana delivers to webhook targets (``EventResponse`` in the OAS)."""

from __future__ import annotations

import datetime
from typing import Any, Mapping, Optional, Union

from asana_webhooks.testing._ids import format_time, new_gid, utc_now

#: ``Event.action`` values Asana documents.
EVENT_ACTIONS = ("changed", "added", "removed", "deleted", "undeleted")

_FIELD_ACTIONS = ("changed", "added", "removed")

ResourceRef = Union[str, Mapping[str, Any]]


class _Default:
    """Marker for "argument not given" where ``None`` means something (a system event's user)."""


_DEFAULT = _Default()


def _reference(value: ResourceRef, resource_type: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"gid": value, "resource_type": resource_type}
    return dict(value)


def make_event(
    action: str = "changed",
    resource: Optional[ResourceRef] = None,
    *,
    resource_type: str = "task",
    resource_subtype: Optional[str] = "default_task",
    user: Union[ResourceRef, _Default, None] = _DEFAULT,
    parent: Optional[ResourceRef] = None,
    parent_type: str = "project",
    field: Optional[str] = None,
    change_action: str = "changed",
    new_value: Any = None,
    added_value: Any = None,
    removed_value: Any = None,
    created_at: Union[datetime.datetime, str, None] = None,
) -> dict[str, Any]:
    """Build one event shaped like the ones Asana puts in a webhook delivery's ``events`` list.

    ``resource``, ``user`` and ``parent`` take a gid (expanded to ``{"gid", "resource_type"}``)
    or a full mapping used as is; ``resource`` and ``user`` default to fresh gids and
    ``user=None`` makes a system-generated event. ``change`` is present only for
    ``action="changed"`` (``field`` defaults to ``"name"``); ``parent`` may be given only for
    ``added``/``removed``, the events where Asana sets it, and is ``null`` otherwise.
    ``new_value`` / ``added_value`` / ``removed_value`` are included when given (Asana sends
    them only when the value is a resource, as ``{"gid", "resource_type"}``).
    """
    if action not in EVENT_ACTIONS:
        raise ValueError(f"action must be one of {EVENT_ACTIONS}, not {action!r}")
    if change_action not in _FIELD_ACTIONS:
        raise ValueError(f"change_action must be one of {_FIELD_ACTIONS}, not {change_action!r}")
    if parent is not None and action not in ("added", "removed"):
        raise ValueError(f"Asana sets parent only on added/removed events, not {action!r}")
    if field is not None and action != "changed":
        raise ValueError(f"Asana sends change.field only on changed events, not {action!r}")
    resource_ref = _reference(resource if resource is not None else new_gid(), resource_type)
    if resource_subtype is not None and isinstance(resource, (str, type(None))):
        resource_ref["resource_subtype"] = resource_subtype
    if isinstance(user, _Default):
        user_ref: Optional[dict[str, Any]] = {"gid": new_gid(), "resource_type": "user"}
    else:
        user_ref = None if user is None else _reference(user, "user")
    if isinstance(created_at, str):
        when: Optional[str] = created_at
    else:
        when = format_time(created_at if created_at is not None else utc_now())
    event: dict[str, Any] = {
        "user": user_ref,
        "created_at": when,
        "action": action,
        "resource": resource_ref,
        "parent": None if parent is None else _reference(parent, parent_type),
    }
    if action == "changed":
        change: dict[str, Any] = {"field": field or "name", "action": change_action}
        for key, value in (
            ("new_value", new_value),
            ("added_value", added_value),
            ("removed_value", removed_value),
        ):
            if value is not None:
                change[key] = value
        event["change"] = change
    return event
