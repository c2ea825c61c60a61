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


# --- listings that show rows as pages arrive -----------------------------------------------------


class StreamedTable:
    """A table written a page at a time: the first page sets the column widths.

    Later cells that are wider push their row out instead of waiting for every page.
    """

    def __init__(self, out: TextIO, header: Sequence[str]) -> None:
        self._out = out
        self._header = tuple(header)
        self._widths: Optional[list[int]] = None

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        if not rows:
            return
        if self._widths is None:
            self._widths = [len(name) for name in self._header]
            for row in rows:
                self._widths = [max(width, len(cell)) for width, cell in zip(self._widths, row)]
            rows = [self._header, *rows]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, self._widths)]
            self._out.write("  ".join(cells).rstrip() + "\n")
        self._out.flush()

    def finish(self) -> None:
        """The header alone when no row came."""
        if self._widths is None:
            self._out.write("  ".join(self._header) + "\n")


class JsonListing:
    """Items written as they come: one JSON array (``lines=False``) or JSON lines.

    The array is byte for byte what ``print_json`` writes for the whole list, only written
    an item at a time; JSON lines put each item on its own line, compact.
    """

    def __init__(self, out: TextIO, *, lines: bool) -> None:
        self._out = out
        self._lines = lines
        self._count = 0

    def write(self, items: Sequence[Any]) -> None:
        for item in items:
            if self._lines:
                self._out.write(json.dumps(item, ensure_ascii=False) + "\n")
            else:
                text = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  ")
                self._out.write(("[\n  " if self._count == 0 else ",\n  ") + text)
            self._count += 1
        self._out.flush()

    def close(self) -> None:
        if not self._lines:
            self._out.write("\n]\n" if self._count else "[]\n")
            self._out.flush()


class Progress:
    """A running count on stderr while a listing goes, only when stderr is a terminal.

    ``clear()`` before writing rows, so rows and the count do not share a line on a terminal.
    """

    def __init__(self, err: TextIO, unit: str) -> None:
        self._err = err
        self._unit = unit
        isatty = getattr(err, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self._shown = False

    def show(self, count: int) -> None:
        if self.enabled:
            self._err.write(f"\r\x1b[Klisting {self._unit}: {count} so far...")
            self._err.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._err.write("\r\x1b[K")
            self._err.flush()
            self._shown = False
