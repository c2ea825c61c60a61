"""The receiving end of a webhook: answer the handshake, verify and dispatch deliveries.

Framework-agnostic: ``WebhookReceiver.handle_request`` takes the method, the target (URL or
path + query), the headers and the raw body bytes, and returns the status, headers and body
to answer with. The Flask and Django adapters in ``asana_webhooks.contrib`` only translate.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping, Optional, Sequence

import attrs

from asana_webhooks._events import Event, InvalidPayloadError, parse_events_raw
from asana_webhooks._inbox import Inbox
from asana_webhooks._metrics import ReceiverMetrics
from asana_webhooks._secrets import RecordsContact, SecretStore, target_key
from asana_webhooks._signature import verify_signature

logger = logging.getLogger("asana_webhooks")

#: The largest delivery body accepted, in bytes. Asana batches events, but a batch of compact
#: events is far below this; anything bigger is refused with 413 before it is read.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024

#: ``on_events(events, target)``: called once per delivery that carries events; ``target`` is
#: the ``target_key`` (path and query) the delivery came to. Raising makes Asana deliver again.
EventsHandler = Callable[[Sequence[Event], str], None]
#: ``on_handshake(target)``: told that a handshake for ``target`` was accepted and stored.
HandshakeHandler = Callable[[str], None]
#: ``on_stored(target, ids)``: told, after a delivery's new events were stored in the inbox,
#: their ids; a task-queue hand-off enqueues them. Raising does not change the answer.
StoredHandler = Callable[[str, Sequence[str]], None]

#: At most one record of a delivery per target per this many seconds, per receiver: the
#: watchdog needs hours of precision, and the hot path stays one store write lighter.
DEFAULT_CONTACT_INTERVAL = 60.0

_HOOK_SECRET = "x-hook-secret"  # noqa: S105  (a header name)
_HOOK_SIGNATURE = "x-hook-signature"
_MAX_SECRET_LENGTH = 1024


#: Headers whose values a repr must not show: a handshake's answer echoes the secret.
_SECRET_HEADERS = frozenset({"x-hook-secret", "x-hook-signature", "authorization"})


def _headers_repr(headers: Mapping[str, str]) -> str:
    shown = {
        name: "***" if name.lower() in _SECRET_HEADERS else value for name, value in headers.items()
    }
    return repr(shown)


@attrs.frozen
class ReceiverResponse:
    """What to answer Asana: an HTTP status, headers and a (short, plain-text) body.

    The repr shows ``X-Hook-Secret`` (echoed by an accepted handshake) as ``***``.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=_headers_repr)
    body: bytes = b""


def _plain(status: int, text: str, headers: Optional[Mapping[str, str]] = None) -> ReceiverResponse:
    all_headers = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
    return ReceiverResponse(status, all_headers, text.encode("utf-8") + b"\n")


