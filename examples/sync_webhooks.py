"""Keep a workspace's webhooks in a declared state, and report the ones failing to deliver.

The declared state is a JSON file::

    {
      "workspace": "1200000000000000",
      "webhooks": [
        {"resource": "1200000000000001",
         "target": "https://example.com/asana/webhooks/roadmap",
         "filters": ["task:changed:due_on"]}
      ]
    }

A filter is written as on the command line (``TYPE[/SUBTYPE][:ACTION[:FIELD,...]]``) or as
Asana's object (``{"resource_type": "task", "action": "changed", "fields": ["due_on"]}``).

A webhook is known by its resource and target (Asana allows one per pair). The script creates
the declared webhooks that are missing, replaces the filters of those whose filters differ
(filter order does not matter), deletes the webhooks of the workspace that are not declared,
and prints one line per webhook that is failing to deliver. Run it twice: the second run
changes nothing. ``--dry-run`` only prints what it would do.

Creating a webhook needs the receiver serving its target to answer Asana's handshake while
the create waits. The script and the receiver (the Flask or Django example, say) share the
secret store: ``--secret-store webhooks.sqlite3`` is a ``SQLiteSecretStore`` both open.

Settings: ``ASANA_ACCESS_TOKEN`` (required), ``ASANA_HOST`` or ``--host`` (default Asana's API;
point it at ``FakeAsana.url`` to try it). Exit status: 0 all healthy, 1 some webhook failing,
2 an error (a missing or invalid declared file, a missing token, an error from Asana).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Optional, TextIO

import attrs

from asana_webhooks import (
    ApiClient,
    AsanaError,
    Configuration,
    SecretStore,
    SQLiteSecretStore,
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookResponse,
    WebhooksApi,
    WebhookUpdateRequest,
    check_filter,
    establish_webhook,
    parse_filter,
)

#: What the listing must return for the comparison and the health report.
LIST_FIELDS = [
    "active",
    "resource",
    "target",
    "filters",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "failure_deletion_timestamp",
]

FilterKey = tuple[Optional[str], Optional[str], Optional[str], tuple[str, ...]]


@attrs.frozen
class DeclaredWebhook:
    resource: str
    target: str
    filters: tuple[WebhookFilter, ...] = ()


@attrs.frozen
class Plan:
    """What to do to reach the declared state."""

    create: list[DeclaredWebhook]
    update: list[tuple[WebhookResponse, DeclaredWebhook]]
    delete: list[WebhookResponse]
    unchanged: list[WebhookResponse]

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)


class DeclaredFileError(Exception):
    """The declared file cannot be read or is not in the documented form."""


def load_declared(path: str) -> tuple[str, list[DeclaredWebhook]]:
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as exc:
        raise DeclaredFileError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise DeclaredFileError(f"{path}: not valid JSON ({exc})") from None
    try:
        declared = [
            DeclaredWebhook(
                resource=str(item["resource"]),
                target=str(item["target"]),
                filters=tuple(declared_filter(f) for f in item.get("filters", [])),
            )
            for item in document["webhooks"]
        ]
        return str(document["workspace"]), declared
    except KeyError as exc:
        raise DeclaredFileError(f"{path}: {exc.args[0]!r} is missing") from None
    except (TypeError, AttributeError, ValueError) as exc:  # InvalidFilterError is a ValueError
        raise DeclaredFileError(f"{path}: {exc}") from None


def declared_filter(item: object) -> WebhookFilter:
    """A filter in the command line's syntax, or as Asana's object."""
    if isinstance(item, str):
        return parse_filter(item)
    if not isinstance(item, dict):
        raise TypeError(f"a filter is text or an object, not {item!r}")
    result = WebhookFilter(**item)
    check_filter(result)
    return result


def filter_key(item: WebhookFilter) -> FilterKey:
    return (item.resource_type, item.resource_subtype, item.action, tuple(item.fields or ()))


def same_filters(
    current: Optional[Sequence[WebhookFilter]], wanted: Sequence[WebhookFilter]
) -> bool:
    return sorted(map(filter_key, current or ()), key=repr) == sorted(
        map(filter_key, wanted), key=repr
    )


def make_plan(current: Iterable[WebhookResponse], declared: Sequence[DeclaredWebhook]) -> Plan:
    """Compare what Asana has with what is declared (pure: no calls)."""
    wanted = {(item.resource, item.target): item for item in declared}
    plan = Plan(create=[], update=[], delete=[], unchanged=[])
    found: set[tuple[str, str]] = set()
    for webhook in current:
        key = (webhook.resource.gid if webhook.resource else "", webhook.target or "")
        item = wanted.get(key)
        if item is None or key in found:
            plan.delete.append(webhook)
            continue
        found.add(key)
        if same_filters(webhook.filters, item.filters):
            plan.unchanged.append(webhook)
        else:
            plan.update.append((webhook, item))
    plan.create.extend(item for key, item in wanted.items() if key not in found)
    return plan


def failure(webhook: WebhookResponse) -> Optional[str]:
    """Why a webhook counts as failing, or None when it is healthy."""
    if webhook.active is False:
        return "inactive"
    failed, succeeded = webhook.last_failure_at, webhook.last_success_at
    if failed is not None and (succeeded is None or failed > succeeded):
        content = (webhook.last_failure_content or "").splitlines()
        reason = f"last delivery failed at {failed:%Y-%m-%d %H:%M}Z"
        if content:
            reason += f" ({content[0]})"
        if webhook.failure_deletion_timestamp is not None:
            reason += f"; Asana deletes it at {webhook.failure_deletion_timestamp:%Y-%m-%d %H:%M}Z"
        return reason
    return None


def apply_plan(
    api: WebhooksApi, store: SecretStore, workspace: str, plan: Plan, out: TextIO
) -> list[WebhookResponse]:
    """Carry the plan out; return the webhooks whose health can be judged now.

    A webhook just created is left out: Asana reports it ``active: false`` until its first
    delivery, so the next run judges it.
    """
    result = list(plan.unchanged)
    for webhook in plan.delete:
        api.delete_webhook(webhook.gid)
        if webhook.target:
            store.delete(webhook.target)
        print(f"deleted   {webhook.gid}  {webhook.target} (not declared)", file=out)
    for webhook, item in plan.update:
        request = UpdateWebhookRequest(data=WebhookUpdateRequest(filters=list(item.filters)))
        updated = api.update_webhook(webhook.gid, request).data
        print(f"updated   {webhook.gid}  {webhook.target} (filters)", file=out)
        result.append(updated or webhook)
    for item in plan.create:
        # workspace=: if the create's answer is lost, look the webhook up instead of guessing.
        created = establish_webhook(
            api, store, item.resource, item.target, item.filters, workspace=workspace
        )
        print(f"created   {created.gid}  {item.target}", file=out)
    return result


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None) -> int:
    out = out if out is not None else sys.stdout
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("declared", help="the JSON file of declared webhooks")
    parser.add_argument("--secret-store", default="webhooks.sqlite3", help="SQLite file")
    parser.add_argument("--host", default=os.environ.get("ASANA_HOST"), help="API base URL")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = parser.parse_args(argv)
    token = os.environ.get("ASANA_ACCESS_TOKEN")
    if not token:
        print("set ASANA_ACCESS_TOKEN to a personal access token", file=sys.stderr)
        return 2

    try:
        workspace, declared = load_declared(args.declared)
    except DeclaredFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configuration = Configuration(access_token=token)
    if args.host:
        configuration = attrs.evolve(configuration, host=args.host)
    store = SQLiteSecretStore(args.secret_store)
    try:
        with ApiClient(configuration) as client:
            api = WebhooksApi(client)
            plan = make_plan(api.iter_webhooks(workspace, opt_fields=LIST_FIELDS), declared)
            if args.dry_run:
                for item in plan.create:
                    print(f"would create  {item.resource} -> {item.target}", file=out)
                for webhook, _ in plan.update:
                    print(f"would update  {webhook.gid}  {webhook.target}", file=out)
                for webhook in plan.delete:
                    print(f"would delete  {webhook.gid}  {webhook.target}", file=out)
                webhooks = plan.unchanged + [webhook for webhook, _ in plan.update]
            else:
                webhooks = apply_plan(api, store, workspace, plan, out)
    except AsanaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    failing = [(webhook, failure(webhook)) for webhook in webhooks]
    failing = [(webhook, reason) for webhook, reason in failing if reason]
    for webhook, reason in failing:
        print(f"FAILING   {webhook.gid}  {webhook.target}: {reason}", file=out)
    print(
        f"{len(plan.create)} created, {len(plan.update)} updated, {len(plan.delete)} deleted, "
        f"{len(plan.unchanged)} unchanged, {len(failing)} failing"
        + (" (dry run)" if args.dry_run else "")
        + f" at {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}Z",
        file=out,
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
