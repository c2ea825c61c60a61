"""``fake``: run FakeAsana, the Asana stand-in, on its own until interrupted."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from asana_webhooks._cli._common import (
    HOST_VARIABLE,
    PROG,
    TOKEN_VARIABLE,
    StopFlag,
    UsageError,
    para,
    port,
    stop_on_signals,
)

if TYPE_CHECKING:
    from asana_webhooks._cli._common import Commands
    from asana_webhooks.testing import FakeAsana


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
            # Controls for a running stand-in (trigger a delivery or heartbeat, inject
            # faults) are announced here once the stand-in serves them.
            out.flush()
            while not flag.event.wait(0.5):
                pass
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
        "Webhook targets must be on 127.0.0.1. Press Ctrl-C to stop.\n"
    )


def register(commands: Commands) -> None:
    fake = commands.add_parser(
        "fake",
        help="run the Asana stand-in on its own",
        description=para(
            "Serve FakeAsana, the Asana webhooks API stand-in, on 127.0.0.1 until interrupted "
            "(Ctrl-C: exit 130; SIGTERM: exit 0), so other tools can be pointed at it."
        ),
    )
    fake.add_argument("--port", type=port, default=0, help="default: a free port")
    fake.add_argument(
        "--token", metavar="TOKEN", help="the token it accepts (default: a random one, printed)"
    )
    fake.set_defaults(run=cmd_fake)
