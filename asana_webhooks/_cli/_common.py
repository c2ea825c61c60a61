"""What every command shares: exit codes, argument types, the parser, errors, the API factory.

A command module adds its subparser in ``register(commands)`` and points it at its function
with ``set_defaults(run=...)``; ``run(args, out, err)`` returns the exit status, or raises
``UsageError`` (exit 2) or a library error that ``main`` turns into one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import textwrap
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, TextIO

import attrs

if TYPE_CHECKING:
    from asana_webhooks._secrets import SecretStore
    from asana_webhooks._webhooks_api import WebhooksApi

    #: What a command module's ``register`` receives: ``commands.add_parser(...)`` adds one.
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

PROG = "asana-webhooks"
TOKEN_VARIABLE = "ASANA_ACCESS_TOKEN"  # noqa: S105  (a variable name)
HOST_VARIABLE = "ASANA_HOST"
DEFAULT_HOST = "https://app.asana.com/api/1.0"

# --- exit codes: the one place they are defined ----------------------------------------------

#: Done, and all is well.
EXIT_OK = 0
#: Asana, the network or a server (a store, an inbox) refused or failed.
EXIT_FAILED = 1
#: The command line cannot be carried out as given: a bad option, file, URL or a missing token.
EXIT_USAGE = 2
#: The command worked and found something that needs a person (``health``).
EXIT_ATTENTION = 3
#: Stopped by Ctrl-C (SIGINT), as shells report it (128 + 2).
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "exit status: 0 ok, 1 Asana, the network or a server refused, 2 usage error, "
    "3 needs attention (health), 130 interrupted"
)

ENVIRONMENT_HELP = f"""\
environment:
  {TOKEN_VARIABLE}  a personal access token (required by list, get, create, update,
                      delete and health; never printed)
  {HOST_VARIABLE}          the API base URL (default {DEFAULT_HOST}); --host overrides it
"""

#: A command's body: ``run(args, out, err) -> exit status``.
Run = Callable[[argparse.Namespace, TextIO, TextIO], int]


class UsageError(Exception):
    """The command line cannot be carried out as given (exit status 2)."""


class CommandFailed(Exception):
    """Asana, the network or a server refused, and the command says why (exit status 1)."""


def describe_error(exc: BaseException) -> str:
    """``Type: message`` on one line, for errors from outside the library (sqlite3, redis)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- the parser --------------------------------------------------------------------------------


def para(text: str) -> str:
    return textwrap.fill(text, 79)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line with the one prefix every error has, then where to look: argparse's usage
        # block is long for subcommands.
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see {self.prog} --help)\n")


# --- argument types ----------------------------------------------------------------------------


def gid(text: str) -> str:
    value = text.strip()
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a gid (digits only): {text!r}")
    return value


def page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100, not {text!r}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most 3600 seconds, not {text!r}"
        )
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return value


def api_options() -> argparse.ArgumentParser:
    """The options of every command that calls Asana (a parent parser)."""
    options = Parser(add_help=False)
    options.add_argument(
        "--host",
        metavar="URL",
        help=f"API base URL (default: ${HOST_VARIABLE} or {DEFAULT_HOST})",
    )
    options.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options.add_argument(
        "--timeout",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for each answer (default 60; a create waits for the handshake)",
    )
    return options


# --- errors and logging ------------------------------------------------------------------------


def print_error(err: TextIO, text: str) -> None:
    err.write(f"{PROG}: error: {' '.join(text.split())}\n")
    err.flush()


VERBOSE_HELP = "say more on stderr (-v: retries; -vv: every request)"


class OneLineHandler(logging.Handler):
    """Log records as single lines on a stream: ``PREFIX: message: ExcType: reason``.

    A command line shows no tracebacks, not even in its log: an exception adds its type and
    message (which the library keeps free of secrets) to the same line.
    """

    def __init__(self, stream: TextIO, prefix: str, level: int) -> None:
        super().__init__(level)
        self.stream = stream
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text += f": {type(exc).__name__}: {exc}" if str(exc) else f": {type(exc).__name__}"
            self.stream.write(f"{self.prefix}: {' '.join(text.split())}\n")
            self.stream.flush()
        except Exception:  # a log line must never take the command down
            self.handleError(record)


_installed_handler: Optional[logging.Handler] = None


def log_to(
    err: TextIO, verbosity: int, *, prefix: str = PROG, quiet_level: Optional[int] = None
) -> None:
    """The library's log on ``err``, one line per record: -v INFO, -vv DEBUG.

    Without -v, records from ``quiet_level`` up (none when it is None). Replaces what an
    earlier call installed, so a command can adjust what ``main`` set up.
    """
    global _installed_handler
    library_logger = logging.getLogger("asana_webhooks")
    if _installed_handler is not None:  # main() called again in one process
        library_logger.removeHandler(_installed_handler)
    level = logging.DEBUG if verbosity > 1 else logging.INFO if verbosity == 1 else quiet_level
    handler: logging.Handler
    if level is None:
        handler = logging.NullHandler()  # keeps Python's last-resort handler quiet too
    else:
        handler = OneLineHandler(err, prefix, level)
        if library_logger.level == logging.NOTSET or library_logger.level > level:
            library_logger.setLevel(level)
    library_logger.addHandler(handler)
    _installed_handler = handler


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """Undo what ``log_to`` did once the command is over (``main`` may run in a host process)."""
    global _installed_handler
    library_logger = logging.getLogger("asana_webhooks")
    level = library_logger.level
    try:
        yield
    finally:
        if _installed_handler is not None:
            library_logger.removeHandler(_installed_handler)
            _installed_handler = None
        library_logger.setLevel(level)


