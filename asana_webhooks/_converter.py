"""JSON <-> models: cattrs is the converter of record; msgspec, when installed, is a fast path.

Hooks are generated once per class (``make_dict_structure_fn``) and ``Optional[...]`` gets a
direct ``None``-check hook instead of cattrs' general union handling, which is what makes
structuring a 100-webhook page cheap. Scalars are checked strictly: a number where Asana
sends a string is a malformed response, not something to coerce.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import operator
import re
import sys
import threading
import typing
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from asana_webhooks import _columns, _models
from asana_webhooks._errors import Error, ErrorResponse, InvalidResponseError

try:  # the `speed` extra
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - exercised in environments without the extra
    _msgspec = None  # type: ignore[assignment]
msgspec: Any = _msgspec

T = TypeVar("T")

_UTC = _dt.timezone.utc
# Python 3.11 taught fromisoformat the "Z" suffix; before that we rewrite it to +00:00.
_FROMISO_TAKES_Z = sys.version_info >= (3, 11)


def _expect(kind: type[Any]) -> Callable[[Any, Any], Any]:
    name = kind.__name__

    def hook(value: Any, _: Any) -> Any:
        # `type(...) is` rather than isinstance: True is not an int here, and a str subclass
        # from a custom JSON decoder is not what Asana sends.
        if type(value) is kind:
            return value
        raise TypeError(f"expected {name}, got {type(value).__name__}")

    return hook


# An RFC 3339 date-time, which fromisoformat may refuse: a lowercase "z" (3.11+ refuses it),
# and before 3.11 also fractions of other than 3 or 6 digits and "+HHMM" offsets.
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.([0-9]{1,6})[0-9]*)?([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)


def _rfc3339_as_iso(value: str) -> Optional[str]:
    """An RFC 3339 date-time in the one form every fromisoformat reads (fraction truncated
    to microseconds, as 3.11+ does), or None when ``value`` is not RFC 3339."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    date, time, fraction, zone = match.groups()
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    return f"{date}T{time}{'.' + fraction.ljust(6, '0') if fraction else ''}{zone}"


# A fraction beyond microseconds is rounded half up by its seventh digit, as msgspec does
# (fromisoformat would truncate): both decode paths then agree without scanning the body.
# Such a string is at least 28 characters long; Asana's "2012-02-22T02:06:58.147Z" is 24.
_ROUNDS_UP = re.compile(r"\.[0-9]{6}[5-9]")
_ONE_MICROSECOND = _dt.timedelta(microseconds=1)
_LONGEST_UNROUNDED = 27


def _rounded(parsed: _dt.datetime, value: str) -> _dt.datetime:
    if _ROUNDS_UP.search(value):
        return parsed + _ONE_MICROSECOND
    return parsed


def parse_datetime(value: Any, _: Any = None) -> _dt.datetime:
    """An ISO 8601 / RFC 3339 date-time with an offset (Asana sends ``...Z``) -> aware datetime.

    Every RFC 3339 date-time is read alike on every Python we support; beyond that, what
    the running Python's ``fromisoformat`` reads is accepted too.
    """
    if type(value) is not str:
        raise TypeError(f"expected a date-time string, got {type(value).__name__}")
    try:
        if _FROMISO_TAKES_Z:
            parsed = _dt.datetime.fromisoformat(value)
        else:
            parsed = _dt.datetime.fromisoformat(
                value[:-1] + "+00:00" if value[-1:] in "Zz" else value
            )
    except ValueError:
        iso = _rfc3339_as_iso(value)
        if iso is None:
            raise
        parsed = _dt.datetime.fromisoformat(iso)
    if parsed.tzinfo is None:
        raise ValueError(f"date-time without a timezone: {value!r}")
    if len(value) > _LONGEST_UNROUNDED:
        return _rounded(parsed, value)
    return parsed


