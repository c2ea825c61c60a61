"""FakeAsana's own HTTP calls to webhook targets (handshakes and deliveries), loopback only.

Every call goes to an address on this machine: a target naming any other host is refused
before a socket is opened, so a test can never reach the network through the fake.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from typing import Mapping, Optional
from urllib.parse import urlsplit

import attrs

from asana_webhooks.testing._records import Headers, OutboundCall

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

#: How much of a target's answer is kept (for ``last_failure_content`` and records).
MAX_RESPONSE_BYTES = 64 * 1024

USER_AGENT = "FakeAsana (asana_webhooks.testing)"


class TargetRefused(ValueError):
    """The target URL cannot be used: malformed, or not on a loopback address."""


@attrs.frozen
class Target:
    scheme: str
    host: str
    port: int
    path: str
    host_header: str


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: 127.0.0.0/8, ``::1`` or a localhost name."""
    name = host.strip("[]").lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_target(target: str) -> Target:
    """Split a webhook target URL; raise ``TargetRefused`` when it is not usable."""
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"target: Not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("target: Must be an absolute http:// or https:// URL")
    host = parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    shown_host = f"[{host}]" if ":" in host else host
    return Target(
        scheme=parts.scheme,
        host=host,
        port=port or default_port,
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        host_header=shown_host if port is None else f"{shown_host}:{port}",
    )


def _check_resolves_to_loopback(target: Target) -> None:
    # Resolve only names already known to be local, and insist every address is loopback.
    if not is_loopback_host(target.host):
        raise TargetRefused(
            f"FakeAsana only calls loopback targets (127.0.0.0/8, ::1, localhost); "
            f"refusing host {target.host!r}"
        )
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {target.host!r}: {exc}") from None
    for info in infos:
        address = str(info[4][0]).split("%")[0]
        if not ipaddress.ip_address(address).is_loopback:
            raise TargetRefused(f"{target.host!r} resolves to non-loopback {address}")


def post(
    kind: str,
    target_url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    webhook_gid: Optional[str] = None,
) -> OutboundCall:
    """POST ``body`` to a loopback target; never raises for network trouble (``status`` 0)."""
    sent_headers = {"User-Agent": USER_AGENT}
    if body:
        sent_headers["Content-Type"] = "application/json; charset=utf-8"
    sent_headers.update({"Content-Length": str(len(body)), "Connection": "close", **headers})
    started = time.monotonic()

    def result(
        status: int = 0,
        reason: str = "",
        response_headers: Headers = Headers(),  # noqa: B008 - immutable
        response_body: bytes = b"",
        error: Optional[str] = None,
    ) -> OutboundCall:
        return OutboundCall(
            kind=kind,
            webhook_gid=webhook_gid,
            target=target_url,
            request_headers=Headers(sent_headers.items()),
            body=body,
            status=status,
            reason=reason,
            response_headers=response_headers,
            response_body=response_body,
            error=error,
            elapsed=time.monotonic() - started,
        )

    try:
        target = parse_target(target_url)
        _check_resolves_to_loopback(target)
    except TargetRefused as exc:
        return result(error=str(exc))
    sent_headers["Host"] = target.host_header
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        connection.request("POST", target.path, body=body, headers=sent_headers)
        response = connection.getresponse()
        response_body = response.read(MAX_RESPONSE_BYTES)
        return result(
            status=response.status,
            reason=response.reason,
            response_headers=Headers(response.getheaders()),
            response_body=response_body,
        )
    except socket.timeout:
        return result(error=f"Timed out after {timeout:g} seconds")
    except (OSError, http.client.HTTPException) as exc:
        return result(error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()
