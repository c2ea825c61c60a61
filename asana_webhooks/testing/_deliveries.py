"""How the stand-in delivers events, and what it does when that fails, on its own clock.

As Asana's webhooks guide describes it: a delivery that fails (an error status, no answer in
10 seconds) is retried with exponential backoff (``delivery_retry_count``,
``next_attempt_after``); later events wait behind it; a webhook that has not had a successful
delivery for 24 hours (``failure_deletion_timestamp``) is deleted; every webhook gets a
heartbeat, a signed ``{"events": []}``, every 8 hours.

Nothing here runs by itself: ``run_due()`` does what is due at the stand-in's "now", and
``advance(seconds)`` walks the clock forward through every moment something was due. Faults:
deliveries dropped before they are sent (the next N, or a seeded fraction) and targets taken
"offline" until a moment on the clock.
"""

from __future__ import annotations

import collections
import datetime
import random
import threading
from typing import Any, Callable, Deque, Mapping, Optional, Sequence

import attrs

from asana_webhooks._signature import sign_body
from asana_webhooks.testing import _outbound
from asana_webhooks.testing._clock import FakeClock
from asana_webhooks.testing._ids import format_time
from asana_webhooks.testing._records import Headers, OutboundCall
from asana_webhooks.testing._responses import dump_json
from asana_webhooks.testing._state import HEARTBEAT_INTERVAL, Store, Webhook, filters_match
from asana_webhooks.testing._streams import EventStreams

#: At most this many waiting events go in one retried delivery (GUESS: Asana batches, limit
#: undocumented).
MAX_EVENTS_PER_DELIVERY = 100

#: How many outcomes ``log`` keeps (like the stand-in's request records).
MAX_LOG = 10_000

OFFLINE_ERROR = "ConnectionRefusedError: the target is offline (FakeAsana fault)"


@attrs.frozen
class Delivery:
    """What became of one delivery the stand-in made or meant to make.

    ``outcome`` is ``"delivered"`` (a 2xx answer), ``"failed"`` (an error status or no answer:
    the events wait for a retry), ``"dropped"`` (a drop fault: never sent, the events are only
    in the event streams), ``"queued"`` (the webhook is failing: the events wait behind the
    retry) or ``"deleted"`` (the stand-in deleted the webhook after 24 hours of failures).
    ``status`` is the target's HTTP status, 0 when nothing answered or nothing was sent.
    """

    webhook_gid: str
    kind: str  # "delivery", "heartbeat", "retry" or "deletion"
    outcome: str
    events: int
    status: int = 0
    at: str = ""

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class _DropFault:
    count: int = 0
    fraction: float = 0.0
    rng: random.Random = attrs.field(factory=random.Random)
    heartbeats: bool = False


