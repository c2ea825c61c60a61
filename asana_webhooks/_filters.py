"""What Asana accepts in a webhook filter, checked before a request is sent.

From Asana's webhooks guide ("Resources and actions", "Filtering") and the ``WebhookFilter``
schema: the resource types and the actions each can have, ``fields`` only with ``changed``,
and the narrower rules of webhooks on workspaces, teams and portfolios.
"""

from __future__ import annotations

from typing import Optional

from asana_webhooks._models import WebhookFilter

ACTIONS = ("added", "changed", "deleted", "removed", "undeleted")

#: Resource type -> the actions Asana documents for it.
RESOURCE_ACTIONS: dict[str, frozenset[str]] = {
    "attachment": frozenset({"added", "deleted", "removed", "undeleted"}),
    "portfolio": frozenset({"added", "changed", "deleted", "removed"}),
    "project": frozenset(ACTIONS),
    "project_membership": frozenset({"added", "removed"}),
    "project_template_configuration": frozenset({"added", "deleted", "removed"}),
    "section": frozenset({"added", "changed", "deleted", "removed", "undeleted"}),
    "story": frozenset({"added", "changed", "removed", "undeleted"}),
    "tag": frozenset({"added", "changed", "deleted", "undeleted"}),
    "task": frozenset(ACTIONS),
    "team": frozenset({"added", "changed", "deleted"}),
    "team_membership": frozenset({"added", "removed"}),
    "workspace": frozenset({"added", "changed", "removed"}),
    "workspace_membership": frozenset({"added", "removed"}),
}

#: On workspace, team and portfolio webhooks only these pass (task and story events are not
#: propagated that high), and no filter takes ``fields``.
HIGHER_LEVEL_ACTIONS: dict[str, frozenset[str]] = {
    "project": frozenset(ACTIONS),
    "team_membership": frozenset({"added", "removed"}),
    "workspace_membership": frozenset({"added", "removed"}),
}


def filter_problem(item: WebhookFilter, *, higher_level: bool = False) -> Optional[str]:
    """Why Asana would refuse ``item``, in one sentence with the expected form; None if fine."""
    resource_type, action = item.resource_type, item.action
    if not resource_type:
        return 'needs a resource_type, e.g. { resource_type = "task", action = "changed" }'
    allowed = HIGHER_LEVEL_ACTIONS if higher_level else RESOURCE_ACTIONS
    if resource_type not in allowed:
        where = " on a workspace, team or portfolio webhook" if higher_level else ""
        return (
            f"resource_type {resource_type!r} cannot be filtered{where}; expected one of "
            f"{', '.join(sorted(allowed))}"
        )
    if action is not None and action not in allowed[resource_type]:
        return (
            f"action {action!r} does not happen to a {resource_type}; expected one of "
            f"{', '.join(sorted(allowed[resource_type]))}"
        )
    if item.fields:
        if higher_level:
            return "fields are not supported on workspace, team or portfolio webhooks"
        if action != "changed":
            return 'fields go only with action = "changed"'
    return None
