"""Notebook-friendly output: HTML tables, plain dicts, DataFrames and a progress line.

Nothing here runs when a model is built: the methods are looked up only when Jupyter (or the
caller) asks, so structuring a page of webhooks costs what it did before. pandas and tqdm are
imported only by the functions that use them, never by ``import asana_webhooks``.

Secrets stay out: an attrs field declared ``repr=False`` (``x_hook_secret``) is left out of
HTML and of ``to_dict`` unless the caller passes ``include_secret=True``. Every value put in
HTML is escaped.
"""

from __future__ import annotations

import datetime as _dt
import html
import importlib
import json
import sys
import time
import typing
from collections.abc import Generator, Iterable, Sequence
from typing import Any, Callable, Optional, TextIO, TypeVar

import attrs

T = TypeVar("T")

#: Longest text shown in one table cell; the full text is in the cell's ``title``.
MAX_CELL_CHARS = 80

# Fields that only repeat what the table already says (a webhook's resource_type is always
# "webhook"; an event's ``type`` is deprecated in favour of resource.resource_type).
_HIDDEN_COLUMNS = frozenset({"resource_type", "type"})

_STYLE = (
    "<style>"
    "table.asana-webhooks{border-collapse:collapse;font-size:0.9em}"
    "table.asana-webhooks th,table.asana-webhooks td"
    "{padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}"
    "table.asana-webhooks caption{text-align:left;font-weight:bold}"
    "</style>"
)


# --- plain data ------------------------------------------------------------------------------


# The models' read-only mapping of the keys a response carried that they do not declare
# (_models.KeepsUnknownKeys). Not a field, so not a column; a record shows its keys.
_UNKNOWN_KEYS = "additional_properties"


def _unknown(model: Any) -> dict[str, Any]:
    return dict(getattr(model, _UNKNOWN_KEYS, None) or {})


def _is_secret(field: attrs.Attribute[Any]) -> bool:
    # Secrets are declared repr=False on the models; what a repr hides, a table hides too.
    return field.repr is False


def _plain(value: Any, include_secret: bool) -> Any:
    if attrs.has(type(value)):
        return to_dict(value, include_secret=include_secret)
    if isinstance(value, (list, tuple)):
        return [_plain(item, include_secret) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item, include_secret) for key, item in value.items()}
    return value


def to_dict(model: Any, *, include_secret: bool = False) -> dict[str, Any]:
    """One model as a plain ``dict`` of its fields, nested models as dicts too.

    Keys are the Python field names; date-times stay ``datetime`` objects (aware, UTC).
    A secret (the ``x_hook_secret`` of a create) is left out unless ``include_secret=True``.
    """
    if not attrs.has(type(model)):
        raise TypeError(f"to_dict takes an asana_webhooks model, not {type(model).__name__}")
    plain = {
        field.name: _plain(getattr(model, field.name), include_secret)
        for field in attrs.fields(type(model))
        if include_secret or not _is_secret(field)
    }
    unknown = _unknown(model)
    if unknown:
        plain[_UNKNOWN_KEYS] = unknown  # keys Asana sent that the model does not declare
    return plain


def _items(models: Any) -> list[Any]:
    """A page's ``data``, a single model as one item, or any iterable of models."""
    if attrs.has(type(models)):
        data = getattr(models, "data", None)
        if isinstance(data, list):
            return data
        if data is not None and attrs.has(type(data)):
            return [data]
        return [models]
    if isinstance(models, (str, bytes, dict)):
        raise TypeError(f"expected asana_webhooks models, not {type(models).__name__}")
    return list(models)


def to_dicts(models: Any, *, include_secret: bool = False) -> list[dict[str, Any]]:
    """Models as a list of plain dicts, one per webhook or event.

    Takes a page (``get_webhooks``: its ``data``), a single answer (``get_webhook``: its
    webhook), or any iterable of models (``iter_webhooks(...)``, ``parse_events(...)``).
    """
    return [to_dict(item, include_secret=include_secret) for item in _items(models)]


def _model_of(models: Any) -> Optional[type[Any]]:
    """The class of the items in ``models`` when it says so without any: a page's ``data``."""
    if not attrs.has(type(models)):
        return None
    for field in attrs.fields(attrs.resolve_types(type(models))):
        if field.name == "data" and typing.get_origin(field.type) is list:
            (item,) = typing.get_args(field.type)
            return item if attrs.has(item) else None
    return None


def _empty_columns(model: type[Any], include_secret: bool, prefix: str = "") -> dict[str, str]:
    """The columns (and dtypes) a frame of ``model`` has: nested models flattened."""
    columns: dict[str, str] = {}
    for field in attrs.fields(attrs.resolve_types(model)):
        if _is_secret(field) and not include_secret:
            continue
        kind = _bare(field.type)
        name = f"{prefix}{field.name}"
        if attrs.has(kind):
            columns.update(_empty_columns(kind, include_secret, f"{name}."))
        else:
            columns[name] = "datetime64[ns, UTC]" if kind is _dt.datetime else "object"
    return columns


