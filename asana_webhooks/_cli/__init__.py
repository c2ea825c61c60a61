"""The ``asana-webhooks`` command: manage webhooks, receive them, or try it all on a stand-in.

One module per command group; each has ``register(commands)``, which adds its subcommands
with ``set_defaults(run=...)``. To add a command, write a module here and name it in
``COMMAND_MODULES``. ``_common`` holds what they share: the exit codes (0 ok, 1 Asana, the
network or a server refused, 2 usage, 3 needs attention, 130 interrupted), argument types,
the parser, error printing and the API factory. Errors are one line on stderr, never a
traceback. Tokens and webhook secrets are never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Optional, TextIO

from asana_webhooks._cli._common import (
    ENVIRONMENT_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    PROG,
    TOKEN_VARIABLE,
    VERBOSE_HELP,
    CommandFailed,
    Parser,
    UsageError,
    api_host,
    describe_connection_error,
    log_to,
    logging_restored,
    print_error,
)
from asana_webhooks._cli.webhooks import parse_filter
from asana_webhooks._version import __version__

__all__ = ["UsageError", "build_parser", "main", "parse_filter"]

#: The command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = ("demo", "webhooks", "ensure", "serve", "inbox", "reconcile", "fake")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Manage Asana webhooks, receive them, or try everything on a local stand-in.",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, dest="verbose_before", help=VERBOSE_HELP
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    # -v works after the command too, for every command (a module may have added its own).
    for command in commands.choices.values():
        with contextlib.suppress(argparse.ArgumentError):
            command.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit status."""
    out, err = sys.stdout, sys.stderr
    args = build_parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", 0) + args.verbose_before
    with logging_restored():
        log_to(err, args.verbose)
        return _run(args, out, err)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from asana_webhooks._errors import (
        ApiConnectionError,
        AsanaError,
        InvalidRequestError,
        UnauthorizedError,
    )

    try:
        status: int = args.run(args, out, err)
        return status
    except UsageError as exc:
        print_error(err, str(exc))
        return EXIT_USAGE
    except CommandFailed as exc:
        print_error(err, str(exc))
        return EXIT_FAILED
    except InvalidRequestError as exc:
        print_error(err, str(exc))
        return EXIT_USAGE
    except UnauthorizedError as exc:
        print_error(err, f"{exc} (is {TOKEN_VARIABLE} a valid token for this host?)")
        return EXIT_FAILED
    except ApiConnectionError as exc:
        print_error(err, describe_connection_error(exc, api_host(args)))
        return EXIT_FAILED
    except AsanaError as exc:
        print_error(err, str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error(err, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python from complaining.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        # A failure nobody foresaw (a store's database error mid-way, a bug): still one
        # line. With -vv, the traceback too, for a bug report.
        if args.verbose > 1:
            raise
        where = "the secret store failed" if _is_store_error(exc) else "unexpected error"
        print_error(err, f"{where}: {type(exc).__name__}: {exc} (-vv shows where)")
        return EXIT_FAILED


def _is_store_error(exc: BaseException) -> bool:
    return type(exc).__module__ in ("sqlite3", "django.db.utils") or "redis" in type(exc).__module__
