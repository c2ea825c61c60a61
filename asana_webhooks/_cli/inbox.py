"""``worker`` and ``inbox``: run the application's handler on an inbox, and look inside it.

``worker --inbox URL --handler MODULE:FUNCTION`` hands stored events to the handler until
SIGTERM or Ctrl-C (it finishes the batch in hand, gives back what it has not started), or
with ``--drain`` until nothing is pending (exit 1 if it parked events). ``inbox --inbox URL
stats|failed|replay ID...|purge`` shows the counters, lists parked events with their errors,
replays or drops them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, TextIO

from asana_webhooks._cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    CommandFailed,
    StopFlag,
    UsageError,
    describe_error,
    para,
    seconds,
    stop_on_signals,
)

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands
    from asana_webhooks._inbox import Inbox

_URL_HELP = "sqlite:///ABSOLUTE/PATH.sqlite3, a file path (SQLite), or redis://HOST:PORT/DB"


class InboxUnreachable(CommandFailed):
    """The inbox's server (or file) could not be used: exit status 1."""


def open_checked(url: str) -> Inbox:
    """``open_inbox(url)``, then one call to prove it answers; errors as one-line exits."""
    from asana_webhooks._urls import InvalidURLError, open_inbox, redacted

    try:
        inbox = open_inbox(url)
    except InvalidURLError as exc:
        raise UsageError(str(exc)) from None
    try:
        inbox.stats()
    except Exception as exc:
        raise InboxUnreachable(
            f"cannot use the inbox at {redacted(url)}: {describe_error(exc)}"
        ) from None
    return inbox


def load_handler(spec: str) -> Callable[..., Any]:
    """``MODULE:FUNCTION`` -> the function, imported as ``python -m`` would (cwd first)."""
    from asana_webhooks._worker import resolve_handler

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return resolve_handler(spec)
    except ValueError as exc:
        raise UsageError(f"--handler: {exc}") from None


def cmd_worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._worker import Worker

    handler = load_handler(args.handler)
    inbox = open_checked(args.inbox)
    worker = Worker(
        inbox,
        handler,
        lease=args.lease,
        concurrency=args.concurrency,
        max_attempts=args.max_attempts,
        backoff=args.backoff,
    )
    log_handler = logging.StreamHandler(err)
    log_handler.setFormatter(logging.Formatter(f"{PROG} worker: %(message)s"))
    library_logger = logging.getLogger("asana_webhooks")
    library_logger.addHandler(log_handler)
    if library_logger.level == logging.NOTSET or library_logger.level > logging.INFO:
        library_logger.setLevel(logging.INFO)
    flag = StopFlag()
    started = time.monotonic()
    try:
        with stop_on_signals(flag):
            if args.drain:
                result = worker.drain(flag.event)
            else:
                err.write(
                    f"{PROG} worker: {worker.name} handling events from the inbox with "
                    f"{args.handler} (lease {args.lease:g} s, concurrency {args.concurrency}); "
                    "stop with Ctrl-C or SIGTERM\n"
                )
                err.flush()
                result = worker.run(flag.event)
    except Exception as exc:
        # The inbox failed under a drain: one line, not a traceback.
        raise InboxUnreachable(f"the inbox failed: {describe_error(exc)}") from None
    finally:
        library_logger.removeHandler(log_handler)
        inbox.close()
    summary = (
        f"{result.handled} handled, {result.retried} retried, {result.parked} parked "
        f"in {time.monotonic() - started:.1f} s"
    )
    if args.drain:
        out.write(summary + "\n")
        out.flush()
    else:
        err.write(f"{PROG} worker: stopped ({flag.signal_name or 'done'}): {summary}\n")
    if args.drain:
        return EXIT_FAILED if result.parked else EXIT_OK
    return flag.exit_status


