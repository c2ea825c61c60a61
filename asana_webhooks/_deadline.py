"""The whole-attempt deadline: no server can hold a call past its timeout by dripping bytes.

A socket timeout bounds each read, not the call: a server that sends one byte a second never
trips a 2-second read timeout. Each attempt therefore gets a deadline (``Timeout.total``, and
never later than the retry budget's end), and every read of the answer waits at most what is
left of it. The transports set the deadline in a context variable around one attempt; the
response class below reads it, so the same rule holds on ``http.client``, ``urllib3`` and
``requests`` alike. The TLS handshake needs nothing more: CPython already bounds a whole
handshake by the socket timeout, which the transports lower to what is left.
"""

from __future__ import annotations

import contextvars
import http.client
import io
import socket
import time
from typing import Any, Optional

#: (deadline on the monotonic clock, read timeout) of the attempt running in this context.
LIMITS: contextvars.ContextVar[Optional[tuple[float, float]]] = contextvars.ContextVar(
    "asana_webhooks_attempt_limits", default=None
)


class DeadlinePassed(socket.timeout):
    """The attempt's total time ran out (a ``socket.timeout``, so backends treat it as one)."""


#: How far a socket's timeout may stray from the exact time left before it is set again:
#: setting it is a system call, and a read may overrun the deadline by this much at most.
SLACK = 0.05


def remaining(deadline: float, limit: float) -> float:
    """``limit`` seconds, or less if the deadline is nearer; raise once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed("the attempt's total time ran out")
    return limit if limit < left else left


def bound(sock: socket.socket, deadline: float, limit: float) -> None:
    """Give ``sock`` a timeout of ``limit`` seconds, or what is left before ``deadline`` if
    less, leaving it alone when it is already within ``SLACK`` of that."""
    wanted = remaining(deadline, limit)
    current = sock.gettimeout()
    if current is None or not wanted - SLACK <= current <= wanted + SLACK:
        sock.settimeout(wanted)


class _DeadlineSocketIO(socket.SocketIO):
    """The socket's own reader (what ``makefile`` builds), each read waiting at most what is
    left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        super().__init__(sock, "rb")
        # As socket.makefile does: the descriptor stays open while the answer is read, even
        # after http.client closes the connection (``Connection: close``); close() undoes it.
        sock._io_refs += 1  # type: ignore[attr-defined]
        self._deadline = deadline
        self._read_timeout = read_timeout

    def readinto(self, buffer: Any) -> Optional[int]:
        # bound() inlined: this runs for every read of every answer.
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("the attempt's total time ran out")
        wanted = self._read_timeout if self._read_timeout < left else left
        sock: socket.socket = self._sock  # type: ignore[attr-defined]
        current = sock.gettimeout()
        if current is None or not wanted - SLACK <= current <= wanted + SLACK:
            sock.settimeout(wanted)
        try:
            return socket.SocketIO.readinto(self, buffer)
        except socket.timeout:
            if time.monotonic() >= self._deadline:
                raise DeadlinePassed("the attempt's total time ran out") from None
            raise


class _Reading:
    """What ``HTTPResponse.__init__`` asks of a socket (``makefile``), deadline-aware."""

    __slots__ = ("_limits", "_sock")

    def __init__(self, sock: socket.socket, limits: tuple[float, float]) -> None:
        self._sock = sock
        self._limits = limits

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        raw = _DeadlineSocketIO(self._sock, *self._limits)
        return io.BufferedReader(raw, io.DEFAULT_BUFFER_SIZE)


class DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading within the current attempt's deadline (if any)."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        limits = LIMITS.get()
        if limits is not None and isinstance(sock, socket.socket):
            sock = _Reading(sock, limits)
        super().__init__(sock, *args, **kwargs)
