"""``serve``: a standalone receiver that prints verified events as JSON lines."""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, TextIO

import attrs

from asana_webhooks._cli._common import (
    PROG,
    StopFlag,
    UsageError,
    log_to,
    make_api,
    open_secret_store,
    para,
    port,
    seconds,
    stop_on_signals,
)
from asana_webhooks._cli.inbox import add_inbox_option
from asana_webhooks._http_server import DEFAULT_MAX_CONNECTIONS, REQUEST_TIMEOUT

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands


def _event_json(event: Any) -> Any:
    from asana_webhooks._converter import format_datetime

    def serialize(_: Any, __: Any, value: Any) -> Any:
        return format_datetime(value) if isinstance(value, datetime.datetime) else value

    return attrs.asdict(event, value_serializer=serialize)


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._cli.inbox import open_checked
    from asana_webhooks._metrics import metrics_app
    from asana_webhooks._receiver import WebhookReceiver
    from asana_webhooks._urls import redacted
    from asana_webhooks._wsgi import ReceiverServer, wsgi_app

    bind = _bind_address(args, err)
    store = open_secret_store(args.secrets)
    inbox = open_checked(args.inbox) if args.inbox else None
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
        store,
        None if inbox is not None else on_events,
        accept_unannounced_handshakes=args.accept_unannounced_handshakes,
        on_handshake=lambda target: note(f"handshake accepted for {target}; secret stored"),
        inbox=inbox,
    )
    watch = _Watch(args, store, note) if args.watch else None
    app = metrics_app(
        wsgi_app(receiver), receiver.metrics, inbox, health=watch.metrics if watch else None
    )
    # Refused requests and store failures are worth a line even without -v (one line each,
    # with the reason, never a traceback).
    log_to(err, args.verbose, prefix=f"{PROG} serve", quiet_level=logging.WARNING)
    flag = StopFlag()
    try:
        server = ReceiverServer(
            app,
            host=bind,
            port=args.port,
            request_timeout=args.request_timeout,
            max_connections=_connection_cap(args.max_connections, note),
        ).start()
    except OSError as exc:
        if watch is not None:
            watch.stop()
        raise UsageError(f"cannot listen on {bind}:{args.port}: {exc.strerror or exc}") from None
    try:
        with stop_on_signals(flag):
            where = (
                f"verified events are stored in the inbox {redacted(args.inbox)} for `worker`"
                if inbox is not None
                else "verified events go to stdout as JSON lines"
            )
            note(
                f"listening on {server.url} (every path is a webhook target, GET /metrics "
                f"gives Prometheus metrics); secrets in {redacted(args.secrets)}; {where}"
            )
            if args.accept_unannounced_handshakes:
                note("accepting the first handshake of any target that has no secret yet")
            if watch is not None:
                watch.start(flag.event)
            while not flag.event.wait(0.5):
                pass
    finally:
        flag.event.set()
        if watch is not None:
            watch.stop()
        server.stop()
        if inbox is not None:
            inbox.close()
    note(f"stopped ({flag.signal_name or 'done'})")
    return flag.exit_status