def cmd_inbox(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    inbox = open_checked(args.inbox)
    try:
        if args.action == "stats":
            _print_stats(out, inbox, as_json=args.json)
            return EXIT_OK
        if args.action == "failed":
            _print_failed(out, inbox, as_json=args.json, limit=args.limit)
            return EXIT_OK
        if args.action == "purge":
            out.write(f"purged {inbox.purge()} parked events\n")
            return EXIT_OK
        if not args.ids:
            raise UsageError("replay needs the ids of parked events (see `inbox failed`)")
        found = inbox.replay(args.ids)
        out.write(f"replayed {found} of {len(args.ids)} events\n")
        if found < len(args.ids):
            err.write(f"{PROG}: error: {len(args.ids) - found} of the ids are not parked events\n")
            return EXIT_FAILED
        return EXIT_OK
    finally:
        inbox.close()


def _print_stats(out: TextIO, inbox: Inbox, *, as_json: bool) -> None:
    import attrs

    stats = attrs.asdict(inbox.stats())
    if as_json:
        out.write(json.dumps(stats, indent=2) + "\n")
        return
    width = max(len(name) for name in stats)
    for name, value in stats.items():
        if name == "oldest_pending_age":
            value = "-" if value is None else f"{value:.1f} s"
        out.write(f"{name.replace('_', ' '):<{width}}  {value}\n")


def _print_failed(out: TextIO, inbox: Inbox, *, as_json: bool, limit: int) -> None:
    events = inbox.failed(limit)
    if as_json:
        import attrs

        out.write(json.dumps([attrs.asdict(event) for event in events], indent=2) + "\n")
        return
    if not events:
        out.write("no parked events\n")
        return
    for event in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.received_at))
        last_line = (event.error or "").strip().splitlines()[-1:] or [""]
        out.write(
            f"{event.id}  {event.target}  received {when} UTC  attempts {event.attempts}  "
            f"{last_line[0][:200]}\n"
        )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, not {text!r}")
    return value


def register(commands: Commands) -> None:
    worker = commands.add_parser(
        "worker",
        help="hand the inbox's events to your handler",
        description=para(
            "Claim stored events under a lease and call HANDLER(events, target) with typed "
            "events, as many at once as --concurrency. A handler that raises is retried "
            "with backoff, then its events are parked (see `inbox failed`). A killed "
            "worker's events go to another worker when its lease runs out: delivery is at "
            "least once, so make the handler idempotent (asana_webhooks.event_key). "
            "Stops cleanly on Ctrl-C or SIGTERM, finishing the batch in hand. Logs one line "
            "per batch on stderr."
        ),
    )
    worker.add_argument("--inbox", required=True, metavar="URL", help=_URL_HELP)
    worker.add_argument(
        "--handler", required=True, metavar="MODULE:FUNCTION", help="e.g. myapp.hooks:on_events"
    )
    worker.add_argument(
        "--concurrency", type=_positive_int, default=1, metavar="N", help="threads (default 1)"
    )
    worker.add_argument(
        "--drain",
        action="store_true",
        help="handle what is pending and exit: 0, or 1 if some events were parked",
    )
    worker.add_argument(
        "--lease",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long a claim lasts unrenewed; a dead worker's events wait this long (30)",
    )
    worker.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=5,
        metavar="N",
        help="calls that may fail before an event is parked (default 5)",
    )
    worker.add_argument(
        "--backoff",
        type=seconds,
        default=1.0,
        metavar="SECONDS",
        help="first retry delay, doubled per attempt up to 5 minutes, jittered (default 1)",
    )
    worker.set_defaults(run=cmd_worker)

    inbox = commands.add_parser(
        "inbox",
        help="look inside an inbox: stats, parked events, replay, purge",
        description=para(
            "stats: the counters (pending, in progress, failed, handled, duplicates, retried, "
            "oldest pending age). failed: parked events with their last error line. replay "
            "ID...: make parked events pending again (exit 1 if an id is not parked). purge: "
            "drop parked events (their keys stay, so a redelivery is still a duplicate)."
        ),
    )
    inbox.add_argument("--inbox", required=True, metavar="URL", help=_URL_HELP)
    inbox.add_argument("--json", action="store_true", help="stats and failed as JSON")
    inbox.add_argument(
        "--limit", type=_positive_int, default=100, metavar="N", help="failed: at most N"
    )
    inbox.add_argument("action", choices=("stats", "failed", "replay", "purge"))
    inbox.add_argument("ids", nargs="*", metavar="ID", help="replay: ids from `inbox failed`")
    inbox.set_defaults(run=cmd_inbox)


def add_inbox_option(serve: argparse.ArgumentParser) -> None:
    """``serve --inbox URL``: store deliveries there instead of printing them."""
    serve.add_argument(
        "--inbox",
        metavar="URL",
        help=(
            f"store verified events in this inbox ({_URL_HELP}) for `worker` to handle, "
            "instead of printing them"
        ),
    )
