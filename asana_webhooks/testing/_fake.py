"""``FakeAsana``: an Asana webhooks API stand-in on 127.0.0.1, for tests and local tries."""

from __future__ import annotations

import datetime
import secrets
import threading
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from asana_webhooks.testing._app import BASE_PATH, AsanaApp, default_clock
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
    ) -> None:
        if handshake_timeout <= 0 or delivery_timeout <= 0:
            raise ValueError("handshake_timeout and delivery_timeout must be positive")
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
            server = FakeAsanaServer(self._port, self._app)
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
    ) -> str:
        """Declare a resource (in ``workspace``, default ``workspace_gid``); return its gid."""
        return self._app.store.add_resource(
            gid, name, resource_type, workspace or self.workspace_gid
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
        """
        return self._app.deliver(webhook_gid, events, signature).status

    def heartbeat(self, webhook_gid: str) -> int:
        """Send the signed empty delivery, ``{"events": []}``, Asana sends every 8 hours."""
        return self.deliver(webhook_gid, [])

    @property
    def outbound(self) -> list[OutboundCall]:
        """Handshakes and deliveries the fake made, oldest first."""
        return self._app.snapshot_outbound()

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

    def expire_offsets(self) -> None:
        """Make every ``offset`` handed out so far expired (400 when used)."""
        self._app.offsets.expire_all()

    def clear_faults(self) -> None:
        """Drop pending faults and the rate limit."""
        self._app.faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return self._app.faults.pending()

    def reset(self) -> None:
        """Back to a fresh state: no webhooks, resources, faults, records or valid offsets.

        The token, port and default workspace stay.
        """
        self._app.faults.clear()
        self._app.store.clear()
        self._app.offsets.expire_all()
        self._app.clear_records()