class _Watch:
    """``--watch FILE``: judge the declared webhooks every ``--watch-interval`` seconds, in a
    thread, for the ``asana_webhooks_webhooks{state=...}`` gauges at ``/metrics``."""

    def __init__(self, args: argparse.Namespace, store: Any, note: Any) -> None:
        from asana_webhooks._declared import DeclarationError, load_declared
        from asana_webhooks._health import HealthMetrics

        try:
            self.declared = load_declared(args.watch)
        except DeclarationError as exc:
            raise UsageError(f"--watch {args.watch}: {exc}") from None
        # serve's --host is the old name of --bind: the API's host comes from $ASANA_HOST.
        self.api = make_api(argparse.Namespace(host=None, timeout=60.0))
        self.store = store
        self.note = note
        self.interval = args.watch_interval
        self.metrics = HealthMetrics()
        self.thread: Any = None

    def start(self, stop: threading.Event) -> None:
        self.thread = threading.Thread(
            target=self._run, args=(stop,), name="asana-webhooks-watch", daemon=True
        )
        self.thread.start()

    def _run(self, stop: threading.Event) -> None:
        from asana_webhooks._cli._common import describe_error
        from asana_webhooks._health import webhook_health

        while not stop.is_set():
            try:
                results = webhook_health(
                    self.api,
                    self.store,
                    self.declared,
                    metrics=self.metrics,
                    on_unhealthy=lambda h: self.note(f"{h.state}: {h.resource} {h.target}"),
                )
                bad = sum(health.needs_attention for health in results)
                self.note(f"health: {len(results) - bad} ok, {bad} need attention")
            except Exception as exc:  # Asana or the store failed: say so, try again later
                self.note(f"health check failed: {describe_error(exc)}")
            stop.wait(self.interval)

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=70)
        self.api.api_client.close()


def _connection_cap(wanted: int, note: Callable[[str], None]) -> int:
    """``wanted``, or fewer when the process may not open that many files."""
    try:
        import resource
    except ImportError:  # not on Windows
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Leave room for the listener, the store's files, the log and the interpreter's own.
    usable = soft - 32 if soft != resource.RLIM_INFINITY else wanted
    if usable < wanted:
        cap = max(1, usable)
        note(f"--max-connections {wanted} is over what this process may open; using {cap}")
        return cap
    return wanted


def _bind_address(args: argparse.Namespace, err: TextIO) -> str:
    if args.host is not None:
        if args.bind is not None:
            raise UsageError("--host is the old name of --bind: give only --bind")
        err.write(f"{PROG} serve: --host is deprecated here; use --bind {args.host}\n")
        return str(args.host)
    return str(args.bind or "127.0.0.1")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def register(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="a standalone receiver printing verified events as JSON lines",
        description=para(
            "Receive webhooks without a web framework: every path is a target, handshakes "
            "store their secret in the SQLite file, deliveries are verified and each event is "
            'printed to stdout as one JSON line {"target": ..., "event": ...}. Status goes to '
            "stderr. Stops cleanly on SIGTERM (exit 0) or Ctrl-C (exit 130)."
        ),
    )
    serve.add_argument("--port", required=True, type=port, help="0 picks a free port")
    serve.add_argument(
        "--secrets",
        required=True,
        metavar="URL",
        help="secret store: a SQLite file path or sqlite:///PATH, or redis://HOST:PORT/DB",
    )
    add_inbox_option(serve)
    serve.add_argument(
        "--bind",
        metavar="ADDRESS",
        help="address to listen on (default 127.0.0.1; Asana reaches you through a proxy)",
    )
    # Before --bind, serve's --host meant the address to listen on, while every other
    # command's --host is the API's URL; kept working, with a warning.
    serve.add_argument("--host", help=argparse.SUPPRESS)
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help=f"connections open at once; more are answered 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    serve.add_argument(
        "--request-timeout",
        type=seconds,
        default=REQUEST_TIMEOUT,
        metavar="SECONDS",
        help=f"time a client has to send its whole request (default {REQUEST_TIMEOUT:g})",
    )
    serve.add_argument(
        "--accept-unannounced-handshakes",
        action="store_true",
        help=(
            "accept the first handshake of any target without a secret (needed when webhooks "
            "are created without `create --secrets` on the same file)"
        ),
    )
    serve.add_argument(
        "--watch",
        metavar="FILE",
        help=(
            "judge the webhooks declared in FILE (as `health FILE`) every --watch-interval "
            "seconds and serve the count per state at /metrics (needs $ASANA_ACCESS_TOKEN)"
        ),
    )
    serve.add_argument(
        "--watch-interval",
        type=seconds,
        default=900.0,
        metavar="SECONDS",
        help="time between two health checks with --watch (default 900)",
    )
    serve.set_defaults(run=cmd_serve)