class Deliveries:
    """The delivery pipeline of one stand-in; thread-safe."""

    def __init__(
        self,
        *,
        store: Store,
        streams: EventStreams,
        clock: FakeClock,
        record_outbound: Callable[[OutboundCall], None],
        delivery_timeout: Callable[[], float],
    ) -> None:
        self._store = store
        self._streams = streams
        self._clock = clock
        self._record_outbound = record_outbound
        self._delivery_timeout = delivery_timeout
        self._lock = threading.Lock()  # faults and the log
        self._schedule_lock = threading.RLock()  # one run_due/advance at a time
        self._drop = _DropFault()
        self._offline: dict[str, Optional[datetime.datetime]] = {}  # target -> until
        self.log: Deque[Delivery] = collections.deque(maxlen=MAX_LOG)
        self.deleted: list[dict[str, Any]] = []

    # --- faults -----------------------------------------------------------------------------

    def drop(
        self,
        count: Optional[int],
        fraction: Optional[float],
        seed: Optional[int],
        heartbeats: bool,
    ) -> None:
        if count is not None and count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
        with self._lock:
            self._drop = _DropFault(
                count=count or 0,
                fraction=fraction or 0.0,
                rng=random.Random(seed),  # noqa: S311 - reproducible, not secret
                heartbeats=heartbeats,
            )

    def take_offline(self, target: str, until: Optional[datetime.datetime]) -> None:
        with self._lock:
            self._offline[target] = until

    def bring_online(self, target: Optional[str]) -> None:
        with self._lock:
            if target is None:
                self._offline.clear()
            else:
                self._offline.pop(target, None)

    def offline_targets(self) -> dict[str, Optional[datetime.datetime]]:
        now = self._clock()
        with self._lock:
            return {
                target: until
                for target, until in self._offline.items()
                if until is None or until > now
            }

    def clear_faults(self) -> None:
        with self._lock:
            self._drop = _DropFault()
            self._offline.clear()

    def clear(self) -> None:
        self.clear_faults()
        with self._lock:
            self.log.clear()
            self.deleted.clear()

    def snapshot_log(self) -> list[Delivery]:
        with self._lock:
            return list(self.log)

    def snapshot_deleted(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.deleted)

    def _should_drop(self, heartbeat: bool) -> bool:
        with self._lock:
            drop = self._drop
            if heartbeat and not drop.heartbeats:
                return False
            if drop.count > 0:
                drop.count -= 1
                return True
            return drop.fraction > 0 and drop.rng.random() < drop.fraction

    def _is_offline(self, target: str) -> bool:
        now = self._clock()
        with self._lock:
            if target not in self._offline:
                return False
            until = self._offline[target]
            if until is not None and until <= now:
                del self._offline[target]
                return False
            return True

    # --- sending ----------------------------------------------------------------------------

    def _post(
        self, webhook_gid: str, events: Sequence[Mapping[str, Any]], signature: Optional[str]
    ) -> Optional[OutboundCall]:
        """POST one delivery to the webhook's target; ``None`` if the webhook is gone."""
        with self._store.lock:
            webhook = self._store.webhooks.get(webhook_gid)
            if webhook is None:
                return None
            target, secret = webhook.target, webhook.secret
        body = dump_json({"events": [dict(event) for event in events]})
        headers = {}
        if signature is None:
            headers["X-Hook-Signature"] = sign_body(body, secret)
        elif signature:
            headers["X-Hook-Signature"] = signature
        if self._is_offline(target):
            call = OutboundCall(
                kind="delivery",
                webhook_gid=webhook_gid,
                target=target,
                request_headers=Headers(headers.items()),
                body=body,
                status=0,
                reason="",
                response_headers=Headers(),
                response_body=b"",
                error=OFFLINE_ERROR,
                elapsed=0.0,
            )
        else:
            call = _outbound.post(
                "delivery",
                target,
                body,
                headers,
                timeout=self._delivery_timeout(),
                webhook_gid=webhook_gid,
            )
        self._record_outbound(call)
        return call

    def _log(self, webhook_gid: str, kind: str, outcome: str, events: int, status: int) -> Delivery:
        at = format_time(self._clock()) or ""
        entry = Delivery(webhook_gid, kind, outcome, events, status, at)
        with self._lock:
            self.log.append(entry)
        return entry

    def _attempt(
        self,
        webhook_gid: str,
        events: list[dict[str, Any]],
        signature: Optional[str],
        kind: str,
        *,
        retrying: bool = False,
        retry_on_failure: bool = True,
    ) -> tuple[Optional[OutboundCall], Delivery]:
        """Send once and book the outcome; failed new events join the webhook's queue unless
        ``retry_on_failure`` is off (a test's one-shot ``deliver()``)."""
        call = self._post(webhook_gid, events, signature)
        if call is None:
            raise KeyError(f"no webhook with gid {webhook_gid!r}")
        with self._store.lock:
            webhook = self._store.webhooks.get(webhook_gid)
            if webhook is not None:
                webhook.record_delivery(call, self._clock())
                if call.ok and retrying:
                    del webhook.pending[: len(events)]
                elif not call.ok and not retrying and retry_on_failure:
                    webhook.pending.extend(events)
        outcome = "delivered" if call.ok else "failed"
        entry = self._log(webhook_gid, kind, outcome, len(events), call.status)
        if call.ok:
            self._flush(webhook_gid)
        return call, entry

    def _flush(self, webhook_gid: str) -> None:
        """Send what waited behind a failure, now that the target answers again."""
        while True:
            with self._store.lock:
                webhook = self._store.webhooks.get(webhook_gid)
                if webhook is None or webhook.failing or not webhook.pending:
                    return
                batch = [dict(event) for event in webhook.pending[:MAX_EVENTS_PER_DELIVERY]]
            call, _ = self._attempt(webhook_gid, batch, None, "retry", retrying=True)
            if call is None or not call.ok:
                return

    def deliver_now(
        self, webhook_gid: str, events: Sequence[Mapping[str, Any]], signature: Optional[str]
    ) -> OutboundCall:
        return self.deliver_logged(webhook_gid, events, signature)[0]

    def deliver_logged(
        self, webhook_gid: str, events: Sequence[Mapping[str, Any]], signature: Optional[str]
    ) -> tuple[OutboundCall, Delivery]:
        """A test's explicit delivery: sent once, now (no drop fault, no waiting, no retry of
        its events if it fails, though the webhook's state records the failure), and recorded
        in the streams of the webhook's resource and of what the events reach."""
        with self._store.lock:
            webhook = self._store.webhooks.get(webhook_gid)
            if webhook is None:
                raise KeyError(f"no webhook with gid {webhook_gid!r}")
            resource_gid = webhook.resource.gid
        batch = [dict(event) for event in events]
        for event in batch:
            self._streams.record(self._store.streams_for(event, also=(resource_gid,)), event)
        kind = "delivery" if batch else "heartbeat"
        call, entry = self._attempt(webhook_gid, batch, signature, kind, retry_on_failure=False)
        assert call is not None  # _attempt raised if the webhook was gone
        return call, entry

    def emit(self, events: Sequence[Mapping[str, Any]]) -> list[Delivery]:
        """Events happen in Asana: record them in every stream they reach and deliver them to
        every webhook on those resources whose filters let them through."""
        per_webhook: dict[str, list[dict[str, Any]]] = {}
        for original in events:
            event = dict(original)
            streams = self._store.streams_for(event)
            self._streams.record(streams, event)
            reached = set(streams)
            with self._store.lock:
                for webhook in self._store.webhooks.values():
                    if webhook.resource.gid in reached and filters_match(webhook.filters, event):
                        per_webhook.setdefault(webhook.gid, []).append(event)
        return [self._deliver_new(gid, batch) for gid, batch in per_webhook.items()]

    def _deliver_new(self, webhook_gid: str, events: list[dict[str, Any]]) -> Delivery:
        if self._should_drop(heartbeat=False):
            return self._log(webhook_gid, "delivery", "dropped", len(events), 0)
        with self._store.lock:
            webhook = self._store.webhooks.get(webhook_gid)
            if webhook is None:
                return self._log(webhook_gid, "delivery", "dropped", len(events), 0)
            if webhook.failing:
                webhook.pending.extend(events)
                return self._log(webhook_gid, "delivery", "queued", len(events), 0)
        try:
            return self._attempt(webhook_gid, events, None, "delivery")[1]
        except KeyError:  # deleted meanwhile
            return self._log(webhook_gid, "delivery", "dropped", len(events), 0)

    # --- the clock ----------------------------------------------------------------------------

    def next_due(self) -> Optional[datetime.datetime]:
        """The earliest moment a retry, heartbeat or deletion is due."""
        with self._store.lock:
            moments = [_due(webhook) for webhook in self._store.webhooks.values()]
        present = [moment for moment in moments if moment is not None]
        return min(present) if present else None

    def run_due(self) -> list[Delivery]:
        """Do every retry, heartbeat and deletion due at the stand-in's "now"."""
        done: list[Delivery] = []
        with self._schedule_lock:
            now = self._clock()
            with self._store.lock:
                due = [
                    webhook.gid
                    for webhook in self._store.webhooks.values()
                    if (moment := _due(webhook)) is not None and moment <= now
                ]
            for gid in due:
                entry = self._run_one(gid, now)
                if entry is not None:
                    done.append(entry)
        return done

    def _run_one(self, webhook_gid: str, now: datetime.datetime) -> Optional[Delivery]:
        with self._store.lock:
            webhook = self._store.webhooks.get(webhook_gid)
            if webhook is None:
                return None
            if webhook.failing:
                deletion = webhook.failure_deletion_timestamp
                if deletion is not None and deletion <= now:
                    full = webhook.full()
                    del self._store.webhooks[webhook_gid]
                    with self._lock:
                        self.deleted.append(full)
                    return self._log(webhook_gid, "deletion", "deleted", len(webhook.pending), 0)
                if webhook.next_attempt_after is None or webhook.next_attempt_after > now:
                    return None
                batch = [dict(event) for event in webhook.pending[:MAX_EVENTS_PER_DELIVERY]]
                kind = "retry"
            else:
                if webhook.next_heartbeat_at is None or webhook.next_heartbeat_at > now:
                    return None
                while webhook.next_heartbeat_at <= now:
                    webhook.next_heartbeat_at += HEARTBEAT_INTERVAL
                batch, kind = [], "heartbeat"
        if kind == "heartbeat" and self._should_drop(heartbeat=True):
            return self._log(webhook_gid, kind, "dropped", 0, 0)
        try:
            return self._attempt(webhook_gid, batch, None, kind, retrying=kind == "retry")[1]
        except KeyError:
            return None

    def advance(self, seconds: float) -> list[Delivery]:
        """Move the clock forward ``seconds``, doing everything that falls due on the way, at
        the moment it falls due (so a retry schedule plays out as it would in real time)."""
        if seconds < 0:
            raise ValueError(f"the clock only goes forward: seconds must be >= 0, not {seconds}")
        done: list[Delivery] = []
        with self._schedule_lock:
            end = self._clock() + datetime.timedelta(seconds=seconds)
            stuck_at: Optional[datetime.datetime] = None
            while True:
                due = self.next_due()
                if due is None or due > end:
                    break
                if due == stuck_at:
                    # Every due step moves its webhook's next moment on; if one did not, say
                    # so rather than spin forever.
                    raise RuntimeError(f"FakeAsana: nothing moved on at the due moment {due}")
                self._clock.advance_to(due)
                step = self.run_due()
                stuck_at = due if not step else None
                done.extend(step)
            self._clock.advance_to(end)
            done.extend(self.run_due())
        return done


def _due(webhook: Webhook) -> Optional[datetime.datetime]:
    """When something next happens to ``webhook``: its retry (or deletion), or heartbeat."""
    if webhook.failing:
        moments = [
            moment
            for moment in (webhook.next_attempt_after, webhook.failure_deletion_timestamp)
            if moment is not None
        ]
        return min(moments) if moments else None
    return webhook.next_heartbeat_at
