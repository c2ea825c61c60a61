"""The ``asana-webhooks`` command: manage webhooks, receive them, or try it all on a stand-in.

Exit status: 0 on success, 1 when Asana (or the network) refused, 2 for a usage error or a
missing token, 130 when interrupted. Errors are one line on stderr, never a traceback.
Tokens and webhook secrets are never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, Callable, NoReturn, Optional, TextIO

import attrs

from asana_webhooks._version import __version__

PROG = "asana-webhooks"
TOKEN_VARIABLE = "ASANA_ACCESS_TOKEN"  # noqa: S105  (a variable name)
HOST_VARIABLE = "ASANA_HOST"
DEFAULT_HOST = "https://app.asana.com/api/1.0"
ACTIONS = ("added", "changed", "removed", "deleted", "undeleted")

#: Heartbeats come every 8 hours; a webhook silent for longer than this is worth a look.
STALE_AFTER = datetime.timedelta(hours=9)

#: Every field ``health`` needs; listings are compact unless asked for more.
HEALTH_FIELDS = (
    "active",
    "resource",
    "resource.name",
    "resource.resource_type",
    "target",
    "created_at",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
)

FILTER_HELP = """\
filters (--filter, repeatable; an event passing any filter is delivered):
  TYPE[/SUBTYPE][:ACTION[:FIELD,FIELD...]]    "*" or an empty part means any
    --filter task:changed:name,due_on   a task's name or due date changed
    --filter task:added                 a task was added (created, or added to a project)
    --filter task/milestone:changed     a milestone changed
    --filter story:added                a comment or other story was added
    --filter :deleted                   anything deleted
  ACTION is one of added, changed, removed, deleted, undeleted; FIELDs need "changed".
  Workspace, team and portfolio webhooks must have filters and cannot name fields.
"""

ENVIRONMENT_HELP = f"""\
environment:
  {TOKEN_VARIABLE}  a personal access token (required by list, get, create, update,
                      delete and health; never printed)
  {HOST_VARIABLE}          the API base URL (default {DEFAULT_HOST}); --host overrides it