# --- the API -----------------------------------------------------------------------------------


def api_host(args: argparse.Namespace) -> str:
    return getattr(args, "host", None) or os.environ.get(HOST_VARIABLE) or DEFAULT_HOST


def make_api(args: argparse.Namespace) -> WebhooksApi:
    """A ``WebhooksApi`` for the token in the environment and ``--host``/``--timeout``."""
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
    try:
        configuration = Configuration(
            host=api_host(args),
            access_token=token,
            timeout=Timeout(connect=10.0, read=args.timeout),
            # The library's attempts, but a person is waiting: a shorter time budget.
            retry=RetryPolicy(max_time=20.0),
        )
    except ValueError as exc:
        raise UsageError(f"--host: {exc}") from None
    return WebhooksApi(ApiClient(configuration))


@contextlib.contextmanager
def opened_api(args: argparse.Namespace) -> Iterator[WebhooksApi]:
    api = make_api(args)
    try:
        yield api
    finally:
        api.api_client.close()


# --- long-running commands ---------------------------------------------------------------------


@attrs.define
class StopFlag:
    """Set by SIGINT or SIGTERM; says which, and so the exit status."""

    event: threading.Event = attrs.field(factory=threading.Event)
    signal_name: Optional[str] = None

    @property
    def exit_status(self) -> int:
        """130 after Ctrl-C (interrupted), else 0: SIGTERM is how services are stopped."""
        return EXIT_INTERRUPTED if self.signal_name == "SIGINT" else EXIT_OK


@contextlib.contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[None]:
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


# --- stores ------------------------------------------------------------------------------------


def open_secret_store(path: str, option: str = "--secrets") -> SecretStore:
    """Open the secret store at ``path`` and prove it usable now, or raise ``UsageError``.

    A store that cannot be used must stop the command before it starts: ``serve`` would
    otherwise listen and answer every handshake with a 500, ``create`` would create a webhook
    whose handshake fails.
    """
    import sqlite3

    from asana_webhooks._secrets import SQLiteSecretStore
    from asana_webhooks._urls import InvalidURLError, is_sqlite, sqlite_path

    try:
        if not is_sqlite(path):
            return _open_server_store(path, option)
        path = sqlite_path(path) if path.startswith("sqlite:") else path
    except InvalidURLError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if not path.strip():
        raise UsageError(f"{option}: give the path of a SQLite file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a folder; give the path of a SQLite file")
    store = SQLiteSecretStore(path)
    try:
        store.get("/")  # creates the file and its tables, or fails saying why
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{option} {path}: not usable as a SQLite secret store ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK) or not os.access(folder, os.W_OK):
        # SQLite reads a read-only file fine and fails at the first handshake: say so now.
        raise UsageError(f"{option} {path}: not writable (the file and its folder must be)")
    return store


def _open_server_store(url: str, option: str) -> SecretStore:
    # A secret store on a server (redis://): one call proves it answers (exit 1 if not).
    from asana_webhooks._urls import open_secret_store as open_url
    from asana_webhooks._urls import redacted

    store = open_url(url)
    try:
        store.get("/")
    except Exception as exc:
        raise CommandFailed(
            f"{option}: cannot use the secret store at {redacted(url)}: {describe_error(exc)}"
        ) from None
    return store


# --- network errors ----------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, nested args."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested.extend(getattr(current, "args", ()))
        pending.extend(item for item in nested if isinstance(item, BaseException))


def connection_problem(exc: BaseException, host: str) -> Optional[str]:
    """What went wrong under a connection error, in words: refused, unknown host, ..."""
    import socket
    import ssl
    import urllib.parse

    parts = urllib.parse.urlsplit(host)
    name = parts.hostname or host
    try:
        address = f"{name}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except ValueError:
        address = name
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, socket.gaierror) or "NameResolution" in type(cause).__name__:
            return f"unknown host {name!r}: the name does not resolve"
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {address}: nothing is listening there"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by {address}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the TLS certificate of {name} was not accepted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed with {address}"
        if isinstance(cause, (socket.timeout, TimeoutError)):
            return f"no answer from {address} in time"
        if isinstance(cause, OSError) and cause.strerror and cause is not exc:
            return f"{cause.strerror.lower()} ({address})"
    return None


def describe_connection_error(exc: BaseException, host: str) -> str:
    """The library's message, with the request named as Asana's errors name it and the cause.

    The transports describe a request by its whole URL path (``GET /api/1.0/webhooks/1``)
    where Asana's errors use the path under the host (``GET /webhooks/1``): one form here.
    """
    import urllib.parse

    text = str(exc)
    base = urllib.parse.urlsplit(host).path.rstrip("/")
    if base:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            text = text.replace(f"{method} {base}/", f"{method} /")
    problem = connection_problem(exc, host)
    details = f"{problem}; host {host}" if problem else f"host {host}"
    return f"{text} ({details})"
