"""How the commands print: tables, JSON, times relative to now, one-line cells."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any, Optional, TextIO

import attrs


def time_cell(value: Optional[datetime.datetime], now: Optional[datetime.datetime] = None) -> str:
    if value is None:
        return "-"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    shown = value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{shown} ({relative(value - now)})"


def relative(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    future, seconds = seconds > 0, abs(seconds)
    if seconds < 60:
        amount = f"{seconds}s"
    elif seconds < 3600:
        amount = f"{seconds // 60}m"
    elif seconds < 86400:
        amount = f"{seconds // 3600}h {seconds % 3600 // 60}m"
    else:
        amount = f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    return f"in {amount}" if future else f"{amount} ago"


def resource_cell(webhook: Any) -> str:
    resource = webhook.resource
    if resource is None:
        return "-"
    details = " ".join(
        part
        for part in (resource.resource_type, f'"{resource.name}"' if resource.name else "")
        if part
    )
    return f"{resource.gid} ({details})" if details else resource.gid


def flag_cell(value: Optional[bool]) -> str:
    return "-" if value is None else ("yes" if value else "no")


def one_line(text: Optional[str], limit: int = 100) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def count_cell(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def print_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [len(name) for name in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join(cells).rstrip() + "\n")


def print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def webhook_json(webhook: Any, fields: Sequence[str] = ()) -> dict[str, Any]:
    """A webhook as JSON, with each of ``fields`` present (null when Asana gave none)."""
    from asana_webhooks._converter import unstructure

    data: dict[str, Any] = unstructure(webhook)
    for name in fields:
        data.setdefault(name.split(".")[0], None)
    return data


def all_webhook_fields() -> list[str]:
    from asana_webhooks._models import WebhookResponse

    return [field.name for field in attrs.fields(WebhookResponse)]
