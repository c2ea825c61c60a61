"""``fake``: run FakeAsana, the Asana stand-in, on its own until interrupted; and drive a
running one: ``fake deliver``, ``heartbeat``, ``advance``, ``drop``, ``offline``,
``online``, ``status`` (through its control endpoint, ``/_fake``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Optional, TextIO

from asana_webhooks._cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    HOST_VARIABLE,
    PROG,
    TOKEN_VARIABLE,
    StopFlag,
    UsageError,
    gid,
    para,
    port,
    print_error,
    stop_on_signals,
)

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands
    from asana_webhooks.testing import FakeAsana, FakeAsanaControl

#: The receiver's port in the guides' recipes (the stand-in's is 8100).
EXAMPLE_RECEIVER_PORT = 8080


def cmd_fake(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks.testing import FakeAsana

    if args.token is not None and not args.token.strip():
        raise UsageError("--token is empty: give a token, or leave --token out for a random one")
    fake = FakeAsana(access_token=args.token, port=args.port)
    try:
        fake.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    flag = StopFlag()
    try:
        with stop_on_signals(flag):
            _introduce(out, fake, given_token=args.token is not None)
            out.flush()
            while not flag.event.wait(0.5):
                _run_due(fake, err)
    finally:
        fake.stop()
    err.write(f"{PROG} fake: stopped ({flag.signal_name or 'done'})\n")
    return flag.exit_status


def _introduce(out: TextIO, fake: FakeAsana, *, given_token: bool) -> None:
    token_note = (
        "the one given with --token"
        if given_token
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
        "To see an event arrive, in other terminals (with the two exports):\n"
        f"  {PROG} serve --port {EXAMPLE_RECEIVER_PORT} --secrets secrets.sqlite3\n"
        f"  {PROG} create --resource 1200000000000001 --target "
        f"http://127.0.0.1:{EXAMPLE_RECEIVER_PORT}/hook --secrets secrets.sqlite3\n"
        f"  {PROG} fake deliver\n"
        "Webhook targets must be on 127.0.0.1. Heartbeats go out every 8 hours of the\n"
        f"stand-in's clock ({PROG} fake advance 8h). Press Ctrl-C to stop.\n"
    )


def _run_due(fake: FakeAsana, err: TextIO) -> None:
    """Retries and heartbeats that fall due in real time, each said on stderr."""
    for done in fake.run_due():
        err.write(f"{PROG} fake: {_describe(done.to_json())}\n")
    err.flush()


# --- driving a running stand-in ----------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``8h``, ``2d`` -> seconds."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (seconds, or a number with s, m, h or d: 8h)"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, not {text!r}")
    return value


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}")
    return value


def _control(args: argparse.Namespace) -> FakeAsanaControl:
    from asana_webhooks.testing import FakeAsanaControl
    from asana_webhooks.testing._outbound import is_loopback_host

    host = args.host or os.environ.get(HOST_VARIABLE, "")
    if not host:
        raise UsageError(
            f"which stand-in? set {HOST_VARIABLE} to the URL `{PROG} fake` printed, or use --host"
        )
    try:
        url = FakeAsanaControl(host, "-").url
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from urllib.parse import urlsplit

    if not is_loopback_host(urlsplit(url).hostname or ""):
        # Never send the token to anything but a stand-in on this machine.
        raise UsageError(f"{host} is not a stand-in on this machine (127.0.0.1 or localhost)")
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise UsageError(f"no token: set {TOKEN_VARIABLE} to the token `{PROG} fake` printed")
    return FakeAsanaControl(host, token)


def _describe(delivery: dict[str, Any]) -> str:
    events = delivery["events"]
    what = {
        "heartbeat": "heartbeat",
        "deletion": "deletion",
    }.get(delivery["kind"], f"{delivery['kind']} of {events} event{'s' if events != 1 else ''}")
    status = f" ({delivery['status']})" if delivery["status"] else ""
    outcome = {
        "delivered": f"delivered{status}",
        "failed": f"FAILED{status or ' (no answer)'}; Asana would retry with backoff",
        "dropped": "dropped (fault): only in the event stream",
        "queued": "queued behind a failing delivery",
        "deleted": "webhook deleted after 24 hours of failures",
    }.get(delivery["outcome"], delivery["outcome"])
    return f"webhook {delivery['webhook_gid']}: {what}: {outcome}"


def _report(args: argparse.Namespace, out: TextIO, err: TextIO, answer: dict[str, Any]) -> int:
    deliveries = answer.get("deliveries", [])
    if args.json:
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
    else:
        if "now" in answer:
            out.write(f"the stand-in's clock: {answer['now']}\n")
        for delivery in deliveries:
            out.write(_describe(delivery) + "\n")
        if not deliveries and "deliveries" in answer:
            out.write("nothing was due\n")
    out.flush()
    failed = [d for d in deliveries if d["outcome"] == "failed"]
    # Failures while the clock moves are what was asked for (an offline target); a delivery
    # or heartbeat asked for now that the target refused is a failure of this command.
    if failed and args.fake_command in ("deliver", "heartbeat"):
        print_error(err, f"{len(failed)} of {len(deliveries)} deliveries failed (see above)")
        return EXIT_FAILED
    return EXIT_OK


def _controlled(action: Callable[[argparse.Namespace, FakeAsanaControl], Any]) -> Any:
    """Wrap a control subcommand: one line on stderr and exit 1 when the stand-in refuses."""

    def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        from asana_webhooks.testing import FakeControlError

        control = _control(args)
        try:
            answer = action(args, control)
        except FakeControlError as exc:
            print_error(err, f"the stand-in refused: {exc}")
            return EXIT_FAILED
        if answer is None:
            out.write("done\n")
            return EXIT_OK
        if args.fake_command == "status":
            return _print_status(args, out, answer)
        return _report(args, out, err, answer)

    return run


def _events_file(path: Optional[str]) -> Optional[list[Any]]:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            events = json.load(file)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if isinstance(events, dict) and isinstance(events.get("events"), list):
        events = events["events"]  # a delivery body as Asana sends it
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise UsageError(f'{path} must hold a JSON list of events (or {{"events": [...]}})')
    return events


def _print_status(args: argparse.Namespace, out: TextIO, status: dict[str, Any]) -> int:
    if args.json:
        out.write(json.dumps(status, ensure_ascii=False) + "\n")
        return EXIT_OK
    offset = status["clock_offset"]
    out.write(f"clock:     {status['now']} ({offset / 3600:g} hours ahead of real time)\n")
    out.write(f"workspace: {status['workspace']}\n")
    hooks = status["webhooks"]
    out.write(f"webhooks:  {len(hooks)}\n")
    for hook in hooks:
        state = "ok"
        if hook["delivery_retry_count"]:
            state = (
                f"failing ({hook['delivery_retry_count']} attempts, "
                f"next {hook['next_attempt_after']}, "
                f"deleted at {hook['failure_deletion_timestamp']}, "
                f"{hook['pending']} events waiting)"
            )
        out.write(f"  {hook['gid']}  {hook['resource']['gid']}  {hook['target']}  {state}\n")
    for target, until in status["offline"].items():
        out.write(f"offline:   {target} until {until or 'brought online'}\n")
    for hook in status["deleted_webhooks"]:
        out.write(f"deleted:   {hook['gid']} ({hook['target']}) after 24 hours of failures\n")
    return EXIT_OK


def _add_control_commands(fake: argparse.ArgumentParser) -> None:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--host",
        metavar="URL",
        help=f"the running stand-in's URL, as `{PROG} fake` printed it (default: ${HOST_VARIABLE})",
    )
    options.add_argument("--json", action="store_true", help="print the stand-in's JSON answer")
    sub = fake.add_subparsers(dest="fake_command", metavar="ACTION")
    note = f"Talks to a running `{PROG} fake` (${HOST_VARIABLE}, ${TOKEN_VARIABLE})."

    deliver = sub.add_parser(
        "deliver",
        parents=[options],
        help="make events happen and deliver them",
        description=para(
            "Make realistic events happen (a task added, changed, commented on...) and deliver "
            "them as Asana does: by default one on the resource of every webhook; with "
            "--resource, on that resource (its webhooks and those above it get them); with "
            "--webhook, straight to that webhook. The events also enter /events. " + note
        ),
    )
    which = deliver.add_mutually_exclusive_group()
    which.add_argument("--webhook", type=gid, metavar="GID", help="send to this webhook only")
    which.add_argument("--resource", type=gid, metavar="GID", help="events on this resource")
    deliver.add_argument("--count", type=_positive, default=1, metavar="N", help="default 1")
    deliver.add_argument("--seed", type=_whole, metavar="N", help="reproducible events")
    deliver.add_argument(
        "--events", metavar="FILE", help="send these events (a JSON list) instead of made-up ones"
    )
    deliver.set_defaults(
        action=lambda a, c: c.deliver(
            a.webhook,
            resource=a.resource,
            count=a.count,
            seed=a.seed,
            events=_events_file(a.events),
        )
    )

    heartbeat = sub.add_parser(
        "heartbeat",
        parents=[options],
        help="send heartbeats now",
        description=para("Send the signed empty delivery Asana sends every 8 hours. " + note),
    )
    heartbeat.add_argument("--webhook", type=gid, metavar="GID", help="default: every webhook")
    heartbeat.set_defaults(action=lambda a, c: {"deliveries": c.heartbeat(a.webhook)})

    advance = sub.add_parser(
        "advance",
        parents=[options],
        help="move the stand-in's clock forward",
        description=para(
            "Move the stand-in's clock forward (90, 15m, 8h, 2d), doing on the way what Asana "
            "would: retries with backoff, heartbeats every 8 hours, deleting a webhook that "
            "failed for 24 hours; sync tokens age too. " + note
        ),
    )
    advance.add_argument("duration", type=duration, metavar="DURATION")
    advance.set_defaults(action=lambda a, c: c.advance(a.duration))

    drop = sub.add_parser(
        "drop",
        parents=[options],
        help="lose deliveries (they stay in /events)",
        description=para(
            "Lose the next --count deliveries, or each with probability --fraction; the events "
            "still enter /events, as when Asana fails to deliver. With neither, stop dropping. "
            + note
        ),
    )
    drop.add_argument("--count", type=_whole, metavar="N")
    drop.add_argument("--fraction", type=_fraction, metavar="F", help="from 0 to 1")
    drop.add_argument("--seed", type=_whole, metavar="N")
    drop.add_argument("--heartbeats", action="store_true", help="drop heartbeats too")
    drop.set_defaults(
        action=lambda a, c: c.drop_deliveries(
            a.count, fraction=a.fraction, seed=a.seed, heartbeats=a.heartbeats
        )
    )

    offline = sub.add_parser(
        "offline",
        parents=[options],
        help="make deliveries to a target fail",
        description=para(
            "Deliveries to TARGET fail as if nothing listened, for --for on the stand-in's "
            "clock (default: until `fake online`); they are retried as Asana does. " + note
        ),
    )
    offline.add_argument("target", metavar="TARGET", help="a webhook's target URL")
    offline.add_argument("--for", dest="seconds", type=duration, metavar="DURATION")
    offline.set_defaults(action=lambda a, c: c.take_offline(a.target, a.seconds))

    online = sub.add_parser(
        "online",
        parents=[options],
        help="end `fake offline`",
        description=para("Deliveries to TARGET (default: every target) work again. " + note),
    )
    online.add_argument("target", nargs="?", metavar="TARGET")
    online.set_defaults(action=lambda a, c: c.bring_online(a.target))

    status = sub.add_parser(
        "status",
        parents=[options],
        help="the stand-in's clock, webhooks and faults",
        description=para("Show the stand-in's clock, webhooks, waiting events and faults. " + note),
    )
    status.set_defaults(action=lambda a, c: c.status())

    for parser in (deliver, heartbeat, advance, drop, offline, online, status):
        parser.set_defaults(control_run=_controlled(parser.get_default("action")))


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if getattr(args, "fake_command", None):
        status: int = args.control_run(args, out, err)
        return status
    return cmd_fake(args, out, err)


def register(commands: Commands) -> None:
    fake = commands.add_parser(
        "fake",
        help="run the Asana stand-in on its own",
        description=para(
            "Serve FakeAsana, the Asana webhooks API stand-in, on 127.0.0.1 until interrupted "
            "(Ctrl-C: exit 130; SIGTERM: exit 0), so other tools can be pointed at it. With an "
            f"ACTION, drive a running one instead: `{PROG} fake deliver` makes events happen "
            "and delivers them."
        ),
    )
    fake.add_argument("--port", type=port, default=0, help="default: a free port")
    fake.add_argument(
        "--token", metavar="TOKEN", help="the token it accepts (default: a random one, printed)"
    )
    _add_control_commands(fake)
    fake.set_defaults(run=_run)
