"""The Asana webhooks API as FakeAsana serves it: auth, routing, the five operations, handshake
and deliveries. No sockets here except the outbound calls to targets; ``_server`` does the HTTP.

Messages copied from Asana (sources in docs/ASANA-WEBHOOKS.md) are marked; the others are
GUESSES at Asana's wording, written to say clearly what was wrong.
"""

from __future__ import annotations

import collections
import datetime
import hmac
import json
import logging
import secrets
import threading
from typing import Any, Callable, Deque, Mapping, Optional, Sequence
from urllib.parse import parse_qs, urlencode

import attrs

from asana_webhooks.testing import _outbound
from asana_webhooks.testing._clock import FakeClock
from asana_webhooks.testing._deliveries import Deliveries
from asana_webhooks.testing._events import EVENT_ACTIONS
from asana_webhooks.testing._faults import FaultPlan
from asana_webhooks.testing._ids import utc_now
from asana_webhooks.testing._oauth import OAuthServer
from asana_webhooks.testing._offsets import OffsetCodec, OffsetError
from asana_webhooks.testing._records import Headers, OutboundCall, RecordedRequest
from asana_webhooks.testing._responses import (
    RATE_LIMIT_MESSAGE,
    ApiError,
    Response,
    error_response,
    json_response,
)
from asana_webhooks.testing._state import (
    HIGHER_LEVEL_TYPES,
    DuplicateWebhookError,
    Resource,
    Store,
    Webhook,
)
from asana_webhooks.testing._streams import (
    EVENTS_PER_PAGE,
    SYNC_MESSAGE,
    WORKSPACE_EVENTS_PER_PAGE,
    EventStreams,
    SyncTokenError,
)

logger = logging.getLogger("asana_webhooks.testing")

BASE_PATH = "/api/1.0"

# Seen from the real API (n8n-io/n8n issues #133 and #946, Asana/node-asana #269).
DUPLICATE_MESSAGE = (
    "Duplicated webhook. You already have an existing webhook for the given resource and "
    "target. Delete the old one before creating another."
)
NO_ROUTE_MESSAGE = "No matching route for request"
# GUESS at Asana's wording for a known path asked with a method it does not serve.
METHOD_NOT_ALLOWED_MESSAGE = "The method {method} is not allowed on this path; use {allowed}"
MISSING_RESOURCE_MESSAGE = "You should specify one of resource"
# From Asana's errors docs ("API limits": unpaginated results are cut at about 1,000 objects).
TOO_LARGE_MESSAGE = (
    "The result is too large. You should use pagination (may require specifying a workspace)!"
)
NOT_AUTHORIZED_MESSAGE = "Not Authorized"
HANDSHAKE_FAILED_MESSAGE = (
    "Could not complete activation handshake with target URL. Please ensure that the "
    "receiving server is accepting connections and supports SSL"
)
LOCALHOST_REFUSED_MESSAGE = "target: Invalid hostnames like localhost are not allowed"

#: Without ``limit``, Asana truncates lists at about 1,000 objects; we refuse instead.
MAX_UNPAGINATED = 1000
MAX_LIMIT = 100
MAX_RECORDS = 10_000
_ONE_MILLISECOND = datetime.timedelta(milliseconds=1)

_FILTER_KEYS = ("resource_type", "resource_subtype", "action", "fields")

Clock = Callable[[], datetime.datetime]

#: The paths the stand-in knows, by shape, and the methods each serves (for 405's ``Allow``).
_ROUTES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("webhooks",), ("GET", "POST")),
    (("webhooks", "{gid}"), ("GET", "PUT", "DELETE")),
    (("events",), ("GET",)),
    (("workspaces", "{gid}", "events"), ("GET",)),
)


def _allowed_methods(segments: Sequence[str]) -> Optional[tuple[str, ...]]:
    """The methods served on a path, or ``None`` for a path the stand-in does not know."""
    for shape, methods in _ROUTES:
        if len(shape) == len(segments) and all(
            (part == "{gid}" and bool(segment)) or part == segment
            for part, segment in zip(shape, segments)
        ):
            return methods
    return None


@attrs.frozen
class ApiRequest:
    method: str
    raw_path: str
    path: str  # relative to BASE_PATH, without the query; "" when outside BASE_PATH
    query: Mapping[str, Sequence[str]]
    headers: Headers
    body: bytes


def split_base_path(url_path: str) -> Optional[str]:
    """``/api/1.0/webhooks/1`` -> ``/webhooks/1``; ``None`` when not under the base path."""
    if url_path == BASE_PATH or url_path.startswith(BASE_PATH + "/"):
        return url_path[len(BASE_PATH) :] or "/"
    return None


