"""``asana-webhooks reconcile``: recover, through the Events API, what webhooks never delivered."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING, Any, TextIO

from asana_webhooks._cli._common import (
    ENVIRONMENT_HELP,
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    StopFlag,
    UsageError,
    api_options,
    gid,
    make_api,
    para,
    stop_on_signals,
)

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands
    from asana_webhooks._reconcile import ReconcileResult

EXIT_HELP = (
    "exit status: 0 every resource read (or started), 1 a resource could not be read "
    "(Asana, the network, a rate limit or the inbox failed), 2 usage error, 3 a gap: events "
    "may be missing and the resource should be re-read, 130 interrupted"
)


def interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 6 * 3600:
        raise argparse.ArgumentTypeError(
            f"must be seconds from 1 to 21600 (sync tokens last at most 24 hours), not {text!r}"
        )
    return value


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "reconcile",
        help="recover events webhooks missed, through the Events API, into an inbox",
        description=para(
            "Read each RESOURCE's events through Asana's Events API and store those not "
            "already in the inbox (webhooks deliver at most once), where `asana-webhooks "
            "worker` hands them to the same handler as webhook deliveries. The sync token of "
            "each resource is kept in the inbox. The first pass for a resource only takes a "
            "token: events are read from then on. A token Asana refuses (older than 24 hours, "
            "or expired early) is a gap: events since the last good pass may be missing, and "
            "the resource should be re-read in full."
        ),
        parents=[api_options()],
        epilog=ENVIRONMENT_HELP + "\n" + para(EXIT_HELP),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--inbox",
        required=True,
        metavar="URL",
        help="the inbox the receiver writes to: sqlite:///PATH, a file path, or redis://",
    )
    parser.add_argument(
        "--resource",
        required=True,
        action="append",
        type=gid,
        metavar="GID",
        help="a task, project or goal to watch (repeat for more)",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--interval",
        type=interval,
        default=300.0,
        metavar="SECONDS",
        help="time between two reads of one resource (default 300); runs until SIGTERM",
    )
    when.add_argument(
        "--once",
        action="store_true",
        help="read every resource once, print what was recovered, and exit (for cron)",
    )
    parser.set_defaults(run=cmd_reconcile)


def cmd_reconcile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._reconcile import Reconciler
    from asana_webhooks._urls import InvalidURLError, open_inbox, redacted

    api = make_api(args)
    try:
        inbox = open_inbox(args.inbox)
    except InvalidURLError as exc:
        api.api_client.close()
        raise UsageError(f"--inbox: {exc}") from None
    library_logger = logging.getLogger("asana_webhooks")
    level_before = library_logger.level
    handler = _log_to(err, args.verbose)
    try:
        reconciler = Reconciler(api.api_client, inbox, args.resource, interval=args.interval)
        if args.once:
            results = reconciler.run_once()
            _report(out, list(results.values()), as_json=args.json)
            return _exit_status(list(results.values()))
        flag = StopFlag()
        with stop_on_signals(flag):
            logging.getLogger("asana_webhooks").warning(
                "reconciling %d resources every %gs into %s",
                len(reconciler.resources),
                reconciler.interval,
                redacted(args.inbox),
            )
            reconciler.run(flag.event)
        logging.getLogger("asana_webhooks").warning("stopped (%s)", flag.signal_name or "done")
        return EXIT_OK
    finally:
        library_logger.removeHandler(handler)
        library_logger.setLevel(level_before)
        inbox.close()
        api.api_client.close()


def _log_to(err: TextIO, verbosity: int) -> logging.Handler:
    # Gaps (ERROR) and rate limits (WARNING) always reach stderr; -v adds what was recovered.
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    level = logging.DEBUG if verbosity > 1 else logging.INFO if verbosity else logging.WARNING
    handler.setLevel(level)
    library_logger = logging.getLogger("asana_webhooks")
    if library_logger.level == logging.NOTSET or library_logger.level > level:
        library_logger.setLevel(level)
    library_logger.addHandler(handler)
    return handler


def _exit_status(results: list[ReconcileResult]) -> int:
    if any(result.gap for result in results):
        return EXIT_ATTENTION
    if any(result.error or result.rate_limited for result in results):
        return EXIT_FAILED
    return EXIT_OK


def _report(out: TextIO, results: list[ReconcileResult], *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps([_as_json(result) for result in results], indent=2) + "\n")
        return
    for result in results:
        out.write(f"{result.resource}: {_describe(result)}\n")
    out.flush()


def _describe(result: ReconcileResult) -> str:
    text = f"{result.recovered} recovered, {result.already_known} already known"
    if result.started:
        text += "; first pass: watching from now on"
    if result.gap:
        since = result.gap_since.isoformat() if result.gap_since else "an unknown time"
        text += f"; GAP: events since {since} may be missing, re-read the resource"
    if result.rate_limited:
        text += f"; rate limited, retry in {result.retry_after or 0:.0f}s"
    if result.error:
        text += f"; error: {' '.join(result.error.split())}"
    return text


def _as_json(result: ReconcileResult) -> dict[str, Any]:
    return {
        "resource": result.resource,
        "recovered": result.recovered,
        "already_known": result.already_known,
        "started": result.started,
        "gap": result.gap,
        "gap_since": result.gap_since.isoformat() if result.gap_since else None,
        "rate_limited": result.rate_limited,
        "retry_after": result.retry_after,
        "error": result.error,
    }
