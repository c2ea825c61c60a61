"""``demo``: the whole life of a webhook on a local Asana stand-in (see ``_demo``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from asana_webhooks._cli._common import UsageError, para, print_error

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import importlib.util

    from asana_webhooks import _demo

    if args.server == "flask" and importlib.util.find_spec("flask") is None:
        raise UsageError(
            "Flask is not installed: pip install 'asana-webhooks[flask]', or use --server wsgiref"
        )
    return _demo.main(out, server=args.server, error=lambda text: print_error(err, text))


def register(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole life of a webhook on a local Asana stand-in (no account needed)",
        description=para(
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
    demo.set_defaults(run=cmd_demo)