class WebhookReceiver:
    """Answers Asana's requests for any number of webhooks, told apart by their target.

    * A handshake (``X-Hook-Secret`` header) is accepted only for a target the application
      announced (``establish_webhook`` does that), unless ``accept_unannounced_handshakes``
      is set, which then admits the first handshake of a target with no secret yet. An
      accepted handshake stores the secret and is answered 200 with the header echoed;
      any other gets 403 and stores nothing.
    * A delivery is checked against the target's secret over the raw body before anything
      parses it: no secret or a bad ``X-Hook-Signature`` is 401; a signed body that is not
      Asana's JSON is 400; a heartbeat (no events) is 200; otherwise ``on_events(events,
      target)`` is called once and the answer is 200, or 500 if it raised (Asana then
      delivers again, so make ``on_events`` idempotent).
    * With an ``inbox`` instead of ``on_events``, a delivery's events are stored in it (new
      ones only: a redelivery's are duplicates) *before* the 200, and no handler runs in
      the request: ``Worker`` hands them to the application. If storing fails the answer
      is 503, so that Asana delivers again; never a 200 for events not stored. After a
      store that added events, ``on_stored(target, ids)`` is called (a task-queue hand-off).
    * A body over ``max_body_bytes`` is 413; a method other than POST is 405.
    * If the store keeps a record of contact (``RecordsContact``: every store here does), each
      verified heartbeat is recorded, and accepted deliveries at most once per target per
      ``contact_interval`` seconds; ``webhook_health`` reads it to tell a silent webhook. A
      record that fails is logged and changes no answer.

    Secrets and signatures are never logged. The receiver keeps no state of its own but its
    counters (``metrics``): run one per process over a store (and inbox) they share.
    """

    def __init__(
        self,
        secret_store: SecretStore,
        on_events: Optional[EventsHandler] = None,
        *,
        accept_unannounced_handshakes: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_handshake: Optional[HandshakeHandler] = None,
        inbox: Optional[Inbox] = None,
        on_stored: Optional[StoredHandler] = None,
        contact_interval: float = DEFAULT_CONTACT_INTERVAL,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must not be negative, got {max_body_bytes!r}")
        if inbox is not None and on_events is not None:
            raise ValueError(
                "give the receiver on_events or an inbox, not both: with an inbox, run a "
                "Worker with your handler"
            )
        if on_stored is not None and inbox is None:
            raise ValueError("on_stored needs an inbox: it is told what the inbox stored")
        self.secret_store = secret_store
        self.on_events = on_events
        self.accept_unannounced_handshakes = accept_unannounced_handshakes
        self.max_body_bytes = max_body_bytes
        self.on_handshake = on_handshake
        self.inbox = inbox
        self.on_stored = on_stored
        self.metrics = ReceiverMetrics()
        self.contact_interval = float(contact_interval)
        self._contact_lock = threading.Lock()
        self._delivery_recorded: dict[str, float] = {}  # target key -> monotonic time

    def __repr__(self) -> str:
        inbox = f"inbox={self.inbox!r}, " if self.inbox is not None else ""
        return (
            f"WebhookReceiver({self.secret_store!r}, {inbox}"
            f"accept_unannounced_handshakes={self.accept_unannounced_handshakes!r}, "
            f"max_body_bytes={self.max_body_bytes!r})"
        )

    def reject_early(self, method: str, headers: Mapping[str, str]) -> Optional[ReceiverResponse]:
        """The answer to give before reading the body at all, or None to go on and read it.

        Adapters call this first, so a wrong method or an announced ``Content-Length`` over
        the limit is refused without reading a byte of the body.
        """
        if method.upper() != "POST":
            return self._refuse(
                "method", 405, "method not allowed: Asana webhooks POST", {"Allow": "POST"}
            )
        length = _header(headers, "content-length")
        if length is None:
            return None
        length = length.strip()
        if not length.isdigit() or not length.isascii():
            return self._refuse("bad_content_length", 400, "invalid Content-Length")
        if int(length) > self.max_body_bytes:
            return self._too_large()
        return None

    def handle_request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> ReceiverResponse:
        """Answer one HTTP request of any method: only POST is handled, the rest get 405."""
        early = self.reject_early(method, headers)
        if early is not None:
            return early
        return self.handle(target, headers, body)

    def handle(self, target: str, headers: Mapping[str, str], body: bytes) -> ReceiverResponse:
        """Answer one POST to ``target`` (a URL, or the path and query it came in on).

        Header names match in any case. Never raises for anything a request contains.
        """
        if len(body) > self.max_body_bytes:
            return self._too_large()
        key = target_key(target)
        lowered = {name.lower(): value for name, value in headers.items()}
        if _HOOK_SECRET in lowered:
            return self._handshake(key, lowered[_HOOK_SECRET])
        return self._delivery(key, lowered.get(_HOOK_SIGNATURE), body)

    def _too_large(self) -> ReceiverResponse:
        return self._refuse("too_large", 413, f"body larger than {self.max_body_bytes} bytes")

    def _refuse(
        self, reason: str, status: int, text: str, headers: Optional[Mapping[str, str]] = None
    ) -> ReceiverResponse:
        self.metrics.refused(reason)
        return _plain(status, text, headers)

    def _handshake(self, key: str, secret: str) -> ReceiverResponse:
        if not _plausible_secret(secret):
            logger.warning(
                "Refused a handshake with an empty or malformed X-Hook-Secret for %s", key
            )
            return self._refuse("malformed_handshake", 400, "empty or malformed X-Hook-Secret")
        try:
            accepted = self.secret_store.accept_handshake(
                key, secret, require_announcement=not self.accept_unannounced_handshakes
            )
        except Exception:
            logger.exception("Could not store the handshake secret for %s", key)
            return self._refuse("secret_store_failed", 500, "could not store the secret")
        if not accepted:
            logger.warning(
                "Refused a handshake for %s: the target was not announced, or already has a "
                "secret (use establish_webhook, or announce the target first)",
                key,
            )
            return self._refuse(
                "handshake_not_expected", 403, "handshake not expected for this target"
            )
        logger.info("Accepted the webhook handshake for %s", key)
        if self.on_handshake is not None:
            try:
                self.on_handshake(key)
            except Exception:
                # The secret is stored and the handshake complete: report, do not undo.
                logger.exception("on_handshake raised for %s", key)
        self.metrics.count("handshakes_accepted")
        return ReceiverResponse(200, {"X-Hook-Secret": secret}, b"")

    def _delivery(self, key: str, signature: Optional[str], body: bytes) -> ReceiverResponse:
        try:
            secret = self.secret_store.get(key)
        except Exception:
            logger.exception("Could not read the secret for %s", key)
            return self._refuse("secret_store_failed", 500, "could not read the secret")
        if secret is None:
            logger.warning("Refused a delivery for %s: no secret is stored for it", key)
            return self._refuse("unknown_target", 401, "no webhook is known for this target")
        if not verify_signature(body, signature, secret):
            logger.warning("Refused a delivery for %s: missing or wrong X-Hook-Signature", key)
            return self._refuse("bad_signature", 401, "invalid X-Hook-Signature")
        try:
            raw_events, events = parse_events_raw(body)
        except InvalidPayloadError as exc:
            # Signed, so it came from Asana: a format we do not understand deserves attention.
            logger.error("Refused a signed delivery for %s: %s", key, exc)
            return self._refuse("malformed_body", 400, str(exc))
        if not events:
            logger.debug("Heartbeat for %s", key)
            self.metrics.count("heartbeats")
            self._record_contact(key, heartbeat=True)
            return _plain(200, "ok")
        if self.inbox is not None:
            answer = self._store(key, raw_events)
            if answer.status == 200:
                self._record_contact(key, heartbeat=False)
            return answer
        self._record_contact(key, heartbeat=False)
        if self.on_events is None:
            logger.warning(
                "Dropped %d events for %s: the receiver has no on_events", len(events), key
            )
            self.metrics.accepted(len(events))
            return _plain(200, "ok")
        try:
            self.on_events(events, key)
        except Exception:
            logger.exception(
                "on_events raised for %d events to %s; Asana will retry", len(events), key
            )
            return self._refuse(
                "handler_failed", 500, "the application failed to handle the events"
            )
        self.metrics.accepted(len(events))
        return _plain(200, "ok")

    def _record_contact(self, key: str, *, heartbeat: bool) -> None:
        store = self.secret_store
        if not isinstance(store, RecordsContact):
            return
        if not heartbeat:
            now = time.monotonic()
            with self._contact_lock:
                last = self._delivery_recorded.get(key)
                if last is not None and now - last < self.contact_interval:
                    return
                self._delivery_recorded[key] = now
        try:
            store.record_contact(key, heartbeat=heartbeat, at=time.time())
        except Exception:
            # Only the watchdog's record: the delivery itself went well.
            logger.exception("Could not record the %s for %s",
                             "heartbeat" if heartbeat else "delivery", key)  # fmt: skip
            if not heartbeat:
                with self._contact_lock:
                    self._delivery_recorded.pop(key, None)  # try again next delivery

    def _store(self, key: str, raw_events: Sequence[object]) -> ReceiverResponse:
        assert self.inbox is not None
        try:
            result = self.inbox.store(key, raw_events)  # type: ignore[arg-type]
        except Exception:
            # Not stored: refuse, so that Asana delivers the events again later.
            logger.exception(
                "Could not store %d events for %s in the inbox; answering 503 so that Asana "
                "delivers them again",
                len(raw_events),
                key,
            )
            return self._refuse("inbox_failed", 503, "could not store the events, retry later")
        self.metrics.accepted(len(raw_events), duplicates=result.duplicates)
        if result.ids and self.on_stored is not None:
            try:
                self.on_stored(key, result.ids)
            except Exception:
                # Stored, so nothing is lost: a sweeper or a worker will pick them up.
                logger.exception("on_stored raised for %d events to %s", len(result.ids), key)
        return _plain(200, "ok")


def _plausible_secret(secret: object) -> bool:
    # Asana's secrets are 64 hex digits; allow any short printable ASCII, refuse what could
    # not be echoed in a header or stored sensibly.
    if not isinstance(secret, str):  # a framework that hands over bytes, say
        return False
    # No commas or spaces: a server joins repeated X-Hook-Secret headers into "a, b" or
    # "a,b", a secret nobody sent; such a handshake is malformed, not something to store.
    return (
        0 < len(secret) <= _MAX_SECRET_LENGTH
        and secret.isascii()
        and secret.isprintable()
        and "," not in secret
        and " " not in secret
    )


def _header(headers: Mapping[str, str], lowered_name: str) -> Optional[str]:
    for name, value in headers.items():
        if name.lower() == lowered_name:
            return value
    return None
