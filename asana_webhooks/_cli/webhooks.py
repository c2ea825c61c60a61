"""``list``, ``get``, ``create``, ``update``, ``delete`` and ``health``: the webhooks API."""

from __future__ import annotations

import argparse
import contextlib
import datetime
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Optional, TextIO

from asana_webhooks._cli._common import (
    ENVIRONMENT_HELP,
    EXIT_ATTENTION,
    EXIT_OK,
    CommandFailed,
    UsageError,
    api_options,
    gid,
    open_secret_store,
    opened_api,
    page_size,
    para,
)
from asana_webhooks._cli._output import (
    JsonListing,
    Progress,
    StreamedTable,
    all_webhook_fields,
    count_cell,
    flag_cell,
    one_line,
    print_json,
    print_table,
    relative,
    resource_cell,
    time_cell,
    webhook_json,
)

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands
    from asana_webhooks._models import WebhookFilter, WebhookResponse
    from asana_webhooks._secrets import SecretStore
    from asana_webhooks._webhooks_api import WebhooksApi

FILTER_HELP = """\
filters (--filter, repeatable; an event passing any filter is delivered):
  TYPE[/SUBTYPE][:ACTION[:FIELD,FIELD...]]    "*" or an empty part means any
    --filter task:changed:name,due_on   a task's name or due date changed
    --filter task:added                 a task was added (created, or added to a project)
    --filter task/milestone:changed     a milestone changed
    --filter story:added                a comment or other story was added
    --filter :deleted                   anything deleted
  ACTION is one of added, changed, removed, deleted, undeleted; FIELDs need "changed".
  TYPE is a resource type Asana sends events for (task, story, project, section, tag,
  attachment, team, workspace, portfolio, *_membership, ...), checked with its actions.
  Workspace, team and portfolio webhooks must have filters and cannot name fields.
"""
# --- filters ---------------------------------------------------------------------------------


def parse_filter(text: str) -> WebhookFilter:
    """``--filter`` text -> ``WebhookFilter`` (``asana_webhooks._filters``' one syntax)."""
    from asana_webhooks._filters import InvalidFilterError
    from asana_webhooks._filters import parse_filter as parse

    try:
        return parse(text)
    except InvalidFilterError as exc:
        raise UsageError(f"--filter {text!r}: {exc.problem}") from None


# --- output ------------------------------------------------------------------------------------