def _first(query: Mapping[str, Sequence[str]], name: str) -> Optional[str]:
    values = query.get(name)
    return values[-1] if values else None


def _wants_pretty(query: Mapping[str, Sequence[str]]) -> bool:
    """Whether to indent the answer; ``?opt_pretty`` alone (``allowEmptyValue``) turns it on.

    Anything but a boolean is not even looked at here: ``_check_pretty`` refuses it, after the
    answer's own format is settled.
    """
    value = _first(query, "opt_pretty")
    return value is not None and value.lower() in ("", "true")


def _check_pretty(query: Mapping[str, Sequence[str]]) -> None:
    # The OAS types opt_pretty as a boolean: "true", "false" or, being allowEmptyValue, "".
    for value in query.get("opt_pretty", ()):
        if value.lower() not in ("", "true", "false"):
            # GUESS at Asana's wording; the shape is its usual 400.
            raise ApiError(400, f"opt_pretty: Not a boolean: {value}")


def _opt_fields(query: Mapping[str, Sequence[str]]) -> set[str]:
    # style=form, explode=false: one comma-separated value; repeated parameters are accepted too.
    return {
        field.strip()
        for value in query.get("opt_fields", ())
        for field in value.split(",")
        if field.strip()
    }


def _check_gid(name: str, value: str) -> None:
    if not value.isdigit():
        raise ApiError(400, f"{name}: Not a recognized ID: {value}")


def _gid_value(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: Not a recognized ID: {json.dumps(value)}")
    _check_gid(name, value)
    return value


def _request_data(request: ApiRequest) -> dict[str, Any]:
    """The object inside the ``{"data": ...}`` envelope."""
    content_type = request.headers.get("Content-Type", "").lower()
    if "application/x-www-form-urlencoded" in content_type:
        # Asana's own curl example sends resource=...&target=... as a form.
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[-1] for key, values in form.items()}
    if not request.body.strip():
        raise ApiError(400, "data: Missing input")
    try:
        payload = json.loads(request.body.decode("utf-8"))
    except ValueError:
        raise ApiError(400, "Could not parse request data, invalid JSON") from None
    if not isinstance(payload, dict) or "data" not in payload:
        raise ApiError(400, "data: Missing input")
    data = payload["data"]
    if not isinstance(data, dict):
        raise ApiError(400, "data: Value is not an object")
    return data


