"""Signed deliveries over real sockets, for the inbox tests."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

from asana_webhooks import sign_body

SECRET = "6f" * 32


def event(n: int, *, resource: str = "", name: str = "", created_at: str = "") -> dict[str, Any]:
    """A raw Asana event, unique by ``n``."""
    resource_gid = resource or str(1_200_000_000_000_000 + n % 50)
    compact: dict[str, Any] = {"gid": resource_gid, "resource_type": "task"}
    if name:
        compact["name"] = name
    return {
        "user": {"gid": "9001", "resource_type": "user"},
        "created_at": created_at
        or f"2026-03-01T10:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}000Z",
        "action": "changed",
        "resource": compact,
        "parent": None,
        "change": {"field": "name", "action": "changed", "new_value": f"v{n}"},
    }


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"events": events}).encode()


def post(
    url: str, body: bytes, *, secret: str = SECRET, timeout: float = 30.0
) -> tuple[int, float]:
    """POST a signed delivery; return the status and the seconds it took to answer."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(
            "POST",
            parts.path or "/",
            body=body,
            headers={
                "X-Hook-Signature": sign_body(body, secret),
                "Content-Type": "application/json",
            },
        )
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def get(url: str, *, timeout: float = 30.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