"""


class UsageError(Exception):
    """The command line cannot be carried out as given (exit status 2)."""


# --- filters -------------------------------------------------------------------------------


def parse_filter(text: str) -> Any:
    """``task:changed:name,due_on`` -> ``WebhookFilter``; raises ``UsageError`` when malformed."""
    from asana_webhooks._models import WebhookFilter

    parts = text.strip().split(":")
    if len(parts) > 3 or not text.strip():
        raise UsageError(f"--filter {text!r}: expected TYPE[/SUBTYPE][:ACTION[:FIELD,...]]")
    parts += [""] * (3 - len(parts))
    kind, action, fields_text = (part.strip() for part in parts)
    resource_type, _, subtype = kind.partition("/")

    def any_or(value: str) -> Optional[str]:
        return None if value in ("", "*") else value

    fields = [field.strip() for field in fields_text.split(",") if field.strip()]
    chosen_action = any_or(action)
    if chosen_action is not None and chosen_action not in ACTIONS:
        raise UsageError(
            f"--filter {text!r}: unknown action {action!r} (one of {', '.join(ACTIONS)})"
        )
    if fields and chosen_action != "changed":
        raise UsageError(f"--filter {text!r}: fields can only be named with the action 'changed'")
    result = WebhookFilter(
        resource_type=any_or(resource_type),
        resource_subtype=any_or(subtype),
        action=chosen_action,
        fields=fields or None,
    )
    if result == WebhookFilter():
        raise UsageError(f"--filter {text!r}: a filter must name a type or an action")
    return result


def format_filter(item: Any) -> str:
    """The ``--filter`` spelling of a ``WebhookFilter``."""
    kind = item.resource_type or "*"
    if item.resource_subtype:
        kind += f"/{item.resource_subtype}"
    text = f"{kind}:{item.action or '*'}"
    if item.fields:
        text += ":" + ",".join(item.fields)
    return text


# --- output --------------------------------------------------------------------------------


def _time(value: Optional[datetime.datetime], now: Optional[datetime.datetime] = None) -> str:
    if value is None:
        return "-"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    shown = value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{shown} ({_relative(value - now)})"


def _relative(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    future, seconds = seconds > 0, abs(seconds)
    if seconds < 60:
        amount = f"{seconds}s"
    elif seconds < 3600:
        amount = f"{seconds // 60}m"
    elif seconds < 86400:
        amount = f"{seconds // 3600}h {seconds % 3600 // 60}m"
    else:
        amount = f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    return f"in {amount}" if future else f"{amount} ago"


def _resource(webhook: Any) -> str:
    resource = webhook.resource
    if resource is None:
        return "-"
    details = " ".join(
        part
        for part in (resource.resource_type, f'"{resource.name}"' if resource.name else "")
        if part
    )
    return f"{resource.gid} ({details})" if details else resource.gid


def _flag(value: Optional[bool]) -> str:
    return "-" if value is None else ("yes" if value else "no")


def print_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(name) for name in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join(cells).rstrip() + "\n")


def webhook_json(webhook: Any, fields: Sequence[str] = ()) -> dict[str, Any]:
    """A webhook as JSON, with each of ``fields`` present (null when Asana gave none)."""
    from asana_webhooks._converter import unstructure

    data: dict[str, Any] = unstructure(webhook)
    for name in fields:
        data.setdefault(name.split(".")[0], None)
    return data


def _all_fields() -> list[str]:
    from asana_webhooks._models import WebhookResponse

    return [field.name for field in attrs.fields(WebhookResponse)]


def print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_webhook(out: TextIO, webhook: Any) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    filters = "  ".join(format_filter(item) for item in webhook.filters or []) or "(none)"
    rows = [
        ("gid", webhook.gid),
        ("active", _flag(webhook.active)),
        ("resource", _resource(webhook)),
        ("target", webhook.target or "-"),
        ("filters", filters),
        ("created_at", _time(webhook.created_at, now)),
        ("last_success_at", _time(webhook.last_success_at, now)),
        ("last_failure_at", _time(webhook.last_failure_at, now)),
        ("last_failure_content", _one_line(webhook.last_failure_content)),
        ("delivery_retry_count", _count(webhook.delivery_retry_count)),
        ("next_attempt_after", _time(webhook.next_attempt_after, now)),
        ("failure_deletion_timestamp", _time(webhook.failure_deletion_timestamp, now)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.write(f"{name.ljust(width)}  {value}\n")


def _one_line(text: Optional[str], limit: int = 100) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _count(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


# --- health --------------------------------------------------------------------------------


@attrs.frozen
class Problem:
    """One thing wrong with a webhook: a short ``state`` word and a sentence of ``detail``."""

    state: str
    detail: str


def health_problems(webhook: Any, now: datetime.datetime) -> list[Problem]:
    """What is wrong with a webhook's deliveries; empty when nothing is."""
    problems: list[Problem] = []
    if webhook.active is False:
        problems.append(Problem("inactive", "inactive: Asana is not delivering to it"))
    failure, success = webhook.last_failure_at, webhook.last_success_at
    retries = webhook.delivery_retry_count or 0
    failing = retries > 0 or (failure is not None and (success is None or failure >= success))
    if failing:
        text = "failing deliveries"
        if failure is not None:
            text += f": last failure {_relative(failure - now)}"
        if retries:
            text += f", {retries} retr{'y' if retries == 1 else 'ies'} so far"
        if webhook.next_attempt_after is not None:
            text += f", next attempt {_relative(webhook.next_attempt_after - now)}"
        if webhook.last_failure_content:
            text += f"; the target said: {_one_line(webhook.last_failure_content, 80)}"
        problems.append(Problem("failing", text))
    deletion = webhook.failure_deletion_timestamp
    if deletion is not None:
        if deletion <= now:
            detail = f"due for deletion since {_time(deletion, now)}"
        else:
            detail = f"Asana deletes it {_relative(deletion - now)} unless a delivery succeeds"
        problems.append(Problem("deletion due", detail))
    if not failing and webhook.active is not False:
        created = webhook.created_at
        if success is not None and now - success > STALE_AFTER:
            silent = _relative(now - success)[3:]
            detail = f"no successful delivery for {silent} (heartbeats come every 8 hours)"
            problems.append(Problem("silent", detail))
        elif success is None and created is not None and now - created > STALE_AFTER:
            problems.append(Problem("silent", "never delivered successfully"))
    return problems


