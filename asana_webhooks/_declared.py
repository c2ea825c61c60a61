"""Declared webhooks: the set of webhooks an application wants, read from a TOML file or a list.

::

    [[webhook]]
    workspace = "1200000000000000"
    resource = "1200000000000001"
    target = "https://example.com/asana/webhooks/1200000000000001"
    filters = [{ resource_type = "task", action = "changed", fields = ["name", "due_on"] }]

Everything is checked before any request is made: unknown keys, gids that are not gids, a
target that is not https (loopback hosts excepted, for local testing), two entries for one
target, and filters Asana would refuse. Each error names the entry and the field.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

import attrs

from asana_webhooks._errors import AsanaError
from asana_webhooks._filters import HIGHER_LEVEL_TYPES, InvalidFilterError, check_filter
from asana_webhooks._models import WebhookFilter
from asana_webhooks._secrets import target_key

_ENTRY_KEYS = frozenset({"workspace", "resource", "target", "filters", "resource_type"})
_FILTER_KEYS = frozenset({"resource_type", "resource_subtype", "action", "fields"})


class DeclarationError(AsanaError, ValueError):
    """A declared-webhooks file or list Asana would refuse, or that cannot be read.

    ``entry`` is the 1-based number of the ``[[webhook]]`` entry at fault (None for the file as
    a whole) and ``field`` the key, so the message can point at the line to fix.
    """

    def __init__(self, message: str, *, entry: Optional[int] = None, field: Optional[str] = None):
        where = "" if entry is None else f"webhook {entry}" + (f", {field}" if field else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.entry = entry
        self.field = field


@attrs.frozen
class DeclaredWebhook:
    """One webhook the application wants: on ``resource`` in ``workspace``, to ``target``."""

    workspace: str
    resource: str
    target: str
    filters: tuple[WebhookFilter, ...] = ()
    #: The resource's type if the file says it (``project``, ``team``, ...); the workspace
    #: itself is recognised without it. Lets the higher-level filter rules be checked early.
    resource_type: Optional[str] = None

    @property
    def key(self) -> str:
        """The target key its secret is stored under (see ``target_key``)."""
        return target_key(self.target)


def load_declared(path: Union[str, os.PathLike[str]]) -> list[DeclaredWebhook]:
    """Read and check a declared-webhooks TOML file; raise ``DeclarationError`` if it is bad."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.9 and 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise DeclarationError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{os.fspath(path)} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"webhook"})
    if unknown:
        raise DeclarationError(
            f"unknown top-level key {unknown[0]!r}; list webhooks as [[webhook]] tables"
        )
    entries = document.get("webhook", [])
    if not isinstance(entries, list):
        raise DeclarationError("'webhook' must be an array of tables: write [[webhook]]")
    return parse_declared(entries)


def parse_declared(entries: Sequence[Any]) -> list[DeclaredWebhook]:
    """Check a list of declared webhooks (dicts in the file's form, or ``DeclaredWebhook``)."""
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise DeclarationError("declared webhooks must be a list of entries")
    declared: list[DeclaredWebhook] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        webhook = entry if isinstance(entry, DeclaredWebhook) else _entry(entry, number)
        _check_filters(webhook, number)
        other = seen.setdefault(webhook.key, number)
        if other != number:
            raise DeclarationError(
                f"the same target as webhook {other} ({webhook.target}); each webhook needs a "
                "target of its own, since the target decides which secret signs its deliveries",
                entry=number,
                field="target",
            )
        declared.append(webhook)
    return declared


def _entry(entry: Any, number: int) -> DeclaredWebhook:
    if not isinstance(entry, Mapping):
        raise DeclarationError("must be a table of workspace, resource, target", entry=number)
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise DeclarationError(
            f"unknown key {unknown[0]!r} (expected: {', '.join(sorted(_ENTRY_KEYS))})",
            entry=number,
            field=unknown[0],
        )
    workspace = _gid(entry, "workspace", number)
    resource = _gid(entry, "resource", number)
    target = _target(entry.get("target"), number)
    resource_type = entry.get("resource_type")
    if resource_type is not None and not (isinstance(resource_type, str) and resource_type):
        raise DeclarationError("must be a resource type such as 'project'", entry=number,
                               field="resource_type")  # fmt: skip
    if resource_type is None and resource == workspace:
        resource_type = "workspace"
    raw_filters = entry.get("filters", [])
    if not isinstance(raw_filters, list):
        raise DeclarationError("must be a list of filter tables", entry=number, field="filters")
    filters = tuple(_filter(item, number, index) for index, item in enumerate(raw_filters, 1))
    return DeclaredWebhook(workspace, resource, target, filters, resource_type)


def _gid(entry: Mapping[str, Any], name: str, number: int) -> str:
    value = entry.get(name)
    if value is None:
        raise DeclarationError("is missing", entry=number, field=name)
    if not isinstance(value, str) or not value.isdigit() or not value.isascii():
        raise DeclarationError(
            f"must be an Asana gid as a string of digits, got {value!r}", entry=number, field=name
        )
    return value


def _target(value: Any, number: int) -> str:
    if value is None:
        raise DeclarationError("is missing", entry=number, field="target")
    if not isinstance(value, str):
        raise DeclarationError("must be a URL", entry=number, field="target")
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return value  # local testing against the stand-in
    raise DeclarationError(
        f"must be an https:// URL (Asana delivers only over TLS; http:// only for loopback "
        f"hosts), got {value!r}",
        entry=number,
        field="target",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _filter(item: Any, number: int, index: int) -> WebhookFilter:
    field = f"filters[{index}]"
    if not isinstance(item, Mapping):
        raise DeclarationError("must be a table such as { resource_type = \"task\", action = "
                               "\"changed\" }", entry=number, field=field)  # fmt: skip
    unknown = sorted(set(item) - _FILTER_KEYS)
    if unknown:
        raise DeclarationError(
            f"unknown key {unknown[0]!r} (expected: {', '.join(sorted(_FILTER_KEYS))})",
            entry=number,
            field=f"{field}.{unknown[0]}",
        )
    for name in ("resource_type", "resource_subtype", "action"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise DeclarationError("must be a string", entry=number, field=f"{field}.{name}")
    fields = item.get("fields")
    if fields is not None and not (
        isinstance(fields, list) and all(isinstance(name, str) and name for name in fields)
    ):
        raise DeclarationError("must be a list of field names", entry=number,
                               field=f"{field}.fields")  # fmt: skip
    return WebhookFilter(
        resource_type=item.get("resource_type"),
        resource_subtype=item.get("resource_subtype"),
        action=item.get("action"),
        fields=list(fields) if fields is not None else None,
    )


def _check_filters(webhook: DeclaredWebhook, number: int) -> None:
    higher = webhook.resource_type in HIGHER_LEVEL_TYPES
    if higher and not webhook.filters:
        raise DeclarationError(
            f"a webhook on a {webhook.resource_type} must have filters (Asana requires them on "
            "workspaces, teams and portfolios)",
            entry=number,
            field="filters",
        )
    for index, item in enumerate(webhook.filters, start=1):
        try:
            check_filter(item, higher_level=higher)
        except InvalidFilterError as exc:
            raise DeclarationError(exc.problem, entry=number, field=f"filters[{index}]") from None
