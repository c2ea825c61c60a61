"""``FakeAsana``: an Asana webhooks API stand-in on 127.0.0.1, for tests and local tries."""

from __future__ import annotations

import datetime
import secrets
import threading
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from asana_webhooks.testing._app import BASE_PATH, AsanaApp, default_clock
from asana_webhooks.testing._control import CONTROL_PATH, Control
from asana_webhooks.testing._deliveries import Delivery
from asana_webhooks.testing._events import make_event
from asana_webhooks.testing._faults import (
    Fault,
    FaultKind,
    FaultStage,
    RetryAfter,
    format_retry_after,
)
from asana_webhooks.testing._ids import new_gid
from asana_webhooks.testing._oauth import OAuthServer
from asana_webhooks.testing._records import OutboundCall, RecordedRequest
from asana_webhooks.testing._server import FakeAsanaServer
from asana_webhooks.testing._streams import StreamEvent
from asana_webhooks.testing._traffic import EventTraffic

#: How long ``stop()`` waits for the serving thread to end.
_STOP_TIMEOUT = 5.0


class FakeAsana:
    """Asana's five webhook operations served over real HTTP on 127.0.0.1.

    Nothing runs until ``start()`` (or ``with FakeAsana() as fake:``); then point a client at
    ``fake.url`` (``http://127.0.0.1:PORT/api/1.0``) with ``fake.access_token``.

    What it does, as Asana documents it: the ``{"data": ...}`` envelope and
    ``{"errors": [{"message", "help"}]}`` bodies; 401 without ``Authorization: Bearer <token>``;
    ``GET /webhooks`` needs ``workspace``, pages with ``limit`` (1..100) and opaque ``offset``
    tokens, lists compact webhooks in creation order (``opt_fields`` adds fields); ``POST``
    performs the ``X-Hook-Secret`` handshake with the target *during* the request (an empty
    POST body; the target must echo the header with 200 or 204 within ``handshake_timeout``)
    and answers 201 ``{"data": webhook, "X-Hook-Secret": secret}``; a second webhook on the
    same resource and target is 403; ``PUT`` replaces ``filters``; ``DELETE`` answers
    ``{"data": {}}``.

    The Events API (``GET /events?resource=R&sync=T``, ``GET /workspaces/{gid}/events``):
    412 with a fresh ``sync`` token when none or a stale one is given; then at most 100 events a
    call with ``has_more``. Every event it delivers, or would have (``emit``,
    ``generate_traffic``, ``deliver``), is in the event streams of the resources it reaches:
    its resource, its parent, and up through what ``add_resource(parent=...)`` declared.

    Its clock (``now()``) is real time plus what ``advance(seconds)`` added. Advancing it plays
    out what Asana does meanwhile: failed deliveries retried with exponential backoff, a
    heartbeat every 8 hours, a webhook failing for 24 hours deleted, sync tokens expiring.

    Where it differs on purpose: it only ever connects to loopback targets (any other host is
    a 400), and accepts them unless ``refuse_loopback_targets=True`` (then 403, as Asana does
    for localhost). A webhook on a resource never declared with ``add_resource`` belongs to
    ``workspace_gid`` and is taken to be a task. Rate-limited requests do not use up quota.
    """

    def __init__(
        self,
        access_token: Optional[str] = None,
        *,
        port: int = 0,
        workspace_gid: Optional[str] = None,
        workspace_name: str = "My Workspace",
        handshake_timeout: float = 10.0,
        delivery_timeout: float = 10.0,
        refuse_loopback_targets: bool = False,
        clock: Optional[Callable[[], datetime.datetime]] = None,
        sync_token_lifetime: float = 24 * 3600.0,
        event_retention: float = 24 * 3600.0,
    ) -> None:
        if handshake_timeout <= 0 or delivery_timeout <= 0:
            raise ValueError("handshake_timeout and delivery_timeout must be positive")
        if sync_token_lifetime <= 0 or event_retention <= 0:
            raise ValueError("sync_token_lifetime and event_retention must be positive")
        self._port = port
        self._app = AsanaApp(
            access_token=access_token or secrets.token_urlsafe(24),
            workspace_gid=workspace_gid or new_gid(),
            workspace_name=workspace_name,
            handshake_timeout=handshake_timeout,
            delivery_timeout=delivery_timeout,
            refuse_loopback_targets=refuse_loopback_targets,
            clock=clock or default_clock,
        )
        self._app.streams.token_lifetime = datetime.timedelta(seconds=sync_token_lifetime)
        self._app.streams.retention = datetime.timedelta(seconds=event_retention)
        self._traffic: dict[str, EventTraffic] = {}
        self._traffic_lock = threading.Lock()
        self._last_event_time: Optional[datetime.datetime] = None
        self._server: Optional[FakeAsanaServer] = None
        self._thread: Optional[threading.Thread] = None
        self._lifecycle = threading.Lock()
        self._stopped = threading.Event()
        self._stopped.set()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeAsana:
        """Bind 127.0.0.1 (``port``, or a free one) and serve in a daemon thread."""
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("FakeAsana is already running")
            server = FakeAsanaServer(self._port, self._app, Control(self).handle)
            self._server = server
            self._app.base_url = f"http://127.0.0.1:{server.server_address[1]}{BASE_PATH}"
            self._stopped.clear()
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeAsana:{server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None:
                return
            server.close()
            if thread is not None:
                thread.join(_STOP_TIMEOUT)
            self._stopped.set()

    def __enter__(self) -> FakeAsana:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until ``stop()`` (from another thread) or ``timeout``; True once stopped."""
        return self._stopped.wait(timeout)

    def serve_forever(self) -> None:
        """Start if needed and block until ``stop()`` or Ctrl-C (for a command-line server)."""
        if not self.running:
            self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeAsana is not running: call start() or use it in a with block")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The API base URL, ``http://127.0.0.1:PORT/api/1.0`` (like ``https://app.asana.com/api/1.0``)."""
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    @property
    def control_url(self) -> str:
        """The control endpoint, ``http://127.0.0.1:PORT/_fake`` (see ``FakeAsanaControl``)."""
        return f"http://127.0.0.1:{self.port}{CONTROL_PATH}"

    @property
    def access_token(self) -> str:
        """The only token the fake accepts (``Authorization: Bearer <token>``)."""
        return self._app.access_token

    @property
    def oauth(self) -> OAuthServer:
        """OAuth: ``oauth.issue()`` gives expiring tokens, ``oauth.token_url`` refreshes them."""
        return self._app.oauth

    @property
    def workspace_gid(self) -> str:
        """The default workspace; webhooks on undeclared resources belong to it."""
        return self._app.store.default_workspace_gid

    def __repr__(self) -> str:
        where = self.url if self.running else "not running"
        return f"<FakeAsana {where}, {len(self._app.store.webhooks)} webhooks>"

    # --- data -------------------------------------------------------------------------------

    def add_workspace(self, gid: Optional[str] = None, *, name: str = "Workspace") -> str:
        """Declare a workspace; return its gid."""
        return self._app.store.add_workspace(gid, name).gid

    def add_resource(
        self,
        gid: Optional[str] = None,
        *,
        name: Optional[str] = None,
        resource_type: str = "project",
        workspace: Optional[str] = None,
        parent: Union[str, Sequence[str], None] = None,
    ) -> str:
        """Declare a resource (in ``workspace``, default ``workspace_gid``); return its gid.

        ``parent`` is where its events bubble up to: a task's project (or projects, as a
        list), a subtask's task, a story's task. A project's events reach its workspace.
        """
        parents = [parent] if isinstance(parent, str) else list(parent or ())
        return self._app.store.add_resource(
            gid, name, resource_type, workspace or self.workspace_gid, parents
        ).gid

    def add_webhook(
        self,
        resource: str,
        target: str,
        *,
        filters: Optional[list[dict[str, Any]]] = None,
        secret: Optional[str] = None,
    ) -> dict[str, Any]:
        """Create a webhook directly, without a handshake (to seed state); return its JSON."""
        return self._app.add_webhook(resource, target, filters, secret)

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook's full JSON (as ``GET /webhooks/{gid}`` shows it), in creation order."""
        with self._app.store.lock:
            return [webhook.full() for webhook in self._app.store.webhooks.values()]

    def get_webhook(self, webhook_gid: str) -> Optional[dict[str, Any]]:
        with self._app.store.lock:
            webhook = self._app.store.webhooks.get(webhook_gid)
            return None if webhook is None else webhook.full()

    def secret_for(self, webhook_gid: str) -> str:
        """The ``X-Hook-Secret`` of a webhook; ``KeyError`` if there is no such webhook."""
        with self._app.store.lock:
            webhook = self._app.store.webhooks.get(webhook_gid)
            if webhook is None:
                raise KeyError(f"no webhook with gid {webhook_gid!r}")
            return webhook.secret

    # --- deliveries ----------------------------------------------------------------------

    make_event = staticmethod(make_event)

    def deliver(
        self,
        webhook_gid: str,
        events: Sequence[Mapping[str, Any]],
        *,
        signature: Optional[str] = None,
    ) -> int:
        """POST ``{"events": [...]}`` to the webhook's target, signed with its secret.

        Returns the target's HTTP status, or 0 when there was no HTTP answer (refused,
        timed out after ``delivery_timeout``); details are in ``outbound[-1]``. The webhook's
        ``last_success_at`` / ``last_failure_*`` / ``delivery_retry_count`` /
        ``next_attempt_after`` / ``failure_deletion_timestamp`` follow the outcome (any 2xx is
        a success). ``signature`` overrides ``X-Hook-Signature`` (``""`` leaves it out) to
        test a receiver's rejection path. Filters are not applied: what you pass is sent.

        It is a one-shot probe: never dropped, sent even while the webhook waits for a retry,
        and its events are not retried if it fails (``emit`` and ``generate_traffic`` go
        through Asana's retries). Its events enter the event stream of the webhook's resource.
        """
        return self._app.deliver(webhook_gid, events, signature).status

    def heartbeat(self, webhook_gid: str) -> int:
        """Send the signed empty delivery, ``{"events": []}``, Asana sends every 8 hours."""
        return self.deliver(webhook_gid, [])

    @property
    def outbound(self) -> list[OutboundCall]:
        """Handshakes and deliveries the fake made, oldest first."""
        return self._app.snapshot_outbound()

    def emit(self, events: Sequence[Mapping[str, Any]]) -> list[Delivery]:
        """These events happen in Asana: each enters the event stream of every resource it
        reaches, and every webhook on one of those resources whose filters let it through gets
        it (one delivery per webhook for the call). Returns what became of each delivery:
        delivered, failed (it will be retried), dropped (a drop fault) or queued (the webhook
        is failing and this waits behind the retry)."""
        return self._app.deliveries.emit(events)

    def traffic(self, resource: str, *, seed: Optional[int] = None) -> EventTraffic:
        """A seeded generator of realistic events for ``resource`` (see ``generate_traffic``);
        ``traffic(...).next(n)`` makes events without sending them."""
        resource_type = self._app.store.resource_for(resource).resource_type
        return EventTraffic(
            resource, resource_type, seed=seed, now=self._event_time, declare=self._declare
        )

    def generate_traffic(
        self,
        resource: str,
        count: int,
        *,
        seed: Optional[int] = None,
        batch: int = 1,
    ) -> list[dict[str, Any]]:
        """Make ``count`` realistic events happen on ``resource`` and ``emit`` them, ``batch``
        at a time; return the events.

        For a project: tasks added, changed (``change.field``: name, notes, due_on, completed,
        assignee with ``new_value``, followers with ``added_value``, custom_fields), stories
        and subtasks added, tasks removed and deleted. For a task: its changes, stories and
        subtasks. For a workspace: projects added, changed and deleted. New tasks, stories and
        subtasks are declared with their parents, so their own streams work too. A ``seed``
        starts a new reproducible sequence; without one, the resource's previous generator
        goes on (and tasks it added keep changing).
        """
        return self._generate(resource, count, seed, batch)[0]

    def _generate(
        self, resource: str, count: int, seed: Optional[int], batch: int
    ) -> tuple[list[dict[str, Any]], list[Delivery]]:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        if count < 0:
            raise ValueError(f"count must not be negative, not {count}")
        generator = self._generator_for(resource, seed)
        events: list[dict[str, Any]] = []
        outcomes: list[Delivery] = []
        while len(events) < count:
            chunk = generator.next(min(batch, count - len(events)))
            outcomes.extend(self.emit(chunk))
            events.extend(chunk)
        return events, outcomes

    def _generator_for(self, resource: str, seed: Optional[int]) -> EventTraffic:
        with self._traffic_lock:
            generator = self._traffic.get(resource)
        if generator is None or seed is not None:
            generator = self.traffic(resource, seed=seed)
            with self._traffic_lock:
                self._traffic[resource] = generator
        return generator

    def events_for(self, resource: str) -> list[dict[str, Any]]:
        """The events in ``resource``'s stream now (what ``/events`` would list), oldest first."""
        return [entry.event for entry in self._app.streams.events(resource)]

    def stream(self, resource: str) -> list[StreamEvent]:
        """Like ``events_for``, with each event's sequence number and time of recording."""
        return self._app.streams.events(resource)

    @property
    def deliveries(self) -> list[Delivery]:
        """What became of every delivery, heartbeat, retry and deletion, oldest first (the
        last 10,000)."""
        return self._app.deliveries.snapshot_log()

    @property
    def deleted_webhooks(self) -> list[dict[str, Any]]:
        """Webhooks the stand-in deleted after 24 hours of failures (their last JSON)."""
        return self._app.deliveries.snapshot_deleted()

    def _event_time(self) -> datetime.datetime:
        # Strictly increasing in milliseconds (Asana's precision), so no two generated events
        # are alike.
        with self._traffic_lock:
            now = self._app.clock()
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            last = self._last_event_time
            if last is not None and now <= last:
                now = last + datetime.timedelta(milliseconds=1)
            self._last_event_time = now
            return now

    def _declare(self, gid: str, resource_type: str, name: str, parent: str) -> None:
        store = self._app.store
        with store.lock:
            owner = store.resource_for(parent)
            parents = [] if owner.resource_type == "workspace" else [parent]
            store.add_resource(gid, name, resource_type, owner.workspace_gid, parents)

    # --- the clock ------------------------------------------------------------------------------

    def now(self) -> datetime.datetime:
        """The stand-in's time: real time (or the ``clock`` given) plus every ``advance``."""
        return self._app.clock()

    def advance(self, seconds: float) -> list[Delivery]:
        """Move the stand-in's clock forward, doing on the way what Asana would: retries due
        (exponential backoff from 1 minute to 1 hour), heartbeats every 8 hours, deleting a
        webhook 24 hours into its failures. Sync tokens and events age too. Returns what was
        done, in order."""
        return self._app.deliveries.advance(seconds)

    def run_due(self) -> list[Delivery]:
        """Do the retries, heartbeats and deletions due now, without moving the clock (the
        command-line stand-in calls this every half second)."""
        return self._app.deliveries.run_due()

    @property
    def sync_token_lifetime(self) -> float:
        """Seconds a sync token stays valid on the stand-in's clock (Asana: 24 hours)."""
        return self._app.streams.token_lifetime.total_seconds()

    @sync_token_lifetime.setter
    def sync_token_lifetime(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"sync_token_lifetime must be positive, not {seconds}")
        self._app.streams.token_lifetime = datetime.timedelta(seconds=seconds)

    @property
    def event_retention(self) -> float:
        """Seconds an event stays in its streams on the stand-in's clock (Asana: 24 hours)."""
        return self._app.streams.retention.total_seconds()

    @event_retention.setter
    def event_retention(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"event_retention must be positive, not {seconds}")
        self._app.streams.retention = datetime.timedelta(seconds=seconds)

    # --- what was received ------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """API requests received, in the order they were answered (the last 10,000).

        Each is recorded just before its answer is sent, so once a client has an answer (or a
        dropped connection), its request is here.
        """
        return self._app.snapshot_requests()

    def clear_requests(self) -> None:
        """Forget recorded requests and outbound calls."""
        self._app.clear_records()

    # --- faults -------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after: Optional[RetryAfter] = None,
        *,
        body: Union[bytes, str, None] = None,
        content_type: Optional[str] = None,
        message: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        after_handling: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status``.

        The body is Asana's error JSON (``message`` or a default; 5xx get a ``phrase``), or
        ``body`` verbatim (e.g. a proxy's HTML 502 page). ``retry_after`` (seconds or an HTTP
        date string) adds ``Retry-After``. ``method``/``path`` (``"/webhooks"``,
        ``"/webhooks/*"``; globs allowed) restrict which requests count. With
        ``after_handling=True`` the request is carried out first - a create *does* create the
        webhook - and only its response is replaced: a lost response.
        """
        self._app.faults.add(
            Fault(
                kind=FaultKind.FAIL,
                stage=FaultStage.AFTER_HANDLING if after_handling else FaultStage.BEFORE_HANDLING,
                remaining=count,
                method=method,
                path=path,
                status=status,
                body=body.encode("utf-8") if isinstance(body, str) else body,
                content_type=content_type,
                message=message,
                retry_after=None if retry_after is None else format_retry_after(retry_after),
            )
        )

    def drop_next(
        self,
        count: int = 1,
        *,
        after_request: bool = True,
        after_handling: bool = False,
        reset: bool = False,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Close the connection of the next ``count`` matching requests without answering.

        By default the whole request is read first; ``after_request=False`` closes right after
        the headers; ``after_handling=True`` carries the request out first (the webhook is
        created, then the answer is lost). ``reset=True`` sends a TCP reset instead of a FIN.
        """
        if after_handling:
            stage = FaultStage.AFTER_HANDLING
        elif after_request:
            stage = FaultStage.BEFORE_HANDLING
        else:
            stage = FaultStage.ON_HEADERS
        self._app.faults.add(
            Fault(
                kind=FaultKind.DROP,
                stage=stage,
                remaining=count,
                method=method,
                path=path,
                reset=reset,
            )
        )

    def truncate_next(
        self,
        count: int = 1,
        *,
        keep_bytes: Optional[int] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Carry out the next ``count`` matching requests, then send the full headers but only
        ``keep_bytes`` of the body (default: half) and close: a response cut mid-way."""
        self._app.faults.add(
            Fault(
                kind=FaultKind.TRUNCATE,
                stage=FaultStage.AFTER_HANDLING,
                remaining=count,
                method=method,
                path=path,
                keep_bytes=keep_bytes,
            )
        )

    def delay_next(
        self,
        seconds: float,
        count: int = 1,
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Wait ``seconds`` before handling the next ``count`` matching requests (then answer
        normally, even if the client has given up by then), to trigger read timeouts."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, not {seconds}")
        self._app.faults.add(
            Fault(
                kind=FaultKind.DELAY,
                stage=FaultStage.BEFORE_HANDLING,
                remaining=count,
                method=method,
                path=path,
                seconds=seconds,
            )
        )

    def rate_limit(
        self,
        per_minute: Optional[int],
        *,
        retry_after: Optional[RetryAfter] = None,
        window: float = 60.0,
    ) -> None:
        """Accept ``per_minute`` authenticated requests per ``window`` seconds, then answer 429
        with Asana's body and ``Retry-After`` (``retry_after``, or the seconds until a request
        would be accepted). ``rate_limit(None)`` turns it off."""
        self._app.faults.set_rate_limit(per_minute, window, retry_after)

    def drop_deliveries(
        self,
        count: Optional[int] = None,
        *,
        fraction: Optional[float] = None,
        seed: Optional[int] = None,
        heartbeats: bool = False,
    ) -> None:
        """Lose deliveries before they are sent, as Asana's at-most-once delivery may: the next
        ``count``, then (or instead) each with probability ``fraction``, drawn from a
        ``random.Random(seed)``. The events still enter the event streams. Heartbeats are
        spared unless ``heartbeats=True``; ``deliver()`` is never dropped. Replaces an earlier
        drop fault; ``drop_deliveries()`` with no arguments stops dropping."""
        self._app.deliveries.drop(count, fraction, seed, heartbeats)

    def take_offline(self, target: str, seconds: Optional[float] = None) -> None:
        """Every delivery to ``target`` (a webhook's target URL) fails as if nothing listened,
        for ``seconds`` of the stand-in's clock (default: until ``bring_online``). Failed
        deliveries are retried the way Asana does; see ``advance``."""
        until = None if seconds is None else self._app.clock() + datetime.timedelta(seconds=seconds)
        self._app.deliveries.take_offline(target, until)

    def bring_online(self, target: Optional[str] = None) -> None:
        """End ``take_offline`` for ``target`` (or every target). Waiting deliveries go out at
        the webhook's next attempt (``next_attempt_after``), as with Asana."""
        self._app.deliveries.bring_online(target)

    def expire_sync_tokens(self) -> None:
        """Make every sync token handed out so far invalid (412 on its next use), as Asana's
        "may expire sooner, depending on load" allows."""
        self._app.streams.expire_tokens()

    def expire_offsets(self) -> None:
        """Make every ``offset`` handed out so far expired (400 when used)."""
        self._app.offsets.expire_all()

    def clear_faults(self) -> None:
        """Drop pending faults, the rate limit, dropped deliveries and offline targets."""
        self._app.faults.clear()
        self._app.deliveries.clear_faults()

    @property
    def pending_faults(self) -> list[Fault]:
        return self._app.faults.pending()

    def reset(self) -> None:
        """Back to a fresh state: no webhooks, resources, faults, records or valid offsets.

        The token, port, default workspace and clock stay.
        """
        self._app.faults.clear()
        self._app.deliveries.clear()
        self._app.streams.clear()
        with self._traffic_lock:
            self._traffic.clear()
        self._app.store.clear()
        self._app.offsets.expire_all()
        self._app.clear_records()