# --- the API commands ----------------------------------------------------------------------


def _api(args: argparse.Namespace) -> Any:
    from asana_webhooks._client import ApiClient
    from asana_webhooks._configuration import Configuration
    from asana_webhooks._retry import RetryPolicy
    from asana_webhooks._transport import Timeout
    from asana_webhooks._webhooks_api import WebhooksApi

    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise UsageError(
            f"no access token: set {TOKEN_VARIABLE} to an Asana personal access token "
            "(https://app.asana.com/0/my-apps)"
        )
    host = args.host or os.environ.get(HOST_VARIABLE) or DEFAULT_HOST
    try:
        configuration = Configuration(
            host=host,
            access_token=token,
            timeout=Timeout(connect=10.0, read=args.timeout),
            # A person is waiting: give up on an unreachable host sooner than a server would.
            retry=RetryPolicy(max_attempts=4, max_time=20.0),
        )
    except ValueError as exc:
        raise UsageError(f"--host: {exc}") from None
    return WebhooksApi(ApiClient(configuration))


def _close(api: Any) -> None:
    api.api_client.close()


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    api = _api(args)
    try:
        webhooks = list(
            api.iter_webhooks(args.workspace, resource=args.resource, page_size=args.page_size)
        )
    finally:
        _close(api)
    if args.json:
        print_json(out, [webhook_json(webhook) for webhook in webhooks])
        return 0
    rows = [(w.gid, _flag(w.active), _resource(w), w.target or "-") for w in webhooks]
    print_table(out, ("GID", "ACTIVE", "RESOURCE", "TARGET"), rows)
    out.write(f"{len(webhooks)} webhook{'' if len(webhooks) == 1 else 's'}\n")
    return 0


def cmd_get(args: argparse.Namespace, out: TextIO) -> int:
    api = _api(args)
    try:
        webhook = api.get_webhook(args.gid).data
    finally:
        _close(api)
    _show(out, webhook, args.json)
    return 0


def _show(out: TextIO, webhook: Any, as_json: bool) -> None:
    if as_json:
        print_json(out, webhook_json(webhook, _all_fields()))
    else:
        print_webhook(out, webhook)


def cmd_create(args: argparse.Namespace, out: TextIO) -> int:
    from asana_webhooks._establish import establish_webhook
    from asana_webhooks._models import CreateWebhookRequest, WebhookRequest
    from asana_webhooks._secrets import SQLiteSecretStore

    filters = [parse_filter(text) for text in args.filter] or None
    api = _api(args)
    try:
        if args.secrets:
            webhook = establish_webhook(
                api, SQLiteSecretStore(args.secrets), args.resource, args.target, filters
            )
            note = f"secret: checked against the handshake, stored in {args.secrets}"
        else:
            created = api.create_webhook(
                CreateWebhookRequest(
                    data=WebhookRequest(resource=args.resource, target=args.target, filters=filters)
                )
            )
            webhook = created.data
            length = len(created.x_hook_secret or "")
            note = (
                f"secret: Asana sent one ({length} chars), not shown; your receiver got it in "
                "the handshake (use --secrets PATH with `serve --secrets PATH` to check it)"
            )
    finally:
        _close(api)
    _show(out, webhook, args.json)
    if not args.json:
        out.write(note + "\n")
    return 0


