"""Webhook filters written as text: ``task:changed:name,due_on``, one syntax everywhere.

``parse_filter`` turns ``TYPE[/SUBTYPE][:ACTION[:FIELD,FIELD...]]`` into a ``WebhookFilter``
and ``format_filter`` writes one back. The command line, the Django example's management
command and any application that reads filters from a settings file share them, so a
filter that works in one place works in all.

``check_filter`` holds a filter to what Asana documents (its webhooks guide, "Filtering" and
"Resources and actions", and the OpenAPI ``WebhookFilter``): the five actions, the resource
types that produce events with the actions documented for each, and ``fields`` only with
``changed``. A typo is refused with the expected form instead of silently becoming a filter
that never matches.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Optional

from asana_webhooks._errors import InvalidRequestError
from asana_webhooks._models import WebhookFilter

#: Every ``Event.action`` Asana sends, so every action a filter can name.
ACTIONS = ("added", "changed", "removed", "deleted", "undeleted")

#: Resource types whose events Asana documents for webhooks, with the actions documented for
#: each ("Resources and actions"). A filter naming one of these with another action would
#: never match.
DOCUMENTED_ACTIONS: dict[str, tuple[str, ...]] = {
    "attachment": ("deleted", "undeleted"),
    "portfolio": ("added", "deleted", "removed"),
    "project": ("added", "changed", "deleted", "removed", "undeleted"),
    "project_membership": ("added", "removed"),
    "project_template_configuration": ("added", "deleted", "removed"),
    "project_template_configuration_membership": ("added", "removed"),
    "section": ("added", "changed", "deleted", "undeleted"),
    "story": ("added", "changed", "removed", "undeleted"),
    "tag": ("added", "changed", "deleted", "undeleted"),
    "task": ("added", "changed", "deleted", "removed", "undeleted"),
    "team": ("added", "changed", "deleted"),
    "team_membership": ("added", "removed"),
    "workspace": ("added", "changed", "removed"),
    "workspace_membership": ("added", "removed"),
}

#: Other resource types of Asana's API (its OpenAPI description). Asana's lists of webhook
#: events are not exhaustive, so these are accepted with any action rather than refused.
OTHER_RESOURCE_TYPES = frozenset(
    {
        "allocation",
        "budget",
        "custom_field",
        "custom_field_setting",
        "custom_type",
        "enum_option",
        "goal",
        "goal_relationship",
        "membership",
        "portfolio_membership",
        "project_brief",
        "project_status",
        "project_template",
        "status_update",
        "task_template",
        "time_period",
        "time_tracking_entry",
        "user",
        "user_task_list",
    }
)

RESOURCE_TYPES = frozenset(DOCUMENTED_ACTIONS) | OTHER_RESOURCE_TYPES

#: Resource types whose webhooks must have filters ("higher-level resources require filters").
HIGHER_LEVEL_TYPES = frozenset({"workspace", "team", "portfolio"})
#: On those webhooks only these events pass (task and story events do not propagate that
#: high), and no filter may name ``fields``.
HIGHER_LEVEL_ACTIONS: dict[str, tuple[str, ...]] = {
    "project": ("added", "changed", "deleted", "removed", "undeleted"),
    "team_membership": ("added", "removed"),
    "workspace_membership": ("added", "removed"),
}

FILTER_FORM = "TYPE[/SUBTYPE][:ACTION[:FIELD,FIELD...]]"
_EXAMPLES = "for example task:changed:name,due_on, story:added or :deleted"

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_FIELD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*\Z")


class InvalidFilterError(InvalidRequestError):
    """A webhook filter that is malformed or names what Asana does not send.

    ``text`` is the filter as written (or ``None`` for a ``WebhookFilter`` built in code),
    ``problem`` what is wrong with it; the message says both and the expected form.
    """

    def __init__(self, problem: str, text: Optional[str] = None) -> None:
        self.problem = problem
        self.text = text
        where = f"filter {text!r}" if text is not None else "filter"
        super().__init__(f"{where}: {problem}")


def parse_filter(text: str) -> WebhookFilter:
    """``"task:changed:name,due_on"`` -> ``WebhookFilter``; ``*`` or an empty part means any.

    Raises ``InvalidFilterError`` for a malformed filter, an unknown resource type or action,
    an action Asana does not send for that type, or fields without ``changed``.
    """
    if not isinstance(text, str):
        raise InvalidFilterError(f"expected text of the form {FILTER_FORM}, got {text!r}")
    parts = [part.strip() for part in text.split(":")]
    if not text.strip() or len(parts) > 3:
        raise InvalidFilterError(f"expected {FILTER_FORM}, {_EXAMPLES}", text)
    parts += [""] * (3 - len(parts))
    kind, action, fields_text = parts
    resource_type, slash, subtype = (part.strip() for part in kind.partition("/"))
    fields = [field.strip() for field in fields_text.split(",")] if fields_text else []

    def any_or(value: str) -> Optional[str]:
        return None if value in ("", "*") else value

    try:
        for name, value in (("resource type", resource_type), ("action", action)):
            if any_or(value) is not None and not _NAME.match(value):
                raise InvalidFilterError(f"{_not_a_name(name, value)}; expected {FILTER_FORM}")
        if slash and any_or(subtype) is None:
            raise InvalidFilterError("an empty subtype after '/'")
        if any_or(subtype) is not None and not _NAME.match(subtype):
            raise InvalidFilterError(f"{_not_a_name('subtype', subtype)}; expected {FILTER_FORM}")
        for field in fields:
            if not _FIELD.match(field):
                raise InvalidFilterError(
                    f"{field!r} is not a field name: expected FIELD,FIELD... after the action"
                )
        result = WebhookFilter(
            resource_type=any_or(resource_type),
            resource_subtype=any_or(subtype),
            action=any_or(action),
            fields=fields or None,
        )
        check_filter(result)
    except InvalidFilterError as exc:
        raise InvalidFilterError(exc.problem, text) from None
    return result


def _not_a_name(what: str, value: str) -> str:
    words = value.split()
    if len(words) == 2:  # "task changed": a space where a colon belongs
        return (
            f"{what} {value!r} is not a name; parts are separated by ':', as in {':'.join(words)}"
        )
    return f"{what} {value!r} is not a name (lower-case letters, digits and '_')"


def check_filter(item: WebhookFilter, *, higher_level: bool = False) -> None:
    """Raise ``InvalidFilterError`` unless ``item`` is a filter Asana can match.

    ``higher_level``: the webhook is on a workspace, team or portfolio, where Asana allows
    only project, team membership and workspace membership events, and no ``fields``.
    """
    resource_type, action = item.resource_type, item.action
    if higher_level:
        _check_higher_level(item)
    if resource_type is None and action is None and item.resource_subtype is None:
        raise InvalidFilterError(f"a filter must name a type or an action ({_EXAMPLES})")
    if item.resource_subtype is not None and resource_type is None:
        raise InvalidFilterError("a subtype needs its type, as in task/milestone")
    if action is not None and action not in ACTIONS:
        raise InvalidFilterError(
            f"unknown action {action!r}{_suggest(action, ACTIONS)} (one of {', '.join(ACTIONS)})"
        )
    if resource_type is not None:
        if resource_type not in RESOURCE_TYPES:
            raise InvalidFilterError(
                f"unknown resource type {resource_type!r}"
                f"{_suggest(resource_type, RESOURCE_TYPES)}; Asana sends events for "
                f"{', '.join(sorted(DOCUMENTED_ACTIONS))}"
            )
        documented = DOCUMENTED_ACTIONS.get(resource_type)
        if action is not None and documented is not None and action not in documented:
            raise InvalidFilterError(
                f"Asana sends no {action!r} events for {resource_type}; "
                f"its actions are {', '.join(documented)}"
            )
    if item.fields and action != "changed":
        raise InvalidFilterError(
            "fields can only be named with the action 'changed', as in task:changed:name,due_on"
        )


def _check_higher_level(item: WebhookFilter) -> None:
    allowed = HIGHER_LEVEL_ACTIONS.get(item.resource_type or "")
    if allowed is None:
        raise InvalidFilterError(
            f"resource type {item.resource_type!r} cannot be filtered on a workspace, team or "
            f"portfolio webhook; expected one of {', '.join(sorted(HIGHER_LEVEL_ACTIONS))}"
        )
    if item.action is not None and item.action not in allowed:
        raise InvalidFilterError(
            f"a workspace, team or portfolio webhook gets no {item.action!r} events for "
            f"{item.resource_type}; its actions are {', '.join(allowed)}"
        )
    if item.fields:
        raise InvalidFilterError(
            "fields are not supported on workspace, team or portfolio webhooks"
        )


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_filter(item: WebhookFilter) -> str:
    """The text form of a ``WebhookFilter``: ``parse_filter(format_filter(f)) == f``."""
    kind = item.resource_type or "*"
    if item.resource_subtype:
        kind += f"/{item.resource_subtype}"
    text = f"{kind}:{item.action or '*'}"
    if item.fields:
        text += ":" + ",".join(item.fields)
    return text
