"""The control endpoint of a running stand-in: ``/_fake/...`` beside ``/api/1.0``.

It lets another process (the ``asana-webhooks fake`` subcommands, ``FakeAsanaControl``, a
test in another language) do what a test does in-process with ``FakeAsana``'s methods: make
events happen, send heartbeats, advance the clock, drop deliveries, take targets offline.
It needs the stand-in's token (``Authorization: Bearer <token>``), takes and gives JSON, and
is never subject to the API's injected faults or rate limit, nor recorded in ``requests``.

==========================  ===============================================================
``GET  /_fake/status``      the clock, webhooks (with ``pending`` events), offline targets
``POST /_fake/deliver``     ``{"webhook"?, "resource"?, "count"?, "seed"?, "events"?}``
``POST /_fake/heartbeat``   ``{"webhook"?}`` (default: every webhook)
``POST /_fake/advance``     ``{"seconds"}``
``POST /_fake/drop``        ``{"count"?, "fraction"?, "seed"?, "heartbeats"?}``
``POST /_fake/offline``     ``{"target", "seconds"?}``
``POST /_fake/online``      ``{"target"?}`` (default: every target)
``POST /_fake/reset``       forget webhooks, events, faults and records
==========================  ===============================================================
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any, Callable, Optional

from asana_webhooks.testing._deliveries import Delivery
from asana_webhooks.testing._ids import format_time
from asana_webhooks.testing._records import Headers
from asana_webhooks.testing._responses import ApiError, Response, error_response, json_response

if TYPE_CHECKING:
    from asana_webhooks.testing._fake import FakeAsana

CONTROL_PATH = "/_fake"

#: At most this many generated events per control call (a typo should not send a million).
MAX_GENERATED = 10_000


def _optional(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ApiError(400, f"{name}: must be {what}, not {json.dumps(value)}")
    return value


def _gid(body: dict[str, Any], name: str) -> Optional[str]:
    value = _optional(body, name, str, "a gid string")
    if value is not None and not value.isdigit():
        raise ApiError(400, f"{name}: Not a recognized ID: {value}")
    return value  # type: ignore[no-any-return]


def _outcomes(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    return [delivery.to_json() for delivery in deliveries]


class Control:
    """Answers ``/_fake/...`` requests for one ``FakeAsana``."""

    def __init__(self, fake: FakeAsana) -> None:
        self._fake = fake
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "status"): lambda _: self._status(),
            ("POST", "deliver"): self._deliver,
            ("POST", "heartbeat"): self._heartbeat,
            ("POST", "advance"): self._advance,
            ("POST", "drop"): self._drop,
            ("POST", "offline"): self._offline,
            ("POST", "online"): self._online,
            ("POST", "reset"): self._reset,
        }

    def handle(self, method: str, path: str, headers: Headers, body: bytes) -> Response:
        try:
            self._authenticate(headers)
            name = path[len(CONTROL_PATH) :].strip("/")
            allowed = [verb for verb, route in self._routes if route == name]
            if not allowed:
                raise ApiError(404, f"No control operation {name!r}; see GET {CONTROL_PATH}/status")
            if method not in allowed:
                raise ApiError(405, f"Use {allowed[0]} for {path}", (("Allow", allowed[0]),))
            return json_response(200, {"data": self._routes[method, name](self._body(body))})
        except ApiError as exc:
            return error_response(exc.status, exc.message, headers=exc.headers)
        except (KeyError, ValueError) as exc:
            # The stand-in's own checks (an unknown webhook, a negative count) say what is wrong.
            status = 404 if isinstance(exc, KeyError) else 400
            return error_response(status, str(exc.args[0]) if exc.args else str(exc))

    def _authenticate(self, headers: Headers) -> None:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        expected = self._fake.access_token.encode("utf-8")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode("utf-8", "replace"), expected
        ):
            raise ApiError(401, "Not Authorized")

    @staticmethod
    def _body(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            payload = json.loads(body.decode("utf-8"))
        except ValueError:
            raise ApiError(400, "The body is not JSON") from None
        if not isinstance(payload, dict):
            raise ApiError(400, "The body must be a JSON object")
        return payload

    # --- operations -----------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        fake = self._fake
        offline = fake._app.deliveries.offline_targets()
        with fake._app.store.lock:
            webhooks = [
                {**webhook.full(), "pending": len(webhook.pending)}
                for webhook in fake._app.store.webhooks.values()
            ]
        return {
            "now": format_time(fake.now()),
            "clock_offset": fake._app.clock.offset.total_seconds(),
            "workspace": fake.workspace_gid,
            "webhooks": webhooks,
            "offline": {target: format_time(until) for target, until in offline.items()},
            "deleted_webhooks": fake.deleted_webhooks,
            "deliveries": len(fake.deliveries),
        }

    def _deliver(self, body: dict[str, Any]) -> dict[str, Any]:
        fake = self._fake
        webhook = _gid(body, "webhook")
        resource = _gid(body, "resource")
        count = _optional(body, "count", int, "a whole number")
        seed = _optional(body, "seed", int, "a whole number")
        events = _optional(body, "events", list, "a list of events")
        if webhook is not None and resource is not None:
            raise ApiError(400, "Give webhook or resource, not both")
        if events is not None and not all(isinstance(event, dict) for event in events):
            raise ApiError(400, "events: every event must be a JSON object")
        count = 1 if count is None else count
        if not 1 <= count <= MAX_GENERATED:
            raise ApiError(400, f"count: must be from 1 to {MAX_GENERATED}, not {count}")
        if webhook is not None:
            target = fake.get_webhook(webhook)
            if target is None:
                raise ApiError(404, f"webhook: Unknown object: {webhook}")
            if events is None:
                events = fake._generator_for(target["resource"]["gid"], seed).next(count)
            _, outcome = fake._app.deliveries.deliver_logged(webhook, events, None)
            return {"deliveries": _outcomes([outcome]), "events": events}
        if events is not None:
            return {"deliveries": _outcomes(fake.emit(events)), "events": events}
        if resource is not None:
            resources = [resource]
        else:
            resources = list(dict.fromkeys(hook["resource"]["gid"] for hook in fake.webhooks))
            if not resources:
                raise ApiError(404, "There are no webhooks to deliver to: create one first")
        generated: list[dict[str, Any]] = []
        outcomes: list[Delivery] = []
        for gid in resources:
            events, done = fake._generate(gid, count, seed, 1)
            generated.extend(events)
            outcomes.extend(done)
        return {"deliveries": _outcomes(outcomes), "events": generated}

    def _heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        fake = self._fake
        webhook = _gid(body, "webhook")
        gids = [webhook] if webhook is not None else [hook["gid"] for hook in fake.webhooks]
        outcomes = [fake._app.deliveries.deliver_logged(gid, [], None)[1] for gid in gids]
        return {"deliveries": _outcomes(outcomes)}

    def _advance(self, body: dict[str, Any]) -> dict[str, Any]:
        seconds = _optional(body, "seconds", float, "a number of seconds")
        if seconds is None:
            raise ApiError(400, "seconds: Missing input")
        done = self._fake.advance(seconds)
        return {"now": format_time(self._fake.now()), "deliveries": _outcomes(done)}

    def _drop(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fake.drop_deliveries(
            _optional(body, "count", int, "a whole number"),
            fraction=_optional(body, "fraction", float, "a number from 0 to 1"),
            seed=_optional(body, "seed", int, "a whole number"),
            heartbeats=bool(_optional(body, "heartbeats", bool, "true or false")),
        )
        return {}

    def _offline(self, body: dict[str, Any]) -> dict[str, Any]:
        target = _optional(body, "target", str, "a target URL")
        if not target:
            raise ApiError(400, "target: Missing input")
        self._fake.take_offline(target, _optional(body, "seconds", float, "a number of seconds"))
        return {}

    def _online(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fake.bring_online(_optional(body, "target", str, "a target URL"))
        return {}

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        self._fake.reset()
        return {}