def to_dataframe(
    models: Any, *, include_secret: bool = False, model: Optional[type[Any]] = None
) -> Any:
    """Models as a pandas ``DataFrame``, one row each, nested objects flattened.

    ``resource`` becomes ``resource.gid``, ``resource.name``, ...; date-time columns are
    timezone-aware ``datetime64`` (missing values are ``NaT``); lists (``filters``) stay in
    one column. Needs pandas (the ``notebook`` extra); imported only when called.

    No models, no rows: but the frame still has the columns of ``model`` (the items' class,
    for instance ``WebhookResponse``; a page says it itself), so code that selects columns
    works on an empty workspace too.
    """
    try:
        pd: Any = importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError(
            "to_dataframe needs pandas: pip install 'asana-webhooks[notebook]' or pandas"
        ) from exc
    rows = [_flatten(row) for row in to_dicts(models, include_secret=include_secret)]
    if not rows:
        model = model or _model_of(models)
        if model is None:
            return pd.DataFrame()
        columns = _empty_columns(model, include_secret)
        return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in columns.items()})
    frame = pd.DataFrame.from_records(rows)
    for column in frame.columns:
        values = [value for value in frame[column] if value is not None and value == value]
        if values and all(isinstance(value, _dt.datetime) for value in values):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _bare(tp: Any) -> Any:
    """X for ``Optional[X]``, else ``tp``."""
    args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:
        return args[0]
    return tp


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- text for one cell -------------------------------------------------------------------------


def _reference(gid: Any, kind: Any, name: Any) -> str:
    label = f"{kind} {gid}" if kind else str(gid)
    return f"{name} ({label})" if name else label