def cmd_update(args: argparse.Namespace, out: TextIO) -> int:
    from asana_webhooks._models import UpdateWebhookRequest, WebhookUpdateRequest

    if not args.filter and not args.no_filters:
        raise UsageError(
            "update needs the new filters (--filter ..., repeatable; they replace the old "
            "ones), or --no-filters to remove them all"
        )
    if args.filter and args.no_filters:
        raise UsageError("--filter and --no-filters cannot be used together")
    filters = [parse_filter(text) for text in args.filter]
    api = _api(args)
    try:
        webhook = api.update_webhook(
            args.gid, UpdateWebhookRequest(data=WebhookUpdateRequest(filters=filters))
        ).data
    finally:
        _close(api)
    _show(out, webhook, args.json)
    return 0


def cmd_delete(args: argparse.Namespace, out: TextIO) -> int:
    api = _api(args)
    try:
        api.delete_webhook(args.gid)
    finally:
        _close(api)
    if args.json:
        print_json(out, {"deleted": args.gid})
    else:
        out.write(f"deleted webhook {args.gid}\n")
    return 0


def cmd_health(args: argparse.Namespace, out: TextIO) -> int:
    api = _api(args)
    try:
        webhooks = list(
            api.iter_webhooks(
                args.workspace,
                resource=args.resource,
                page_size=args.page_size,
                opt_fields=list(HEALTH_FIELDS),
            )
        )
    finally:
        _close(api)
    now = datetime.datetime.now(datetime.timezone.utc)
    checked = [(webhook, health_problems(webhook, now)) for webhook in webhooks]
    unhealthy = [(webhook, problems) for webhook, problems in checked if problems]
    shown = checked if args.all else unhealthy
    if args.json:
        print_json(
            out,
            [
                {
                    **webhook_json(webhook, HEALTH_FIELDS),
                    "healthy": not problems,
                    "states": [problem.state for problem in problems],
                    "problems": [problem.detail for problem in problems],
                }
                for webhook, problems in shown
            ],
        )
        return 0

    def when(value: Optional[datetime.datetime]) -> str:
        return "-" if value is None else _relative(value - now)

    rows = [
        (
            webhook.gid,
            ", ".join(problem.state for problem in problems) or "ok",
            when(webhook.last_success_at),
            when(webhook.last_failure_at),
            _count(webhook.delivery_retry_count),
            when(webhook.next_attempt_after),
            when(webhook.failure_deletion_timestamp),
            webhook.target or "-",
        )
        for webhook, problems in shown
    ]
    if rows:
        header = ("GID", "STATE", "LAST SUCCESS", "LAST FAILURE", "RETRIES", "NEXT ATTEMPT")
        print_table(out, (*header, "DELETION", "TARGET"), rows)
        if unhealthy:
            out.write("\n")
        for webhook, problems in unhealthy:
            for problem in problems:
                out.write(f"{webhook.gid}: {problem.detail}\n")
    total = len(webhooks)
    if unhealthy:
        out.write(f"{len(unhealthy)} of {total} webhooks need attention\n")
    else:
        out.write(f"all {total} webhooks are delivering\n")
    return 0


# --- serve and fake ------------------------------------------------------------------------


@attrs.define
class _StopFlag:
    event: threading.Event = attrs.field(factory=threading.Event)
    signal_name: Optional[str] = None


@contextlib.contextmanager
def _stop_on_signals(flag: _StopFlag) -> Iterator[None]:
    """Install SIGINT/SIGTERM handlers (main thread only) for the duration of the block."""
    previous: list[tuple[signal.Signals, Any]] = []

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        flag.signal_name = signal.Signals(signum).name
        flag.event.set()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous.append((signum, signal.signal(signum, handler)))
    try:
        yield
    finally:
        for signum, old in previous:
            signal.signal(signum, old)