def format_datetime(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    text = value.astimezone(_UTC).isoformat(timespec="milliseconds")
    return text[:-6] + "Z"


def _is_optional(tp: Any) -> bool:
    return _columns.optional_inner(tp) is not None


def _optional_scalar(kind: type[Any]) -> Callable[[Any, Any], Any]:
    name = kind.__name__

    def hook(value: Any, _: Any) -> Any:
        if value is None or type(value) is kind:
            return value
        raise TypeError(f"expected {name} or null, got {type(value).__name__}")

    return hook


_fromisoformat = _dt.datetime.fromisoformat


def _optional_datetime(value: Any, _: Any) -> Optional[_dt.datetime]:
    # Five of these per webhook: the common case (3.11+, "...Z") is one C call, no more.
    if value is None:
        return None
    if _FROMISO_TAKES_Z and type(value) is str:
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            return parse_datetime(value)
        if parsed.tzinfo is not None:
            return parsed if len(value) <= _LONGEST_UNROUNDED else _rounded(parsed, value)
    return parse_datetime(value)


def _not_an_object(value: Any, name: str) -> Any:
    raise TypeError(f"expected a {name} object, got {type(value).__name__}")


def _model_parts(hook: Any) -> Optional[tuple[Callable[[Any, Any], Any], str]]:
    """The generated function and name behind one of our model hooks, to call it directly."""
    generated = getattr(hook, "generated", None)
    if generated is None or getattr(hook, "required", None) is not None:
        return None
    return generated, hook.model_name


# From this many items a list of models is structured column by column (see _columns):
# below it the passes per field cost more than they save (break-even measured at about 10
# full webhooks and 20 compact ones: `python benchmarks/columns.py`).
_COLUMNS_FROM = 16


def _list_hook(
    converter: cattrs.Converter,
    tp: Any,
    *,
    allow_none: bool,
    rows_of: Optional[dict[Any, _columns.Rows]] = None,
) -> Callable[[Any, Any], Any]:
    """One flat hook for ``list[X]`` (or ``Optional[list[X]]``): no call per layer.

    cattrs would happily iterate a string or a dict; Asana sends arrays.
    """
    (item_type,) = typing.get_args(tp) or (Any,)

    def not_a_list(value: Any) -> Any:
        raise TypeError(f"expected an array, got {type(value).__name__}")

    if item_type in (str, int, bool, float):
        name = item_type.__name__

        def scalars(value: Any, _: Any) -> Any:
            if value is None and allow_none:
                return None
            if type(value) is not list:
                return not_a_list(value)
            for v in value:
                if type(v) is not item_type:
                    raise TypeError(f"expected {name} items, got {type(v).__name__}")
            return list(value)

        return scalars

    item = converter.get_structure_hook(item_type)
    parts = _model_parts(item)
    if parts is not None:
        generated, model_name = parts
        rows = (rows_of or {}).get(item_type)

        def models(value: Any, _: Any) -> Any:
            if value is None and allow_none:
                return None
            if type(value) is not list:
                return not_a_list(value)
            if rows is not None and len(value) >= _COLUMNS_FROM:
                built = rows(value)
                if built is not None:
                    return built  # else cattrs decides, item by item
            return [
                generated(v, item_type) if type(v) is dict else _not_an_object(v, model_name)
                for v in value
            ]

        models.rows = rows  # type: ignore[attr-defined]  # for the tests: is there a column path?
        return models

    def items(value: Any, _: Any) -> Any:
        if value is None and allow_none:
            return None
        if type(value) is not list:
            return not_a_list(value)
        return [item(v, item_type) for v in value]

    return items


def _optional_hook_factory(
    converter: cattrs.Converter, rows_of: dict[Any, _columns.Rows]
) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        inner_type = _columns.optional_inner(tp)
        # The common shapes get one flat function each: a call saved per field adds up
        # to a third of the cost of a 100-webhook page.
        if inner_type in (str, int, bool, float):
            return _optional_scalar(inner_type)
        if inner_type is _dt.datetime:
            return _optional_datetime
        if typing.get_origin(inner_type) is list:
            return _list_hook(converter, inner_type, allow_none=True, rows_of=rows_of)
        inner = converter.get_structure_hook(inner_type)
        parts = _model_parts(inner)
        if parts is not None:
            generated, model_name = parts

            def model(value: Any, _: Any) -> Any:
                if value is None:
                    return None
                if type(value) is dict:
                    return generated(value, inner_type)
                return _not_an_object(value, model_name)

            return model

        def hook(value: Any, _: Any) -> Any:
            return None if value is None else inner(value, inner_type)

        return hook

    return factory


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list


def _list_hook_factory(
    converter: cattrs.Converter, rows_of: dict[Any, _columns.Rows]
) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        return _list_hook(converter, tp, allow_none=False, rows_of=rows_of)

    return factory


def _dict_hook(value: Any, _: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _keeps_unknown(model: type[Any]) -> bool:
    return issubclass(model, _models.KeepsUnknownKeys)


def _known_keys(model: type[Any]) -> frozenset[str]:
    """The JSON keys ``model`` declares."""
    keys = _RENAMES.get(model, {})
    return frozenset(keys.get(f.name, f.name) for f in attrs.fields(model))


def _with_unknown_keys(
    generated: Callable[[Any, Any], Any], model: type[Any]
) -> Callable[[Any, Any], Any]:
    """``generated`` (cattrs' hook, which ignores undeclared keys), keeping them aside."""
    known = _known_keys(model)
    keep = _models.keep_unknown_keys

    def structure(value: Any, tp: Any) -> Any:
        obj = generated(value, tp)
        if not known.issuperset(value):  # no allocation in the common case
            keep(obj, value, known)
        return obj

    return structure


def _objects_only(
    generated: Callable[[Any, Any], Any], model: type[Any]
) -> Callable[[Any, Any], Any]:
    # The generated hook tests keys with `in`, which a list or a string also answers:
    # without this check `"filters": ["abc"]` would quietly become an empty WebhookFilter.
    name = model.__name__

    # A listing without "data" would otherwise read as "no webhooks": a lookup before a
    # re-create would then miss the webhook that exists and make a duplicate.
    required = "data" if model is _models.GetWebhooks200Response else None

    def hook(value: Any, tp: Any) -> Any:
        if type(value) is not dict:
            raise TypeError(f"expected a {name} object, got {type(value).__name__}")
        if required is not None and required not in value:
            raise KeyError(required)
        return generated(value, tp)

    # Exposed so the Optional and list hooks can call the generated function directly.
    hook.generated = generated  # type: ignore[attr-defined]
    hook.model_name = name  # type: ignore[attr-defined]
    hook.required = required  # type: ignore[attr-defined]
    return hook


_MODELS: tuple[type[Any], ...] = (
    _models.AsanaNamedResource,
    _models.WebhookFilter,
    _models.WebhookResponse,
    _models.NextPage,
    _models.WebhookRequest,
    _models.WebhookUpdateRequest,
    _models.CreateWebhookRequest,
    _models.UpdateWebhookRequest,
    _models.CreateWebhook201Response,
    _models.GetWebhook200Response,
    _models.GetWebhooks200Response,
    _models.EmptyResponse,
    Error,
    ErrorResponse,
)

# Where a JSON key is not a Python name.
_RENAMES: dict[type[Any], dict[str, str]] = {
    _models.CreateWebhook201Response: {"x_hook_secret": "X-Hook-Secret"},
}


def make_converter(
    converter: Optional[cattrs.Converter] = None,
    *,
    detailed_validation: bool = False,
    columns: bool = True,
) -> cattrs.Converter:
    """Return ``converter`` (or a new one) with the hooks for every asana_webhooks model.

    Nothing global is touched, so an application can add our hooks to its own converter.
    Keys a model does not declare (Asana adds fields) go to its ``additional_properties``;
    ``None`` fields, and those unknown keys, are left out of requests.

    With ``columns`` (the default), a list of 16 or more webhooks, filters or resources is
    structured a field at a time across the whole list, in C loops, which takes about a third
    less CPU for a page of 100; anything unusual in it is left to the hooks, item by item, so
    the result is the same either way. ``detailed_validation`` (paths in error messages)
    always goes item by item.
    """
    c = converter or cattrs.Converter(detailed_validation=detailed_validation)
    # Filled model by model below: _MODELS lists a model before any that holds a list of it.
    rows_of: dict[Any, _columns.Rows] = {}
    for kind in (str, int, bool, float):
        c.register_structure_hook(kind, _expect(kind))
    c.register_structure_hook(_dt.datetime, parse_datetime)
    c.register_unstructure_hook(_dt.datetime, format_datetime)
    c.register_structure_hook_func(lambda tp: tp == dict[str, Any], _dict_hook)
    c.register_structure_hook_factory(_is_list, _list_hook_factory(c, rows_of))
    c.register_structure_hook_factory(_is_optional, _optional_hook_factory(c, rows_of))
    for model in _MODELS:
        keys = _RENAMES.get(model, {})
        renames: dict[str, Any] = {name: override(rename=key) for name, key in keys.items()}
        generated: Callable[[Any, Any], Any] = make_dict_structure_fn(
            model, c, _cattrs_detailed_validation=detailed_validation, **renames
        )
        if _keeps_unknown(model):
            generated = _with_unknown_keys(generated, model)
        c.register_structure_hook(model, _objects_only(generated, model))
        if columns and not detailed_validation:
            rows = _rows_for(c, model, keys, rows_of)
            if rows is not None:
                rows_of[model] = rows
        c.register_unstructure_hook(
            model, make_dict_unstructure_fn(model, c, _cattrs_omit_if_default=True, **renames)
        )
    return c


def _rows_for(
    c: cattrs.Converter, model: type[Any], keys: dict[str, str], rows_of: dict[Any, Any]
) -> Optional[_columns.Rows]:
    columns = {
        field.name: (
            keys.get(field.name, field.name),
            _columns.column_for(
                field.type,
                c.get_structure_hook(field.type),
                rows_of,
                longest_unrounded=_LONGEST_UNROUNDED,
            ),
        )
        for field in attrs.fields(attrs.resolve_types(model))
    }
    return _columns.rows_for(model, columns, _known_keys(model) if _keeps_unknown(model) else None)


_FAST = make_converter()
_DETAILED: Optional[cattrs.Converter] = None


def _describe_failure(data: Any, cls: type[Any]) -> str:
    """Re-run a failed structuring with detailed validation, for a message that names the path."""
    global _DETAILED
    if _DETAILED is None:
        _DETAILED = make_converter(detailed_validation=True)
    try:
        _DETAILED.structure(data, cls)
    except Exception as exc:
        try:
            messages = cattrs.transform_error(exc, path="$")
        except Exception:
            messages = [f"{type(exc).__name__}: {exc}"]
        shown = "; ".join(messages[:5])
        more = f" (and {len(messages) - 5} more)" if len(messages) > 5 else ""
        return f"not a valid {cls.__name__}: {shown}{more}"
    return f"not a valid {cls.__name__}"


def structure(data: Any, cls: type[T]) -> T:
    """Build ``cls`` from decoded JSON; any mismatch raises ``InvalidResponseError``."""
    try:
        return _FAST.structure(data, cls)
    except Exception as exc:
        raise InvalidResponseError(_describe_failure(data, cls)) from exc


def unstructure(obj: Any) -> Any:
    """A model as plain JSON-ready data (dates as ISO strings, unset fields left out)."""
    return _FAST.unstructure(obj)


def loads_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise InvalidResponseError("body is JSON nested too deeply to read") from None
    except (ValueError, TypeError) as exc:
        raise InvalidResponseError(f"body is not JSON ({describe_body(body)})") from exc


def describe_body(body: bytes) -> str:
    """What a body that is not JSON looks like, for an error message: its first 40 bytes,
    unless it carries an ``X-Hook-Secret`` (a create's answer does), which is never shown."""
    if not body:
        return "empty body"
    if b"hook-secret" in body.lower():
        return f"{len(body)} bytes, not shown: they carry an X-Hook-Secret"
    head = body[:40].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page, probably from a proxy"
    return f"{len(body)} bytes starting {body[:40]!r}"


# --- the msgspec fast path -------------------------------------------------------------

_DECODERS: dict[type[Any], Any] = {}

_DATETIME_FIELDS = tuple(
    f.name for f in attrs.fields(_models.WebhookResponse) if "datetime" in str(f.type)
)


_datetimes_of = operator.attrgetter(*_DATETIME_FIELDS)
_tzinfo_of = operator.attrgetter("tzinfo")


def _all_aware(webhooks: Iterable[_models.WebhookResponse]) -> bool:
    """No date-time without an offset among them (msgspec reads those, cattrs refuses them).

    The loops run in C: a datetime is always true, so ``filter(None, ...)`` drops only the
    missing ones. A Python loop over the fields cost a fifth of the fast path on a page.
    """
    values = itertools.chain.from_iterable(map(_datetimes_of, webhooks))
    return None not in set(map(_tzinfo_of, filter(None, values)))


# msgspec ignores keys an attrs class does not declare, and cannot keep them aside. So a
# second, cheaper decode of the same body looks at the keys: into structs that mirror the
# models' keys and refuse any other (declared values are skipped as raw JSON, not read).
# A key it refuses is learned, once, for the model it was found on: from then on the
# structs read it too, and its values are handed to the models. So a key Asana sends on
# every webhook costs a dictionary per webhook, not a trip through cattrs per page.
_NATIVE = (bool, int)  # read without allocating: cheaper to check than to skip as raw JSON
_MOST_LEARNED = 16  # unknown keys learned per model; past that, cattrs reads such bodies
_UNKNOWN_FIELD = re.compile(
    r"Object contains unknown field `(.*?)`(?: - at `\$((?:\.\w+|\[\d+\])*)`)?"
)
_PATH_STEP = re.compile(r"\.(\w+)|\[\d+\]")


def _model_in(tp: Any) -> Optional[type[Any]]:
    """The model a field holds (alone, optional, or in a list), if any."""
    inner = _columns.optional_inner(tp) or tp
    if typing.get_origin(inner) is list:
        (inner,) = typing.get_args(inner)
    return inner if attrs.has(inner) else None


class _KeyCheck:
    """The key check of one response class, and what it has learned."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.learned: dict[type[Any], tuple[str, ...]] = {}
        self.lock = threading.Lock()
        # The decoder and the plans that go with its structs, swapped together.
        self.state = self._build()

    def _build(self) -> tuple[Any, dict[type[Any], Any]]:
        structs: dict[type[Any], Any] = {}
        plans: dict[type[Any], Any] = {}
        return msgspec.json.Decoder(self._struct(self.cls, structs, plans)), plans

    def _type(self, tp: Any, structs: dict[type[Any], Any], plans: dict[type[Any], Any]) -> Any:
        inner = _columns.optional_inner(tp) or tp
        model = _model_in(tp)
        if model is not None:
            struct = self._struct(model, structs, plans)
            return Optional[list[struct]] if typing.get_origin(inner) is list else Optional[struct]  # type: ignore[valid-type]
        if inner in _NATIVE:
            return Optional[inner]
        return msgspec.Raw

    def _struct(
        self, model: type[Any], structs: dict[type[Any], Any], plans: dict[type[Any], Any]
    ) -> Any:
        if model in structs:
            return structs[model]
        keys = _RENAMES.get(model, {})
        fields = attrs.fields(attrs.resolve_types(model))
        declared = [
            (f"k{i}", self._type(f.type, structs, plans), None) for i, f in enumerate(fields)
        ]
        learned = self.learned.get(model, ())
        extra = [(f"x{i}", Any, msgspec.UNSET) for i in range(len(learned))]
        structs[model] = msgspec.defstruct(
            f"{model.__name__}Keys",
            declared + extra,
            rename={
                **{f"k{i}": keys.get(f.name, f.name) for i, f in enumerate(fields)},
                **{f"x{i}": key for i, key in enumerate(learned)},
            },
            forbid_unknown_fields=True,
            gc=False,
        )
        # How to hand learned values to the models: this model's keys, and the fields
        # leading to models that learned some (the rest of the tree is not walked).
        nested = [
            (f.name, f"k{i}", typing.get_origin(_columns.optional_inner(f.type) or f.type) is list)
            for i, f in enumerate(fields)
            if _model_in(f.type) in plans
        ]
        if learned or nested:
            plans[model] = (tuple((f"x{i}", key) for i, key in enumerate(learned)), nested)
        return structs[model]

    def _learn(self, message: str) -> bool:
        """Learn the key a refusal names, for the model at its path; False if it cannot."""
        found = _UNKNOWN_FIELD.fullmatch(message)
        if found is None:
            return False
        key, path = found.groups()
        model: Optional[type[Any]] = self.cls
        for step in _PATH_STEP.finditer(path or ""):
            name = step.group(1)
            if name is None or model is None:
                continue  # a list index: the same model
            python_names = {json_key: attr for attr, json_key in _RENAMES.get(model, {}).items()}
            field = attrs.fields_dict(attrs.resolve_types(model)).get(python_names.get(name, name))
            model = _model_in(field.type) if field is not None else None
        if model is None or not issubclass(model, _models.KeepsUnknownKeys):
            return False
        with self.lock:
            learned = self.learned.get(model, ())
            if key in learned or len(learned) >= _MOST_LEARNED:
                return False  # learning it again would not help: msgspec spells it otherwise
            self.learned[model] = (*learned, key)
            try:
                self.state = self._build()
            except (ValueError, TypeError):  # msgspec cannot name a field so (a quote, say)
                self.learned[model] = learned
                return False
        return True

    def read(self, body: bytes) -> Optional[tuple[Any, dict[type[Any], Any]]]:
        """The body's keys and how to hand the learned ones over, or None when the body
        must go to cattrs. Learns the keys it meets on the way."""
        for _ in range(_MOST_LEARNED):
            decoder, plans = self.state
            try:
                return decoder.decode(body), plans
            except msgspec.ValidationError as exc:
                if not self._learn(str(exc)):
                    return None
            except (msgspec.DecodeError, RecursionError):
                return None
        return None


def _hand_over(obj: Any, keys: Any, model: type[Any], plans: dict[type[Any], Any]) -> None:
    plan = plans.get(model)
    if plan is None:
        return
    extra, nested = plan
    unknown = {
        key: value for attr, key in extra if (value := getattr(keys, attr)) is not msgspec.UNSET
    }
    if unknown:
        obj._unknown_keys = unknown
    for name, attr, is_list in nested:
        child, child_keys = getattr(obj, name), getattr(keys, attr)
        if child is None or child_keys is None:
            continue
        if is_list:
            for item, item_keys in zip(child, child_keys):
                _hand_over(item, item_keys, type(item), plans)
        else:
            _hand_over(child, child_keys, type(child), plans)


_KEY_CHECKS: dict[type[Any], _KeyCheck] = {}


def _fast_decode(body: bytes, cls: type[T]) -> Optional[T]:
    """msgspec straight into our attrs classes, or None when cattrs must decide.

    cattrs stays the converter of record: whenever msgspec refuses a body, or would accept
    something cattrs does not (a date-time without an offset), or the body has keys the
    models do not declare, the caller falls back to it. Both read every date-time they
    accept alike (see ``_rounded``).
    """
    check = _KEY_CHECKS.get(cls)
    if check is None:
        check = _KEY_CHECKS[cls] = _KeyCheck(cls)
    # The keys first, and dropped at once unless some were learned: the collector then
    # never sees their containers alive beside the models (one more collection per call).
    read = check.read(body)
    if read is None:
        return None
    keys, plans = read if read[1] else (None, None)
    del read
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
    try:
        obj = decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    data = getattr(obj, "data", None)
    if cls is _models.GetWebhooks200Response and not data:
        return None  # an empty page, or no "data" at all: cattrs tells them apart
    if isinstance(data, list):
        if not _all_aware(data):
            return None
    elif isinstance(data, _models.WebhookResponse) and not _all_aware((data,)):
        return None
    if plans:
        _hand_over(obj, keys, cls, plans)
    return typing.cast(T, obj)


#: The decode paths a caller can choose between; "auto" takes msgspec when it is installed.
FAST_PATH_AVAILABLE = msgspec is not None


def decode(body: bytes, cls: type[T], *, fast: bool = FAST_PATH_AVAILABLE) -> T:
    """Parse a response body into ``cls``; raises ``InvalidResponseError`` on any mismatch."""
    if fast and msgspec is not None and cls is not _models.CreateWebhook201Response:
        obj = _fast_decode(body, cls)
        if obj is not None:
            return obj
        # msgspec reads JSON into the same values as json.loads, twice as fast; what it
        # refuses (NaN, 1e400, a lone surrogate) json.loads decides.
        try:
            data = msgspec.json.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass
        else:
            return structure(data, cls)
    return structure(loads_json(body), cls)