def cell_text(value: Any) -> str:
    """A short, unescaped text for one value: resources as ``name (type gid)``, and so on."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, tuple)):
        return "; ".join(cell_text(item) for item in value)
    if attrs.has(type(value)):
        if hasattr(value, "gid"):
            return _reference(
                value.gid, getattr(value, "resource_type", None), getattr(value, "name", None)
            )
        parts = []
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if item is None or _is_secret(field):
                continue
            text = cell_text(item)
            parts.append(f"({text.replace('; ', ', ')})" if isinstance(item, list) else text)
        return " ".join(parts)
    if isinstance(value, dict):
        if "gid" in value:
            return _reference(value["gid"], value.get("resource_type"), value.get("name"))
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _cell_html(value: Any, tag: str = "td") -> str:
    text = cell_text(value)
    if len(text) > MAX_CELL_CHARS:
        short = text[: MAX_CELL_CHARS - 1] + "\u2026"
        return f'<{tag} title="{html.escape(text)}">{html.escape(short)}</{tag}>'
    return f"<{tag}>{html.escape(text)}</{tag}>"


# --- HTML ----------------------------------------------------------------------------------------


def _model_columns(model: type[Any]) -> list[str]:
    """The columns a table of ``model`` would have if every field had a value."""
    return [
        field.name
        for field in attrs.fields(model)
        if not _is_secret(field) and field.name not in _HIDDEN_COLUMNS
    ]


def _columns(items: Sequence[Any]) -> list[str]:
    """Fields worth a column: not secret, not redundant, set on at least one item."""
    seen: dict[str, None] = {}
    for item in items:
        for field in attrs.fields(type(item)):
            if field.name in seen or _is_secret(field) or field.name in _HIDDEN_COLUMNS:
                continue
            if getattr(item, field.name) is not None:
                seen[field.name] = None
    if not items:
        return []
    order = [field.name for field in attrs.fields(type(items[0]))]
    return sorted(seen, key=lambda name: order.index(name) if name in order else len(order))


def table_html(
    models: Iterable[Any], caption: Optional[str] = None, model: Optional[type[Any]] = None
) -> str:
    """An escaped HTML table, one row per model, one column per field that has a value.

    Without models, the header still names the columns of ``model`` when it is given.
    """
    items = list(models)
    columns = _columns(items)
    parts = [_STYLE, '<table class="asana-webhooks">']
    if caption is not None:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    if not items:
        if model is not None:
            names = _model_columns(model)
            parts.append("<thead><tr>")
            parts.extend(f"<th>{html.escape(name)}</th>" for name in names)
            parts.append(f'</tr></thead><tbody><tr><td colspan="{len(names)}">(none)</td></tr>')
            parts.append("</tbody></table>")
        else:
            parts.append("<tbody><tr><td>(none)</td></tr></tbody></table>")
        return "".join(parts)
    parts.append("<thead><tr>")
    parts.extend(f"<th>{html.escape(name)}</th>" for name in columns)
    parts.append("</tr></thead><tbody>")
    for item in items:
        parts.append("<tr>")
        parts.extend(_cell_html(getattr(item, name, None)) for name in columns)
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def record_html(model: Any, caption: Optional[str] = None) -> str:
    """An escaped two-column HTML table of one model's fields that have a value."""
    parts = [_STYLE, '<table class="asana-webhooks">']
    if caption is not None:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<tbody>")
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        if value is None or _is_secret(field):
            continue
        parts.append(f"<tr><th>{html.escape(field.name)}</th>{_cell_html(value)}</tr>")
    for key, value in _unknown(model).items():  # undeclared keys Asana sent, after the rest
        parts.append(f"<tr><th>{html.escape(key)}</th>{_cell_html(value)}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def model_html(model: Any) -> str:
    """The HTML Jupyter shows for a model: a page as a table, anything else as a record."""
    name = type(model).__name__
    data = getattr(model, "data", None) if attrs.has(type(model)) else None
    if isinstance(data, list):
        next_page = getattr(model, "next_page", None)
        more = f", more from offset {next_page.offset}" if next_page and next_page.offset else ""
        return table_html(data, f"{name}: {len(data)} items{more}")
    if data is not None and attrs.has(type(data)):
        hidden = [f.name for f in attrs.fields(type(model)) if _is_secret(f)]
        note = f" ({', '.join(hidden)} hidden)" if hidden else ""
        return record_html(data, f"{name}{note}")
    gid = getattr(model, "gid", None)
    return record_html(model, f"{name} {gid}" if gid else name)


class Displayable:
    """Mixin for the models: ``to_dict()`` and the HTML Jupyter shows. Adds no state."""

    __slots__ = ()

    def to_dict(self, *, include_secret: bool = False) -> dict[str, Any]:
        """This model as a plain dict (secrets left out unless ``include_secret=True``)."""
        return to_dict(self, include_secret=include_secret)

    def _repr_html_(self) -> str:
        return model_html(self)


# --- a table of many ----------------------------------------------------------------------------


class Table(Sequence[Any]):
    """A list of models that Jupyter shows as one HTML table and a terminal as text columns."""

    def __init__(
        self, models: Any, caption: Optional[str] = None, *, model: Optional[type[Any]] = None
    ) -> None:
        self.items: list[Any] = _items(models)
        self.caption = caption
        #: The items' class: the columns of an empty table and of its empty DataFrame.
        self.model = model or _model_of(models) or (type(self.items[0]) if self.items else None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]

    def _repr_html_(self) -> str:
        return table_html(self.items, self.caption, self.model)

    def to_dicts(self, *, include_secret: bool = False) -> list[dict[str, Any]]:
        return to_dicts(self.items, include_secret=include_secret)

    def to_dataframe(self, *, include_secret: bool = False) -> Any:
        return to_dataframe(self.items, include_secret=include_secret, model=self.model)

    def __repr__(self) -> str:
        columns = _columns(self.items)
        rows = [columns] + [
            [_clip(cell_text(getattr(item, name, None)), 40) for name in columns]
            for item in self.items
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        lines = ["  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in rows]
        head = f"{self.caption}\n" if self.caption else ""
        return head + ("\n".join(lines) if self.items else "(none)")


def _clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def as_table(
    models: Any, caption: Optional[str] = None, *, model: Optional[type[Any]] = None
) -> Table:
    """Wrap webhooks or events so a notebook shows them as one table.

    ``as_table(api.iter_webhooks(workspace))``, ``as_table(parse_events(body))``, or a page.
    ``model`` names the items' class (``WebhookResponse``, ``Event``): an empty listing then
    still shows its columns, and its ``to_dataframe()`` has them. A page says it itself.
    """
    return Table(models, caption, model=model)


# --- progress ------------------------------------------------------------------------------------


def _tqdm() -> Optional[Callable[..., Any]]:
    try:
        module: Any = importlib.import_module("tqdm")
    except ImportError:
        return None
    return module.tqdm  # type: ignore[no-any-return]


def with_progress(
    items: Iterable[T],
    unit: str,
    *,
    stream: Optional[TextIO] = None,
    min_interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[T, None, None]:
    """Yield ``items`` while showing how many went by: tqdm when installed, else one stderr line.

    The line is rewritten in place (``\\r``) at most every ``min_interval`` seconds, which a
    terminal and Jupyter both show as one updating line, and ends with the total.
    """
    tqdm = _tqdm() if stream is None else None
    if tqdm is not None:
        with tqdm(items, unit=f" {unit}", desc=f"listing {unit}") as bar:
            yield from bar
        return
    out = stream if stream is not None else sys.stderr
    count = 0
    shown = -1.0
    finished = False
    try:
        for item in items:
            count += 1
            now = clock()
            if shown < 0 or now - shown >= min_interval:
                out.write(f"\rlisting {unit}: {count}")
                out.flush()
                shown = now
            yield item
        finished = True
    finally:
        ending = "done" if finished else "stopped"
        out.write(f"\rlisting {unit}: {count}, {ending}\n")
        out.flush()