def print_webhook(out: TextIO, webhook: Any) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    from asana_webhooks._filters import format_filter

    filters = "  ".join(format_filter(item) for item in webhook.filters or []) or "(none)"
    rows = [
        ("gid", webhook.gid),
        ("active", flag_cell(webhook.active)),
        ("resource", resource_cell(webhook)),
        ("target", webhook.target or "-"),
        ("filters", filters),
        ("created_at", time_cell(webhook.created_at, now)),
        ("last_success_at", time_cell(webhook.last_success_at, now)),
        ("last_failure_at", time_cell(webhook.last_failure_at, now)),
        ("last_failure_content", one_line(webhook.last_failure_content)),
        ("delivery_retry_count", count_cell(webhook.delivery_retry_count)),
        ("next_attempt_after", time_cell(webhook.next_attempt_after, now)),
        ("failure_deletion_timestamp", time_cell(webhook.failure_deletion_timestamp, now)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.write(f"{name.ljust(width)}  {value}\n")


# --- the API commands ----------------------------------------------------------------------


def _pages(
    api: WebhooksApi, args: argparse.Namespace, opt_fields: Optional[Sequence[str]] = None
) -> Iterator[list[WebhookResponse]]:
    """The listing a page at a time, each handed over as soon as it has arrived."""
    page: list[WebhookResponse] = []
    listing = api.iter_webhooks(
        args.workspace,
        resource=args.resource,
        page_size=args.page_size,
        opt_fields=list(opt_fields) if opt_fields else None,
    )
    for webhook in listing:
        page.append(webhook)
        # iter_webhooks asks for the next page only when this one is used up: hand it on now.
        if len(page) == args.page_size:
            yield page
            page = []
    if page:
        yield page


def _json_listing(args: argparse.Namespace, out: TextIO) -> Optional[JsonListing]:
    if args.json_lines:
        return JsonListing(out, lines=True)
    return JsonListing(out, lines=False) if args.json else None


def cmd_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    as_json = _json_listing(args, out)
    table = StreamedTable(out, ("GID", "ACTIVE", "RESOURCE", "TARGET"))
    progress = Progress(err, "webhooks")
    count = 0
    try:
        with opened_api(args) as api:
            progress.show(count)
            for page in _pages(api, args):
                progress.clear()
                count += len(page)
                if as_json is not None:
                    as_json.write([webhook_json(webhook) for webhook in page])
                else:
                    table.write(
                        [
                            (w.gid, flag_cell(w.active), resource_cell(w), w.target or "-")
                            for w in page
                        ]
                    )
                progress.show(count)
    finally:
        progress.clear()
    if as_json is not None:
        as_json.close()
        return EXIT_OK
    table.finish()
    out.write(f"{count} webhook{'' if count == 1 else 's'}\n")
    return EXIT_OK


def cmd_get(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with opened_api(args) as api:
        webhook = api.get_webhook(args.gid).data
    _show(out, webhook, args.json)
    return EXIT_OK


def _show(out: TextIO, webhook: Any, as_json: bool) -> None:
    if as_json:
        print_json(out, webhook_json(webhook, all_webhook_fields()))
    else:
        print_webhook(out, webhook)


def cmd_create(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    filters = [parse_filter(text) for text in args.filter] or None
    # Checked before anything is created: a store that fails after the create would leave a
    # webhook whose handshake was refused.
    store = open_secret_store(args.secrets) if args.secrets else None
    with opened_api(args) as api, _explaining_a_refused_handshake(args):
        webhook, note = _create(api, args, store, filters)
    _show(out, webhook, args.json)
    if not args.json:
        out.write(note + "\n")
    return EXIT_OK


def _create(
    api: WebhooksApi,
    args: argparse.Namespace,
    store: Optional[SecretStore],
    filters: Optional[list[WebhookFilter]],
) -> tuple[Any, str]:
    from asana_webhooks._establish import establish_webhook
    from asana_webhooks._models import CreateWebhookRequest, WebhookRequest

    if store is not None:
        webhook = establish_webhook(api, store, args.resource, args.target, filters)
        return webhook, f"secret: checked against the handshake, stored in {args.secrets}"
    created = api.create_webhook(
        CreateWebhookRequest(
            data=WebhookRequest(resource=args.resource, target=args.target, filters=filters)
        )
    )
    length = len(created.x_hook_secret or "")
    note = (
        f"secret: Asana sent one ({length} chars), not shown; your receiver got it in "
        "the handshake (use --secrets PATH with `serve --secrets PATH` to check it)"
    )
    return created.data, note


@contextlib.contextmanager
def _explaining_a_refused_handshake(args: argparse.Namespace) -> Iterator[None]:
    """Turn Asana's "could not complete activation handshake" into the usual reasons.

    Asana answers 400 and does not say what the target answered; the stand-in adds it.
    """
    from asana_webhooks._errors import BadRequestError

    try:
        yield
    except BadRequestError as exc:
        said = str(exc)
        if "handshake" not in said.lower():
            raise
        refused = "403" in said
        how = "the receiver refused it (403)" if refused else "Asana could not complete it"
        if args.secrets:
            announce = (
                f"is the receiver `asana-webhooks serve --secrets {args.secrets}` (the same "
                "file) or another receiver over that store?"
            )
        else:
            announce = (
                "the target was not announced: give create the same --secrets file as "
                "`asana-webhooks serve --secrets`, or start serve with "
                "--accept-unannounced-handshakes"
            )
        reasons = f"{announce}; or the target already has a secret (a webhook delivers to it)"
        if not refused:
            reasons += "; or Asana cannot reach the target (it must be public HTTPS)"
        raise CommandFailed(
            f"the handshake for {args.target} failed: {how}. Usual reasons: "
            f"{reasons}. Asana said: {said}"
        ) from None


def cmd_update(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._models import UpdateWebhookRequest, WebhookUpdateRequest

    if not args.filter and not args.no_filters:
        raise UsageError(
            "update needs the new filters (--filter ..., repeatable; they replace the old "
            "ones), or --no-filters to remove them all"
        )
    if args.filter and args.no_filters:
        raise UsageError("--filter and --no-filters cannot be used together")
    filters = [parse_filter(text) for text in args.filter]
    with opened_api(args) as api:
        webhook = api.update_webhook(
            args.gid, UpdateWebhookRequest(data=WebhookUpdateRequest(filters=filters))
        ).data
    _show(out, webhook, args.json)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with opened_api(args) as api:
        api.delete_webhook(args.gid)
    if args.json:
        print_json(out, {"deleted": args.gid})
    else:
        out.write(f"deleted webhook {args.gid}\n")
    return EXIT_OK


HEALTH_HELP = """\
Judge webhooks, one state each: ok; failing (deliveries fail, or Asana reports it inactive;
Asana deletes a webhook after 24 hours of failures, and the line says when); silent (nothing
heard for longer than the 8-hour heartbeat plus a margin); missing (declared in FILE, but
Asana has none); drifted (its filters differ from FILE's). With FILE, the declared webhooks
are judged (the same TOML file as `ensure`); with --workspace, every webhook Asana has
there. --secrets names the receiver's secret store: its record of the last heartbeat and
delivery per target is the better witness of silence than Asana's last success."""

HEALTH_EXIT = """\
exit status:
  0  every webhook is ok
  1  Asana, the network or the secret store failed
  2  a bad FILE or option
  3  some webhook needs attention (failing, silent, missing or drifted)"""


def cmd_health(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._health import webhook_health

    if (args.file is None) == (args.workspace is None):
        raise UsageError("health needs FILE (declared webhooks) or --workspace GID, not both")
    if args.resource is not None and args.workspace is None:
        raise UsageError("--resource goes with --workspace (FILE names its resources already)")
    subject: Any = args.workspace
    if args.file is not None:
        from asana_webhooks._declared import DeclarationError, load_declared

        try:
            subject = load_declared(args.file)
        except DeclarationError as exc:
            raise UsageError(f"{args.file}: {exc}") from None
    store = open_secret_store(args.secrets) if args.secrets else None
    with opened_api(args) as api:
        results = webhook_health(api, store, subject)
    if args.resource is not None:
        results = [health for health in results if health.resource == args.resource]
    unhealthy = [health for health in results if health.needs_attention]
    # A cron job or a monitoring check alerts on the status alone.
    status = EXIT_ATTENTION if unhealthy else EXIT_OK
    shown = results if args.all else unhealthy
    as_json = _json_listing(args, out)
    if as_json is not None:
        as_json.write([_health_json(health) for health in shown])
        as_json.close()
        return status
    if shown:
        rows = [
            (
                health.gid or "-",
                health.state,
                health.resource,
                _heard_cell(health),
                health.target,
            )
            for health in shown
        ]
        print_table(out, ("GID", "STATE", "RESOURCE", "LAST HEARD", "TARGET"), rows)
    if unhealthy:
        out.write("\n")
    for health in unhealthy:
        out.write(f"{health.gid or health.resource} ({health.state}): {health.detail}\n")
    total = len(results)
    plural = "" if total == 1 else "s"
    if unhealthy:
        out.write(f"{len(unhealthy)} of {total} webhook{plural} need attention\n")
    else:
        out.write(f"all {total} webhook{plural} are ok\n")
    return status


def _heard_cell(health: Any) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    webhook = health.webhook
    heard = health.last_heard or (webhook.last_success_at if webhook is not None else None)
    return "-" if heard is None else relative(heard - now)


def _health_json(health: Any) -> dict[str, Any]:
    data = webhook_json(health.webhook, HEALTH_FIELDS) if health.webhook is not None else {}
    data.update(
        gid=health.gid,
        state=health.state,
        healthy=not health.needs_attention,
        detail=health.detail,
        resource=health.resource,
        target=health.target,
        deletion_at=None if health.deletion_at is None else health.deletion_at.isoformat(),
        last_heard=None if health.last_heard is None else health.last_heard.isoformat(),
    )
    return data


#: What the JSON of a webhook that exists always carries (null when Asana gave none).
HEALTH_FIELDS = (
    "active",
    "created_at",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
)


# --- registration ------------------------------------------------------------------------------


JSON_LINES_HELP = "one compact JSON object per line, written as each page arrives"


def register(commands: Commands) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    options = api_options()

    def api_command(
        name: str, help_text: str, description: str, epilog: str = ENVIRONMENT_HELP
    ) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=para(description),
            parents=[options],
            epilog=epilog,
            formatter_class=formatter,
        )

    listing = api_command(
        "list", "list the webhooks in a workspace", "List every webhook, following pages."
    )
    listing.add_argument("--workspace", required=True, type=gid, metavar="GID")
    listing.add_argument("--resource", type=gid, metavar="GID", help="only webhooks on this")
    listing.add_argument(
        "--page-size", type=page_size, default=100, metavar="N", help="1-100 (default 100)"
    )
    listing.add_argument("--json-lines", action="store_true", help=JSON_LINES_HELP)
    listing.set_defaults(run=cmd_list)

    get = api_command("get", "show one webhook", "Show one webhook's full record.")
    get.add_argument("gid", type=gid, metavar="GID", help="the webhook's gid")
    get.set_defaults(run=cmd_get)

    create = api_command(
        "create",
        "create a webhook (Asana calls the target with the handshake meanwhile)",
        "Create a webhook on RESOURCE delivering to TARGET. Asana sends the handshake to "
        "TARGET while this waits, so the receiver must already be running. With --secrets, "
        "the receiver is `asana-webhooks serve --secrets` on the same file (or any receiver "
        "over that SQLite store): the target is announced there, and the handshake's secret "
        "is checked against Asana's answer (the webhook is deleted again on a mismatch).",
        FILTER_HELP + "\n" + ENVIRONMENT_HELP,
    )
    create.add_argument("--resource", required=True, type=gid, metavar="GID")
    create.add_argument("--target", required=True, metavar="URL", help="where Asana delivers")
    create.add_argument(
        "--filter", action="append", default=[], metavar="SPEC", help="see 'filters' below"
    )
    create.add_argument(
        "--secrets", metavar="PATH", help="SQLite secret store shared with the receiver"
    )
    create.set_defaults(run=cmd_create)

    update = api_command(
        "update",
        "replace a webhook's filters",
        "Replace a webhook's filters: the ones given become the whole list.",
        FILTER_HELP + "\n" + ENVIRONMENT_HELP,
    )
    update.add_argument("gid", type=gid, metavar="GID")
    update.add_argument("--filter", action="append", default=[], metavar="SPEC")
    update.add_argument("--no-filters", action="store_true", help="remove every filter")
    update.set_defaults(run=cmd_update)

    delete = api_command("delete", "delete a webhook", "Delete a webhook for good.")
    delete.add_argument("gid", type=gid, metavar="GID")
    delete.set_defaults(run=cmd_delete)

    health = api_command(
        "health",
        "judge webhooks: ok, failing, silent, missing or drifted (exit 3: needs attention)",
        HEALTH_HELP,
        HEALTH_EXIT + "\n\n" + ENVIRONMENT_HELP,
    )
    health.add_argument(
        "file", nargs="?", metavar="FILE", help="the declared webhooks (TOML), as for ensure"
    )
    health.add_argument(
        "--workspace", type=gid, metavar="GID", help="judge every webhook of this workspace"
    )
    health.add_argument("--resource", type=gid, metavar="GID", help="only webhooks on this")
    health.add_argument(
        "--secrets", metavar="STORE", help="the receiver's secret store (its record of contact)"
    )
    health.add_argument("--all", action="store_true", help="show healthy webhooks too")
    health.add_argument("--json-lines", action="store_true", help="one JSON object per line")
    health.set_defaults(run=cmd_health)