def _event_json(event: Any) -> Any:
    from asana_webhooks._converter import format_datetime

    def serialize(_: Any, __: Any, value: Any) -> Any:
        return format_datetime(value) if isinstance(value, datetime.datetime) else value

    return attrs.asdict(event, value_serializer=serialize)


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._receiver import WebhookReceiver
    from asana_webhooks._secrets import SQLiteSecretStore
    from asana_webhooks._wsgi import ReceiverServer

    write_lock = threading.Lock()

    def on_events(events: Sequence[Any], target: str) -> None:
        lines = "".join(
            json.dumps({"target": target, "event": _event_json(event)}, ensure_ascii=False) + "\n"
            for event in events
        )
        with write_lock:
            out.write(lines)
            out.flush()

    def note(text: str) -> None:
        with write_lock:
            err.write(f"{PROG} serve: {text}\n")
            err.flush()

    receiver = WebhookReceiver(
        SQLiteSecretStore(args.secrets),
        on_events,
        accept_unannounced_handshakes=args.accept_unannounced_handshakes,
        on_handshake=lambda target: note(f"handshake accepted for {target}; secret stored"),
    )
    handler = _LineHandler(note)
    library_logger = logging.getLogger("asana_webhooks")
    library_logger.addHandler(handler)
    if library_logger.level == logging.NOTSET or library_logger.level > logging.WARNING:
        library_logger.setLevel(logging.WARNING)
    flag = _StopFlag()
    try:
        server = ReceiverServer.for_receiver(receiver, host=args.bind, port=args.port).start()
    except OSError as exc:
        library_logger.removeHandler(handler)
        raise UsageError(
            f"cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}"
        ) from None
    try:
        with _stop_on_signals(flag):
            note(
                f"listening on {server.url} (every path is a webhook target); "
                f"secrets in {args.secrets}; verified events go to stdout as JSON lines"
            )
            if args.accept_unannounced_handshakes:
                note("accepting the first handshake of any target that has no secret yet")
            while not flag.event.wait(0.5):
                pass
    finally:
        server.stop()
        library_logger.removeHandler(handler)
    note(f"stopped ({flag.signal_name or 'done'})")
    return 0


class _LineHandler(logging.Handler):
    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        self._write(record.getMessage())


