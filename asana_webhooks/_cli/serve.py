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
    EXIT_OK,
    PROG,
    StopFlag,
    UsageError,
    para,
    port,
    stop_on_signals,
)

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands


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
    flag = StopFlag()
    try:
        server = ReceiverServer.for_receiver(receiver, host=args.bind, port=args.port).start()
    except OSError as exc:
        library_logger.removeHandler(handler)
        raise UsageError(
            f"cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}"
        ) from None
    try:
        with stop_on_signals(flag):
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
    return EXIT_OK


class _LineHandler(logging.Handler):
    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        self._write(record.getMessage())


def register(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="a standalone receiver printing verified events as JSON lines",
        description=para(
            "Receive webhooks without a web framework: every path is a target, handshakes "
            "store their secret in the SQLite file, deliveries are verified and each event is "
            'printed to stdout as one JSON line {"target": ..., "event": ...}. Status goes to '
            "stderr. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    serve.add_argument("--port", required=True, type=port, help="0 picks a free port")
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
    serve.set_defaults(run=cmd_serve)
