"""Structure a list of JSON objects into attrs models a column at a time.

cattrs' generated hook makes a Python call per field of every object: on a page of 100
webhooks (1,300 fields, 100 resources, 200 filters, 500 date-times) that is most of the
client's CPU when msgspec is not installed. Here each field is one pass over the whole list
and every pass runs in C (``map``, ``set``, ``chain``): pull the values out, check their
types, read date-times with ``fromisoformat``, then build the objects with
``map(cls, *columns)``, which calls the attrs ``__init__`` positionally.

It never decides anything alone. Whenever a column holds something it does not handle
exactly as the cattrs hooks do (a missing required key, a wrong type, a date-time
``fromisoformat`` refuses or would need rounding), it returns None and the caller structures
item by item with cattrs, which accepts or refuses and names the problem. Its results equal
cattrs' by construction; ``tests/test_columns.py`` checks that on fixtures and generated input.
"""

from __future__ import annotations

import datetime as _dt
import operator
import sys
import typing
from collections.abc import Mapping
from itertools import chain, islice, repeat
from typing import Any, Callable, Optional

import attrs

from asana_webhooks._models import keep_unknown_keys

#: One field's values for every object (None where the key is missing) -> the field's
#: values as the model holds them, or None when cattrs must decide.
Column = Callable[[list[Any]], Optional[list[Any]]]
#: A list of JSON objects -> the models, or None when cattrs must decide.
Rows = Callable[[list[Any]], Optional[list[Any]]]

_NoneType = type(None)
_SCALARS = (str, int, bool, float)
_get = dict.get
_tzinfo_of = operator.attrgetter("tzinfo")
_fromisoformat = _dt.datetime.fromisoformat
# Only from 3.11 does fromisoformat read Asana's "...Z" in C; before, date-times go through
# the converter's own hook, value by value.
_FROMISO_TAKES_Z = sys.version_info >= (3, 11)


def optional_inner(tp: Any) -> Any:
    """X for ``Optional[X]``, else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and len(args) == 2 and _NoneType in args:
        return args[0] if args[1] is _NoneType else args[1]
    return None


def _non_null(convert: Column, allow_none: bool) -> Column:
    """A column that converts only its values that are not None and puts them back in
    place; with ``allow_none`` false, a None is left for ``convert`` to refuse."""

    def column(values: list[Any]) -> Optional[list[Any]]:
        present = [v for v in values if v is not None] if allow_none else values
        if not present:
            return values  # all null (a compact listing): nothing to read
        converted = convert(present)
        if converted is None or len(present) == len(values):
            return converted
        it = iter(converted)
        return [None if v is None else next(it) for v in values]

    return column


def _scalar_column(kind: type[Any], allow_none: bool) -> Column:
    # Exactly the converter's check: `type(v) is kind` (True is not an int; no subclasses).
    allowed = {kind, _NoneType} if allow_none else {kind}

    def column(values: list[Any]) -> Optional[list[Any]]:
        return values if set(map(type, values)) <= allowed else None

    return column


def _datetimes(hook: Callable[[Any, Any], Any], tp: Any, longest_unrounded: int) -> Column:
    by_value = _hook_column(hook, tp)

    def convert(present: list[Any]) -> Optional[list[Any]]:
        if not set(map(type, present)) <= {str}:
            return None
        if max(map(len, present)) > longest_unrounded:
            # A "+05:30" offset, or a fraction beyond microseconds that the hook rounds.
            return by_value(present)
        try:
            parsed = list(map(_fromisoformat, present))
        except ValueError:
            return by_value(present)  # perhaps RFC 3339 that fromisoformat refuses
        if None in set(map(_tzinfo_of, parsed)):
            return None  # no offset: the hook refuses it
        return parsed

    return convert


def _scalar_lists(kind: type[Any]) -> Column:
    def convert(present: list[Any]) -> Optional[list[Any]]:
        if not set(map(type, present)) <= {list}:
            return None
        if not set(map(type, chain.from_iterable(present))) <= {kind}:
            return None
        return list(map(list, present))  # copies, as the hook makes

    return convert


def _model_lists(rows: Rows) -> Column:
    def convert(present: list[Any]) -> Optional[list[Any]]:
        if not set(map(type, present)) <= {list}:
            return None
        built = rows(list(chain.from_iterable(present)))  # every list's items in one go
        if built is None:
            return None
        items = iter(built)
        return [list(islice(items, n)) for n in map(len, present)]

    return convert


def _hook_column(hook: Callable[[Any, Any], Any], tp: Any) -> Column:
    """Any other type: the converter's own hook, value by value."""

    def column(values: list[Any]) -> Optional[list[Any]]:
        try:
            return list(map(hook, values, repeat(tp)))
        except Exception:
            return None

    return column


def column_for(
    tp: Any,
    hook: Callable[[Any, Any], Any],
    rows_of: Mapping[Any, Rows],
    *,
    longest_unrounded: int,
) -> Column:
    """The column version of the converter's hook for ``tp`` (``hook``).

    ``rows_of`` maps model classes to their row builders, for nested models and lists of them.
    """
    inner = optional_inner(tp)
    allow_none = inner is not None
    kind = inner if allow_none else tp
    if kind in _SCALARS:
        return _scalar_column(kind, allow_none)
    if kind is _dt.datetime and _FROMISO_TAKES_Z:
        return _non_null(_datetimes(hook, tp, longest_unrounded), allow_none)
    if kind in rows_of:
        return _non_null(rows_of[kind], allow_none)
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind) or (Any,)
        if item in _SCALARS:
            return _non_null(_scalar_lists(item), allow_none)
        if item in rows_of:
            return _non_null(_model_lists(rows_of[item]), allow_none)
    return _hook_column(hook, tp)


def rows_for(
    cls: type[Any],
    columns: Mapping[str, tuple[str, Column]],
    known: Optional[frozenset[str]] = None,
) -> Optional[Rows]:
    """A row builder for ``cls`` from one column per field (``{field: (json_key, column)}``),
    or None when ``cls`` cannot be built from columns exactly as cattrs builds it.

    A missing key reads as None, so every field must be either required and never None, or
    optional with None as its default (what cattrs leaves a missing key as). With ``known``
    (the keys ``cls`` declares), the others are kept aside on each object, as cattrs' hook
    does (``keep_unknown_keys``).
    """
    plan: list[tuple[str, Column, bool]] = []
    for field in attrs.fields(cls):
        if not field.init or field.kw_only or field.name not in columns:
            return None
        if field.default is not None and field.default is not attrs.NOTHING:
            return None
        if field.default is attrs.NOTHING and optional_inner(field.type) is not None:
            return None  # required but nullable: a missing key and a null differ
        key, column = columns[field.name]
        plan.append((key, column, field.default is attrs.NOTHING))

    def rows(objects: list[Any]) -> Optional[list[Any]]:
        if not set(map(type, objects)) <= {dict}:
            return None
        values = []
        for key, column, required in plan:
            raw = list(map(_get, objects, repeat(key)))
            if required and None in raw:
                return None  # a missing key (or a null): cattrs raises or decides
            converted = column(raw)
            if converted is None:
                return None
            values.append(converted)
        built = list(map(cls, *values))
        # One C pass over every key of every object; nothing is allocated when all are known.
        if known is not None and not known.issuperset(chain.from_iterable(objects)):
            for obj, value in zip(built, objects):
                if not known.issuperset(value):
                    keep_unknown_keys(obj, value, known)
        return built

    return rows