def normalize_filters(value: Any, resource: Resource) -> list[dict[str, Any]]:
    """Check ``filters`` as the OAS describes ``WebhookFilter``; return them with every key."""
    if value is None:
        value = []
    if not isinstance(value, list):
        raise ApiError(400, "filters: Value is not an array")
    higher_level = resource.resource_type in HIGHER_LEVEL_TYPES
    normalized: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"filters[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}: Value is not an object")
        for key in item:
            if key not in _FILTER_KEYS:
                raise ApiError(400, f"{where}.{key}: Unknown property")
        for key in ("resource_type", "resource_subtype", "action"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise ApiError(400, f"{where}.{key}: Value is not a string")
        action = item.get("action")
        if action is not None and action not in EVENT_ACTIONS:
            raise ApiError(400, f"{where}.action: Not one of {', '.join(EVENT_ACTIONS)}")
        fields = item.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise ApiError(400, f"{where}.fields: Value is not an array of strings")
            if action != "changed":
                raise ApiError(400, f"{where}.fields: Only valid for the action changed")
            if higher_level:
                raise ApiError(
                    400, f"{where}.fields: Not supported on {resource.resource_type} webhooks"
                )
        normalized.append({key: item.get(key) for key in _FILTER_KEYS})
    if higher_level and not normalized:
        raise ApiError(400, f"filters: Webhooks on a {resource.resource_type} must specify filters")
    return normalized


def _handshake_problem(call: OutboundCall, secret: str) -> Optional[str]:
    """Why a handshake failed, or ``None`` when the target echoed the secret with 200/204."""
    if call.status == 0:
        return call.error or "no response from the target"
    if call.status not in (200, 204):
        return f"the target answered {call.status} {call.reason} (200 or 204 is required)"
    echoed = call.response_headers.get("X-Hook-Secret")
    if echoed is None:
        return f"the target answered {call.status} without an X-Hook-Secret header"
    if not hmac.compare_digest(echoed.encode("utf-8", "replace"), secret.encode("ascii")):
        return "the target echoed an X-Hook-Secret different from the one sent"
    return None


def _list_renderer(fields: set[str]) -> Callable[[Webhook], dict[str, Any]]:
    """Compact items by default; ``opt_fields`` adds the named (top-level) fields."""
    wanted = {field.split(".")[0] for field in fields}

    def render(webhook: Webhook) -> dict[str, Any]:
        item = webhook.compact()
        if wanted - item.keys():
            full = webhook.full()
            item.update({key: full[key] for key in wanted if key in full})
        return item

    return render


class AsanaApp:
    """State and behaviour of the fake; every public method is thread-safe."""

    def __init__(
        self,
        *,
        access_token: str,
        workspace_gid: str,
        workspace_name: str,
        handshake_timeout: float,
        delivery_timeout: float,
        refuse_loopback_targets: bool,
        clock: Clock,
    ) -> None:
        self.access_token = access_token
        self.handshake_timeout = handshake_timeout
        self.delivery_timeout = delivery_timeout
        self.refuse_loopback_targets = refuse_loopback_targets
        self.clock = FakeClock(clock)
        self.store = Store(workspace_gid, workspace_name)
        self.streams = EventStreams(self.clock)
        self.offsets = OffsetCodec()
        self.faults = FaultPlan()
        self.base_url = ""  # set by the server once it knows its port
        self.oauth = OAuthServer(lambda: self.base_url)
        self._records_lock = threading.Lock()
        self.requests: Deque[RecordedRequest] = collections.deque(maxlen=MAX_RECORDS)
        self.outbound: Deque[OutboundCall] = collections.deque(maxlen=MAX_RECORDS)
        self.deliveries = Deliveries(
            store=self.store,
            streams=self.streams,
            clock=self.clock,
            record_outbound=self.record_outbound,
            delivery_timeout=lambda: self.delivery_timeout,
        )

    # --- bookkeeping -------------------------------------------------------------------

    def record_request(self, record: RecordedRequest) -> None:
        with self._records_lock:
            self.requests.append(record)

    def record_outbound(self, call: OutboundCall) -> None:
        with self._records_lock:
            self.outbound.append(call)

    def snapshot_requests(self) -> list[RecordedRequest]:
        with self._records_lock:
            return list(self.requests)

    def snapshot_outbound(self) -> list[OutboundCall]:
        with self._records_lock:
            return list(self.outbound)

    def clear_records(self) -> None:
        with self._records_lock:
            self.requests.clear()
            self.outbound.clear()

    # --- the HTTP API --------------------------------------------------------------------

    def handle(self, request: ApiRequest) -> tuple[Response, Optional[str]]:
        """Answer one API request; never raises. The second item names a fault, if any."""
        pretty = _wants_pretty(request.query)
        try:
            self._authenticate(request.headers)
            retry_after = self.faults.check_rate_limit()
            if retry_after is not None:
                headers = (("Retry-After", retry_after),)
                return error_response(429, RATE_LIMIT_MESSAGE, pretty=pretty, headers=headers), (
                    "rate_limit"
                )
            _check_pretty(request.query)
            return self._route(request, pretty), None
        except SyncTokenError as exc:
            # Asana's documented 412 body: the message and, beside "errors", a fresh token.
            payload = {"errors": [{"message": SYNC_MESSAGE}], "sync": exc.fresh}
            return json_response(412, payload, pretty=pretty), None
        except ApiError as exc:
            return error_response(exc.status, exc.message, pretty=pretty, headers=exc.headers), None
        except Exception:
            logger.exception("FakeAsana failed on %s %s", request.method, request.path)
            return error_response(500, pretty=pretty), None

    def _authenticate(self, headers: Headers) -> None:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.oauth.authenticate(token.strip()):
            return  # an OAuth access token it issued (an expired one raised a 401)
        given = token.strip().encode("utf-8", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given, self.access_token.encode("utf-8")
        ):
            raise ApiError(401, NOT_AUTHORIZED_MESSAGE)

    def _route(self, request: ApiRequest, pretty: bool) -> Response:
        segments = request.path.strip("/").split("/")
        # HEAD is a GET without the body (the server leaves the body out).
        method = "GET" if request.method == "HEAD" else request.method
        allowed = _allowed_methods(segments)
        if allowed is None:
            raise ApiError(404, NO_ROUTE_MESSAGE)
        if method not in allowed:
            shown = ", ".join(allowed)
            message = METHOD_NOT_ALLOWED_MESSAGE.format(method=request.method, allowed=shown)
            raise ApiError(405, message, headers=(("Allow", shown),))
        if segments == ["events"]:
            return self._events(request, pretty)
        if segments[0] == "workspaces":
            return self._workspace_events(segments[1], request, pretty)
        if segments == ["webhooks"]:
            if method == "GET":
                return self._list(request, pretty)
            if method == "POST":
                return self._create(request, pretty)
        elif len(segments) == 2 and segments[0] == "webhooks" and segments[1]:
            webhook_gid = segments[1]
            if method == "GET":
                return self._get(webhook_gid, pretty)
            if method == "PUT":
                return self._update(webhook_gid, request, pretty)
            if method == "DELETE":
                return self._delete(webhook_gid, pretty)
        raise ApiError(404, NO_ROUTE_MESSAGE)

    def _events(self, request: ApiRequest, pretty: bool) -> Response:
        resource = _first(request.query, "resource")
        if not resource:
            raise ApiError(400, "resource: Missing input")
        _check_gid("resource", resource)
        return self._read_stream(resource, request, EVENTS_PER_PAGE, pretty)

    def _workspace_events(self, workspace: str, request: ApiRequest, pretty: bool) -> Response:
        _check_gid("workspace", workspace)
        if not self.store.is_workspace(workspace):
            raise ApiError(404, f"workspace: Unknown object: {workspace}")
        return self._read_stream(workspace, request, WORKSPACE_EVENTS_PER_PAGE, pretty)

    def _read_stream(self, stream: str, request: ApiRequest, limit: int, pretty: bool) -> Response:
        page = self.streams.read(stream, _first(request.query, "sync"), limit)
        data = [self._as_polled(event) for event in page.events]
        payload = {"data": data, "sync": page.sync, "has_more": page.has_more}
        return json_response(200, payload, pretty=pretty)

    def _as_polled(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event as ``/events`` shows it: the deprecated ``type`` too, and the resource's
        name when the stand-in knows it (webhook deliveries carry neither)."""
        polled = dict(event)
        resource = event.get("resource")
        if isinstance(resource, dict):
            polled["type"] = resource.get("resource_type")
            with self.store.lock:
                known = self.store.resources.get(str(resource.get("gid")))
            if known is not None and "name" not in resource:
                polled["resource"] = {**resource, "name": known.name}
        return polled

    def _list(self, request: ApiRequest, pretty: bool) -> Response:
        query = request.query
        workspace = _first(query, "workspace")
        if not workspace:
            raise ApiError(400, "workspace: Missing input")
        _check_gid("workspace", workspace)
        if not self.store.is_workspace(workspace):
            raise ApiError(404, f"workspace: Unknown object: {workspace}")
        resource = _first(query, "resource") or None
        if resource is not None:
            _check_gid("resource", resource)
        limit_text = _first(query, "limit")
        limit: Optional[int] = None
        if limit_text is not None:
            if not limit_text.strip().isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
                raise ApiError(400, f"limit: Must be between 1 and {MAX_LIMIT}, not {limit_text!r}")
            limit = int(limit_text)
        scope = f"{workspace}|{resource or ''}"
        offset = _first(query, "offset")
        after_seq = 0
        if offset:
            try:
                after_seq = self.offsets.decode(offset, scope)
            except OffsetError as exc:
                raise ApiError(400, str(exc)) from None
        items, last_seq, more = self.store.page(
            workspace, resource, after_seq, limit, _list_renderer(_opt_fields(query))
        )
        if limit is None and len(items) > MAX_UNPAGINATED:
            raise ApiError(400, TOO_LARGE_MESSAGE)
        payload: dict[str, Any] = {"data": items}
        if limit is not None:
            payload["next_page"] = (
                self._next_page(request, self.offsets.encode(last_seq, scope)) if more else None
            )
        return json_response(200, payload, pretty=pretty)

    def _next_page(self, request: ApiRequest, offset: str) -> dict[str, str]:
        params = [
            (name, value)
            for name, values in request.query.items()
            if name != "offset"
            for value in values
        ]
        params.append(("offset", offset))
        path = f"/webhooks?{urlencode(params, safe=',')}"
        return {"offset": offset, "path": path, "uri": f"{self.base_url}{path}"}

    def _get(self, webhook_gid: str, pretty: bool) -> Response:
        _check_gid("webhook", webhook_gid)
        with self.store.lock:
            webhook = self._existing(webhook_gid)
            return json_response(200, {"data": webhook.full()}, pretty=pretty)

    def _existing(self, webhook_gid: str) -> Webhook:
        webhook = self.store.webhooks.get(webhook_gid)
        if webhook is None:
            raise ApiError(404, f"webhook: Unknown object: {webhook_gid}")
        return webhook

    def _update(self, webhook_gid: str, request: ApiRequest, pretty: bool) -> Response:
        _check_gid("webhook", webhook_gid)
        data = _request_data(request)
        for key in ("resource", "target"):
            if key in data:
                raise ApiError(400, f"{key}: Cannot write this property; only filters can change")
        with self.store.lock:
            webhook = self._existing(webhook_gid)
            if "filters" in data:
                # PUT replaces the whole filters array (OAS updateWebhook).
                webhook.filters = normalize_filters(data["filters"], webhook.resource)
            return json_response(200, {"data": webhook.full()}, pretty=pretty)

    def _delete(self, webhook_gid: str, pretty: bool) -> Response:
        _check_gid("webhook", webhook_gid)
        with self.store.lock:
            self._existing(webhook_gid)
            del self.store.webhooks[webhook_gid]
        return json_response(200, {"data": {}}, pretty=pretty)

    def _create(self, request: ApiRequest, pretty: bool) -> Response:
        data = _request_data(request)
        if not data.get("resource"):
            raise ApiError(400, MISSING_RESOURCE_MESSAGE)
        resource_gid = _gid_value("resource", data["resource"])
        target = data.get("target")
        if not target:
            raise ApiError(400, "target: Missing input")
        if not isinstance(target, str):
            raise ApiError(400, "target: Not a valid URL")
        try:
            parsed = _outbound.parse_target(target)
        except _outbound.TargetRefused as exc:
            raise ApiError(400, str(exc)) from None
        loopback = _outbound.is_loopback_host(parsed.host)
        if loopback and self.refuse_loopback_targets:
            raise ApiError(403, LOCALHOST_REFUSED_MESSAGE)
        if not loopback:
            raise ApiError(
                400,
                "target: FakeAsana only delivers to loopback addresses "
                f"(127.0.0.0/8, ::1, localhost), not {parsed.host!r}",
            )
        resource = self.store.resource_for(resource_gid)
        filters = normalize_filters(data.get("filters"), resource)
        if self.store.find_duplicate(resource_gid, target) is not None:
            raise ApiError(403, DUPLICATE_MESSAGE)

        # The handshake runs with no lock held: the target may call us back meanwhile.
        started = self.clock()
        secret = secrets.token_hex(32)
        call = _outbound.post(
            "handshake",
            target,
            b"",
            {"X-Hook-Secret": secret},
            timeout=self.handshake_timeout,
        )
        self.record_outbound(call)
        problem = _handshake_problem(call, secret)
        if problem is not None:
            raise ApiError(400, f"{HANDSHAKE_FAILED_MESSAGE} (FakeAsana: {problem})")

        try:
            webhook = self.store.insert(resource, target, filters, secret, started)
        except DuplicateWebhookError:
            raise ApiError(403, DUPLICATE_MESSAGE) from None
        with self.store.lock:
            # The handshake was the first successful delivery: published real 201 answers show
            # "active": true, last_success_at just after created_at and last_failure_content "".
            webhook.last_success_at = max(self.clock(), started + _ONE_MILLISECOND)
            webhook.last_failure_content = ""
            created = webhook.full()
        location = (("Location", f"{self.base_url}/webhooks/{webhook.gid}"),)
        return json_response(
            201, {"data": created, "X-Hook-Secret": secret}, pretty=pretty, headers=location
        )

    # --- direct control from tests ---------------------------------------------------------

    def add_webhook(
        self,
        resource_gid: str,
        target: str,
        filters: Optional[list[dict[str, Any]]],
        secret: Optional[str],
    ) -> dict[str, Any]:
        _outbound.parse_target(target)
        resource = self.store.resource_for(resource_gid)
        try:
            checked = normalize_filters(filters, resource)
        except ApiError as exc:
            raise ValueError(exc.message) from None
        try:
            webhook = self.store.insert(
                resource, target, checked, secret or secrets.token_hex(32), self.clock()
            )
        except DuplicateWebhookError:
            raise ValueError(DUPLICATE_MESSAGE) from None
        with self.store.lock:
            return webhook.full()

    def deliver(
        self, webhook_gid: str, events: Sequence[Mapping[str, Any]], signature: Optional[str]
    ) -> OutboundCall:
        return self.deliveries.deliver_now(webhook_gid, events, signature)


def default_clock() -> datetime.datetime:
    return utc_now()