def cmd_fake(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks.testing import FakeAsana

    fake = FakeAsana(access_token=args.token, port=args.port)
    try:
        fake.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    flag = _StopFlag()
    try:
        with _stop_on_signals(flag):
            token_note = (
                "the one given with --token"
                if args.token
                else f"{fake.access_token}  (random, for this stand-in only)"
            )
            out.write(
                f"FakeAsana, the Asana stand-in, is serving at {fake.url}\n"
                f"  workspace: {fake.workspace_gid}\n"
                f"  token:     {token_note}\n"
                "Point the command line (or any Asana client) at it:\n"
                f"  export {HOST_VARIABLE}={fake.url}\n"
                f"  export {TOKEN_VARIABLE}=<the token>\n"
                f"  {PROG} list --workspace {fake.workspace_gid}\n"
                "Webhook targets must be on 127.0.0.1. Press Ctrl-C to stop.\n"
            )
            out.flush()
            while not flag.event.wait(0.5):
                pass
    finally:
        fake.stop()
    err.write(f"{PROG} fake: stopped ({flag.signal_name or 'done'})\n")
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import importlib.util

    from asana_webhooks import _demo

    if args.server == "flask" and importlib.util.find_spec("flask") is None:
        raise UsageError(
            "Flask is not installed: pip install 'asana-webhooks[flask]', or use --server wsgiref"
        )
    return _demo.main(out, server=args.server, error=lambda text: _error(err, text))


# --- the parser ----------------------------------------------------------------------------


def _para(text: str) -> str:
    return textwrap.fill(text, 79)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, then where to look: argparse's usage block is long for subcommands.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _gid(text: str) -> str:
    value = text.strip()
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a gid (digits only): {text!r}")
    return value


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be seconds between 0 and 3600, not {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description="Manage Asana webhooks, receive them, or try everything on a local stand-in.",
        epilog=ENVIRONMENT_HELP
        + "\nexit status: 0 ok, 1 Asana or the network refused, 2 usage error, 130 interrupted",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    api_options = _Parser(add_help=False)
    api_options.add_argument(
        "--host",
        metavar="URL",
        help=f"API base URL (default: ${HOST_VARIABLE} or {DEFAULT_HOST})",
    )
    api_options.add_argument("--json", action="store_true", help="print JSON instead of a table")
    api_options.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="say what is happening on stderr (retries; -vv: every request)",
    )
    api_options.add_argument(
        "--timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for each answer (default 60; a create waits for the handshake)",
    )

    def api_command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=_para(description),
            parents=[api_options],
            epilog=ENVIRONMENT_HELP,
            formatter_class=formatter,
        )

    demo = commands.add_parser(
        "demo",
        help="the whole life of a webhook on a local Asana stand-in (no account needed)",
        description=_para(
            "Start the Asana stand-in and a real receiver on 127.0.0.1, establish a webhook "
            "with its handshake, receive signed events, refuse a tampered delivery, list "
            "across pages, update the filters, delete; printing what goes over the wire."
        ),
    )
    demo.add_argument(
        "--server",
        choices=("auto", "flask", "wsgiref"),
        default="auto",
        help="what serves the receiver (default: Flask when installed, else wsgiref)",
    )

    listing = api_command(
        "list", "list the webhooks in a workspace", "List every webhook, following pages."
    )
    listing.add_argument("--workspace", required=True, type=_gid, metavar="GID")
    listing.add_argument("--resource", type=_gid, metavar="GID", help="only webhooks on this")
    listing.add_argument(
        "--page-size", type=_page_size, default=100, metavar="N", help="1-100 (default 100)"
    )

    get = api_command("get", "show one webhook", "Show one webhook's full record.")
    get.add_argument("gid", type=_gid, metavar="GID", help="the webhook's gid")

    create = commands.add_parser(
        "create",
        help="create a webhook (Asana calls the target with the handshake meanwhile)",
        description=_para(
            "Create a webhook on RESOURCE delivering to TARGET. Asana sends the handshake to "
            "TARGET while this waits, so the receiver must already be running. With --secrets, "
            "the receiver is `asana-webhooks serve --secrets` on the same file (or any receiver "
            "over that SQLite store): the target is announced there, and the handshake's secret "
            "is checked against Asana's answer (the webhook is deleted again on a mismatch)."
        ),
        parents=[api_options],
        epilog=FILTER_HELP + "\n" + ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    create.add_argument("--resource", required=True, type=_gid, metavar="GID")
    create.add_argument("--target", required=True, metavar="URL", help="where Asana delivers")
    create.add_argument(
        "--filter", action="append", default=[], metavar="SPEC", help="see 'filters' below"
    )
    create.add_argument(
        "--secrets", metavar="PATH", help="SQLite secret store shared with the receiver"
    )

    update = commands.add_parser(
        "update",
        help="replace a webhook's filters",
        description="Replace a webhook's filters: the ones given become the whole list.",
        parents=[api_options],
        epilog=FILTER_HELP + "\n" + ENVIRONMENT_HELP,
        formatter_class=formatter,
    )
    update.add_argument("gid", type=_gid, metavar="GID")
    update.add_argument("--filter", action="append", default=[], metavar="SPEC")
    update.add_argument("--no-filters", action="store_true", help="remove every filter")

    delete = api_command("delete", "delete a webhook", "Delete a webhook for good.")
    delete.add_argument("gid", type=_gid, metavar="GID")

    health = api_command(
        "health",
        "webhooks that are failing deliveries or due for deletion",
        (
            "Check every webhook in a workspace: inactive, failing deliveries (last failure "
            "after the last success, retries pending, next attempt), due for deletion (Asana "
            "deletes a webhook after 24 hours without a successful delivery), or silent for "
            "longer than the 8-hour heartbeat."
        ),
    )
    health.add_argument("--workspace", required=True, type=_gid, metavar="GID")
    health.add_argument("--resource", type=_gid, metavar="GID")
    health.add_argument("--all", action="store_true", help="show healthy webhooks too")
    health.add_argument("--page-size", type=_page_size, default=100, metavar="N")

    serve = commands.add_parser(
        "serve",
        help="a standalone receiver printing verified events as JSON lines",
        description=_para(
            "Receive webhooks without a web framework: every path is a target, handshakes "
            "store their secret in the SQLite file, deliveries are verified and each event is "
            'printed to stdout as one JSON line {"target": ..., "event": ...}. Status goes to '
            "stderr. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    serve.add_argument("--port", required=True, type=_port, help="0 picks a free port")
    serve.add_argument("--secrets", required=True, metavar="PATH", help="SQLite secret store")
    serve.add_argument(
        "--host",
        dest="bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to bind (default 127.0.0.1; Asana reaches you through a tunnel or proxy)",
    )
    serve.add_argument(
        "--accept-unannounced-handshakes",
        action="store_true",
        help=(
            "accept the first handshake of any target without a secret (needed when webhooks "
            "are created without `create --secrets` on the same file)"
        ),
    )

    fake = commands.add_parser(
        "fake",
        help="run the Asana stand-in on its own",
        description=_para(
            "Serve FakeAsana, the Asana webhooks API stand-in, on 127.0.0.1 until interrupted, "
            "so other tools can be pointed at it."
        ),
    )
    fake.add_argument("--port", type=_port, default=0, help="default: a free port")
    fake.add_argument(
        "--token", metavar="TOKEN", help="the token it accepts (default: a random one, printed)"
    )
    return parser


# --- main ----------------------------------------------------------------------------------


_installed_handler: Optional[logging.Handler] = None


def _log_to(err: TextIO, verbosity: int) -> None:
    """Library messages (retries, requests) on stderr with -v; none at all without."""
    global _installed_handler
    library_logger = logging.getLogger("asana_webhooks")
    if _installed_handler is not None:  # main() called again in one process
        library_logger.removeHandler(_installed_handler)
    handler: logging.Handler
    if verbosity <= 0:
        handler = logging.NullHandler()  # keeps Python's last-resort handler quiet too
    else:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        library_logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    library_logger.addHandler(handler)
    _installed_handler = handler


def _error(err: TextIO, text: str) -> None:
    err.write(f"{PROG}: error: {' '.join(text.split())}\n")
    err.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status."""
    out, err = sys.stdout, sys.stderr
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "list": lambda a: cmd_list(a, out),
        "get": lambda a: cmd_get(a, out),
        "create": lambda a: cmd_create(a, out),
        "update": lambda a: cmd_update(a, out),
        "delete": lambda a: cmd_delete(a, out),
        "health": lambda a: cmd_health(a, out),
        "serve": lambda a: cmd_serve(a, out, err),
        "fake": lambda a: cmd_fake(a, out, err),
        "demo": lambda a: cmd_demo(a, out, err),
    }
    from asana_webhooks._errors import (
        ApiConnectionError,
        AsanaError,
        InvalidRequestError,
        UnauthorizedError,
    )

    if args.command in ("list", "get", "create", "update", "delete", "health"):
        _log_to(err, args.verbose)
    try:
        return commands[args.command](args)
    except UsageError as exc:
        _error(err, str(exc))
        return 2
    except InvalidRequestError as exc:
        _error(err, str(exc))
        return 2
    except UnauthorizedError as exc:
        _error(err, f"{exc} (is {TOKEN_VARIABLE} a valid token for this host?)")
        return 1
    except ApiConnectionError as exc:
        host = getattr(args, "host", None) or os.environ.get(HOST_VARIABLE) or DEFAULT_HOST
        _error(err, f"{exc} (host {host})")
        return 1
    except AsanaError as exc:
        _error(err, str(exc))
        return 1
    except KeyboardInterrupt:
        _error(err, "interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python from complaining.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
