"""Seeded, realistic event traffic for one resource, shaped like Asana's ``EventResponse``.

A project sees tasks added to it, changed (``change.field`` with the value shapes Asana
documents: ``new_value`` for a changed assignee, ``added_value`` for a follower), commented on
(stories added), given subtasks, removed and deleted. A task sees its own changes, stories and
subtasks. A workspace (or team, or portfolio) sees projects added, changed and deleted; any
other resource (a goal, say) sees its own fields change. The same seed gives the same
sequence of kinds, fields and gids; ``created_at`` comes from the stand-in's clock and strictly
increases, so no two generated events are alike.
"""

from __future__ import annotations

import datetime
import random
from typing import Any, Callable, Optional

from asana_webhooks.testing._events import make_event
from asana_webhooks.testing._ids import format_time

#: Called to make the stand-in know a new resource: (gid, resource_type, name, parent gid).
Declare = Callable[[str, str, str, str], None]

_TASK_FIELDS = ("name", "notes", "due_on", "completed", "assignee", "custom_fields", "followers")
_PROJECT_FIELDS = ("name", "notes", "color", "archived", "due_on")
_OTHER_FIELDS = ("name", "notes", "due_on", "status", "owner")
_USER_POOL = 5


class EventTraffic:
    """Makes events for ``resource``; ``next(count)`` returns them (nothing is sent)."""

    def __init__(
        self,
        resource: str,
        resource_type: str,
        *,
        seed: Optional[int],
        now: Callable[[], datetime.datetime],
        declare: Declare,
    ) -> None:
        self.resource = resource
        self.resource_type = resource_type
        self._rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
        self._now = now
        self._declare = declare
        self._users = [self._gid() for _ in range(_USER_POOL)]
        self._tasks: list[str] = []  # tasks now in the project (or subtasks of the task)
        self._projects: list[str] = []  # projects now in the workspace

    def _gid(self) -> str:
        return str(1_200_000_000_000_000 + self._rng.randrange(200_000_000_000_000))

    def _user(self) -> str:
        return self._rng.choice(self._users)

    def _event(self, action: str, resource: dict[str, Any], **options: Any) -> dict[str, Any]:
        return make_event(
            action,
            resource,
            user=self._user(),
            created_at=format_time(self._now()),
            **options,
        )

    def next(self, count: int) -> list[dict[str, Any]]:
        if count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        if self.resource_type in ("workspace", "team", "portfolio"):
            return [self._project_event() for _ in range(count)]
        if self.resource_type == "project":
            return [self._in_project() for _ in range(count)]
        if self.resource_type == "task":
            return [self._on_task(self.resource) for _ in range(count)]
        return [self._changed_itself() for _ in range(count)]

    # --- a project -------------------------------------------------------------------------

    def _in_project(self) -> dict[str, Any]:
        if not self._tasks:
            return self._task_added()
        kind = self._rng.choices(
            ("added", "changed", "story", "subtask", "removed", "deleted"),
            weights=(25, 45, 15, 5, 5, 5),
        )[0]
        if kind == "added":
            return self._task_added()
        if kind in ("removed", "deleted"):
            task = self._tasks.pop(self._rng.randrange(len(self._tasks)))
            reference = _task(task)
            if kind == "removed":
                return self._event("removed", reference, parent=_ref(self.resource, "project"))
            return self._event("deleted", reference)
        return self._on_task(self._rng.choice(self._tasks), kind)

    def _task_added(self) -> dict[str, Any]:
        task = self._gid()
        self._declare(task, "task", f"Task {len(self._tasks) + 1}", self.resource)
        self._tasks.append(task)
        return self._event("added", _task(task), parent=_ref(self.resource, "project"))

    # --- a task ----------------------------------------------------------------------------

    def _on_task(self, task: str, kind: Optional[str] = None) -> dict[str, Any]:
        if kind is None:
            kind = self._rng.choices(("changed", "story", "subtask"), weights=(70, 20, 10))[0]
        if kind == "story":
            story = self._gid()
            self._declare(story, "story", "comment", task)
            reference = {
                "gid": story,
                "resource_type": "story",
                "resource_subtype": "comment_added",
            }
            return self._event("added", reference, parent=_ref(task, "task"))
        if kind == "subtask":
            subtask = self._gid()
            self._declare(subtask, "task", "Subtask", task)
            return self._event("added", _task(subtask), parent=_ref(task, "task"))
        field = self._rng.choice(_TASK_FIELDS)
        if field == "assignee":
            return self._event(
                "changed", _task(task), field=field, new_value=_ref(self._user(), "user")
            )
        if field == "followers":
            return self._event(
                "changed",
                _task(task),
                field=field,
                change_action="added",
                added_value=_ref(self._user(), "user"),
            )
        return self._event("changed", _task(task), field=field)

    # --- anything else (a goal, a tag, a section...) ---------------------------------------

    def _changed_itself(self) -> dict[str, Any]:
        reference = _ref(self.resource, self.resource_type)
        return self._event("changed", reference, field=self._rng.choice(_OTHER_FIELDS))

    # --- a workspace -------------------------------------------------------------------------

    def _project_event(self) -> dict[str, Any]:
        kind = (
            "added"
            if not self._projects
            else self._rng.choices(("added", "changed", "deleted"), weights=(30, 60, 10))[0]
        )
        if kind == "added":
            project = self._gid()
            self._declare(project, "project", f"Project {len(self._projects) + 1}", self.resource)
            self._projects.append(project)
            parent = _ref(self.resource, self.resource_type)
            return self._event("added", _project(project), parent=parent)
        if kind == "deleted":
            project = self._projects.pop(self._rng.randrange(len(self._projects)))
            return self._event("deleted", _project(project))
        project = self._rng.choice(self._projects)
        return self._event("changed", _project(project), field=self._rng.choice(_PROJECT_FIELDS))


def _ref(gid: str, resource_type: str) -> dict[str, Any]:
    return {"gid": gid, "resource_type": resource_type}


def _task(gid: str) -> dict[str, Any]:
    return {"gid": gid, "resource_type": "task", "resource_subtype": "default_task"}


def _project(gid: str) -> dict[str, Any]:
    return {"gid": gid, "resource_type": "project"}
