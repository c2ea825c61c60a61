"""``asana-webhooks demo``: the whole life of a webhook against the Asana stand-in, narrated.

Everything runs on 127.0.0.1 in this process: ``FakeAsana`` plays Asana, a real HTTP server
(Flask when it is installed, else the standard library's ``wsgiref``) runs the receiver over a
``SQLiteSecretStore`` in a temporary folder, and the public API does the rest. Each request
on the wire is printed (method, path, status), on both sides; secrets and tokens never are.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import logging
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from asana_webhooks import (
    ApiClient,
    Configuration,
    Event,
    RequestsTransport,
    RetryPolicy,
    SQLiteSecretStore,
    Timeout,
    UpdateWebhookRequest,
    WebhookFilter,
    WebhookReceiver,
    WebhooksApi,
    WebhookUpdateRequest,
    establish_webhook,
    target_key,
)
from asana_webhooks._transport import Request, Response, Transport
from asana_webhooks._wsgi import ReceiverServer, StartResponse, WSGIApp, wsgi_app
from asana_webhooks.testing import FakeAsana, make_event

#: The prefix every demo target lives under (the Flask blueprint's ``url_prefix``).
TARGET_PREFIX = "/asana/webhooks"


class DemoError(Exception):
    """A step of the demo did not turn out as it should; the message says which."""


class Narrator:
    """Prints the demo's lines, whole, from any thread."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._step = 0
        #: Whether requests on the wire are narrated (turned off for repetitive steps).
        self.show_wire = True

    def say(self, text: str = "") -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def wire(self, text: str) -> None:
        if self.show_wire:
            self.say(text)

    def step(self, title: str) -> None:
        self._step += 1
        self.say()
        self.say(f"[{self._step}] {title}")


def _short_query(query: str) -> str:
    # Offsets are long opaque tokens: show that one is there, not all of it.
    parts = []
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name == "offset" and len(value) > 12:
            value = value[:8] + "..."
        parts.append(f"{name}={value}")
    return "&".join(parts)


class WireTransport:
    """Wraps a transport and prints each request's method, path and status (never headers)."""

    def __init__(self, inner: Transport, narrator: Narrator, base_url: str) -> None:
        self._inner = inner
        self._narrator = narrator
        self._base = base_url

    def handle_request(self, request: Request) -> Response:
        url = request.url[len(self._base) :] if request.url.startswith(self._base) else request.url
        path, _, query = url.partition("?")
        shown = f"{path}?{_short_query(query)}" if query else path
        self._narrator.wire(f"    client   -> {request.method} {shown}")
        response = self._inner.handle_request(request)
        reason = f" {response.reason}" if response.reason else ""
        self._narrator.wire(f"    client   <- {response.status}{reason}")
        return response

    def close(self) -> None:
        self._inner.close()


def wire_middleware(app: WSGIApp, narrator: Narrator) -> WSGIApp:
    """Prints every request the receiver gets: what kind it is, and the answer it gave."""

    def middleware(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_X_HOOK_SECRET" in environ:
            kind = "handshake, X-Hook-Secret header present"
        elif "HTTP_X_HOOK_SIGNATURE" in environ:
            kind = "delivery, X-Hook-Signature header present"
        else:
            kind = "unsigned request"
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        narrator.wire(f"    receiver <- {environ.get('REQUEST_METHOD')} {path} ({kind})")
        seen: dict[str, Any] = {}

        def recording_start_response(status: str, headers: Any, *args: Any) -> Any:
            seen["status"] = status
            seen["echo"] = any(name.lower() == "x-hook-secret" for name, _ in headers)
            return start_response(status, headers, *args)

        chunks = list(app(environ, recording_start_response))
        status = seen.get("status", "?")
        note = ""
        if seen.get("echo"):
            note = " with the X-Hook-Secret echoed"
        elif not status.startswith("2"):
            text = b"".join(chunks).decode("utf-8", "replace").strip()
            note = f": {text}" if text else ""
        narrator.wire(f"    receiver -> {status}{note}")
        return chunks

    return middleware


def _describe_event(event: Event) -> str:
    resource = event.resource
    what = f"{resource.resource_type} {resource.gid}" if resource is not None else "?"
    parts = [f"action={event.action}", f"resource={what}"]
    if event.change is not None:
        parts.append(f"change.field={event.change.field}")
    if event.parent is not None:
        parts.append(f"parent={event.parent.resource_type} {event.parent.gid}")
    parts.append(f"user={event.user.gid if event.user is not None else 'system'}")
    if event.created_at is not None:
        parts.append(f"created_at={event.created_at.isoformat(timespec='seconds')}")
    return f"Event({', '.join(parts)})"


def _describe_filters(filters: Optional[Sequence[WebhookFilter]]) -> str:
    if not filters:
        return "(none: every event)"
    shown = []
    for item in filters:
        text = f"{item.resource_type or '*'}:{item.action or '*'}"
        if item.fields:
            text += ":" + ",".join(item.fields)
        shown.append(text)
    return "  ".join(shown)


def _when(value: Optional[datetime.datetime]) -> str:
    return "never" if value is None else value.isoformat(timespec="seconds")


@contextlib.contextmanager
def _receiver_server(
    receiver: WebhookReceiver, narrator: Narrator, server: str
) -> Iterator[tuple[str, str]]:
    """Serve ``receiver``; yield its base URL and what serves it."""
    use_flask = server == "flask" or (
        server == "auto" and importlib.util.find_spec("flask") is not None
    )
    if not use_flask:
        with ReceiverServer(wire_middleware(wsgi_app(receiver), narrator)) as plain:
            yield plain.url, "the standard library's wsgiref (threaded)"
        return

    import flask
    from werkzeug.serving import WSGIRequestHandler, make_server

    from asana_webhooks.contrib.flask import webhook_blueprint

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # the wire middleware says what happened

    app = flask.Flask("asana_webhooks_demo")
    app.register_blueprint(webhook_blueprint(receiver, TARGET_PREFIX))
    werkzeug_server = make_server(
        "127.0.0.1",
        0,
        wire_middleware(app.wsgi_app, narrator),
        threaded=True,
        request_handler=QuietHandler,
    )
    thread = threading.Thread(
        target=werkzeug_server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="asana-webhooks demo receiver",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{werkzeug_server.server_port}", "Flask (werkzeug, threaded)"
    finally:
        werkzeug_server.shutdown()
        werkzeug_server.server_close()
        thread.join(5.0)


class _NarratorHandler(logging.Handler):
    def __init__(self, narrator: Narrator) -> None:
        super().__init__(logging.WARNING)
        self._narrator = narrator

    def emit(self, record: logging.LogRecord) -> None:
        self._narrator.say(f"    log ({record.levelname.lower()}): {record.getMessage()}")


@contextlib.contextmanager
def _log_through(narrator: Narrator) -> Iterator[None]:
    """Show the library's warnings (a refused delivery, say) in the narration, in order."""
    logger = logging.getLogger("asana_webhooks")
    handler = _NarratorHandler(narrator)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise DemoError(problem)


def run_demo(out: TextIO, *, server: str = "auto", page_size: int = 2) -> None:
    """Run the demo, narrating on ``out``. Raises ``DemoError`` if a step goes wrong."""
    say = Narrator(out)
    started = time.monotonic()
    received: list[tuple[list[Event], str]] = []
    received_lock = threading.Lock()

    def on_events(events: Sequence[Event], target: str) -> None:
        with received_lock:
            received.append((list(events), target))
        say.say(f"    app: on_events got {len(events)} typed event(s) for {target}:")
        for event in events:
            say.say(f"        {_describe_event(event)}")

    with contextlib.ExitStack() as stack:
        stack.enter_context(_log_through(say))
        say.step("Start the Asana stand-in (FakeAsana)")
        fake = stack.enter_context(FakeAsana(handshake_timeout=5.0, delivery_timeout=5.0))
        say.say(f"    FakeAsana serves Asana's webhooks API at {fake.url}")
        say.say(f"    workspace {fake.workspace_gid}; the token is a random test value, not shown")

        say.step("Start a receiver over a SQLite secret store")
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asana-demo-")))
        store = SQLiteSecretStore(folder / "secrets.sqlite3")

        def on_handshake(target: str) -> None:
            secret = store.get(target) or ""
            say.wire(
                f"    app: handshake accepted for {target}: secret stored ({len(secret)} hex chars)"
            )

        receiver = WebhookReceiver(store, on_events, on_handshake=on_handshake)
        base_url, served_by = stack.enter_context(_receiver_server(receiver, say, server))
        say.say(f"    receiver: {served_by} at {base_url}{TARGET_PREFIX}/...")
        say.say(f"    secret store: {store.path}")

        configuration = Configuration(
            host=fake.url,
            access_token=fake.access_token,
            timeout=Timeout(connect=5.0, read=15.0),
            retry=RetryPolicy(max_attempts=2, max_time=10.0),
        )
        transport = WireTransport(RequestsTransport(trust_env=False), say, fake.url)
        stack.callback(transport.close)
        client = stack.enter_context(ApiClient(configuration, transport=transport))
        api = WebhooksApi(client)

        say.step("Establish a webhook: POST /webhooks, with Asana's handshake in the middle")
        project = fake.add_resource(name="Launch plan", resource_type="project")
        target = f"{base_url}{TARGET_PREFIX}/{project}"
        filters = [
            WebhookFilter(resource_type="task", action="changed", fields=["name", "due_on"]),
            WebhookFilter(resource_type="task", action="added"),
        ]
        say.say(f"    establish_webhook(resource={project}, target={target})")
        say.say(f"    filters: {_describe_filters(filters)}")
        webhook = establish_webhook(api, receiver, project, target, filters)
        say.say(
            f"    webhook {webhook.gid} created; the secret in Asana's 201 answer matches the "
            "handshake's (compared, not shown)"
        )
        gid = webhook.gid

        say.step("Asana delivers two events, signed with the secret")
        task = "1209000000000001"
        events = [
            make_event("changed", task, field="name", user="1209000000000077"),
            make_event("added", task, parent=project, user="1209000000000077"),
        ]
        status = fake.deliver(gid, events)
        say.say(f"    FakeAsana: the target answered {status}; the signature was verified")
        _expect(status == 200, f"the signed delivery was answered {status}, not 200")
        _expect(
            len(received) == 1 and len(received[0][0]) == 2,
            "on_events was not called once with the two delivered events",
        )

        say.step("A heartbeat: a signed delivery with no events")
        status = fake.heartbeat(gid)
        say.say(f"    FakeAsana: the target answered {status}; on_events was not called")
        _expect(status == 200, f"the heartbeat was answered {status}, not 200")
        _expect(len(received) == 1, "on_events was called for a heartbeat")

        say.step("A tampered delivery: the signature does not match the body")
        status = fake.deliver(gid, [make_event("deleted", task)], signature="0" * 64)
        say.say(f"    FakeAsana: the target answered {status}; nothing reached the app")
        _expect(status == 401, f"the tampered delivery was answered {status}, not 401")
        _expect(len(received) == 1, "on_events was called for a tampered delivery")

        say.step("What Asana records about the webhook: GET /webhooks/{gid}")
        record = api.get_webhook(gid).data
        _expect(record is not None, "get_webhook returned no webhook")
        assert record is not None
        first_line = (record.last_failure_content or "").splitlines()[:1]
        say.say(f"    last_success_at      {_when(record.last_success_at)}")
        say.say(f"    last_failure_at      {_when(record.last_failure_at)}")
        say.say(f"    last_failure_content {first_line[0] if first_line else '-'}")
        say.say(f"    delivery_retry_count {record.delivery_retry_count}")
        say.say("    (a refused delivery counts as a failure: Asana retries it with backoff)")

        say.step(f"List every webhook, {page_size} per page, following next_page")
        more = []
        say.show_wire = False
        for number in range(1, 5):
            resource = fake.add_resource(name=f"Project {number}", resource_type="project")
            more.append(
                establish_webhook(
                    api,
                    store,
                    resource,
                    f"{base_url}{TARGET_PREFIX}/{resource}",
                    [WebhookFilter(resource_type="task", action="added")],
                )
            )
        say.show_wire = True
        say.say(f"    (made {len(more)} more webhooks the same way, each with its handshake)")
        listed = list(api.iter_webhooks(fake.workspace_gid, page_size=page_size))
        say.say(f"    {'GID':<18} {'ACTIVE':<6} {'RESOURCE':<12} TARGET")
        for item in listed:
            name = item.resource.name if item.resource is not None else "?"
            target_path = urllib.parse.urlsplit(item.target or "").path
            say.say(f"    {item.gid:<18} {item.active!s:<6} {name:<12} {target_path}")
        _expect(len(listed) == 1 + len(more), f"listing found {len(listed)} webhooks, not 5")

        say.step("Update the filters: PUT /webhooks/{gid} replaces the whole list")
        new_filters = [
            WebhookFilter(resource_type="task", action="changed", fields=["completed"]),
            WebhookFilter(resource_type="story", action="added"),
        ]
        updated = api.update_webhook(
            gid, UpdateWebhookRequest(data=WebhookUpdateRequest(filters=new_filters))
        ).data
        _expect(updated is not None, "update_webhook returned no webhook")
        assert updated is not None
        say.say(f"    filters now: {_describe_filters(updated.filters)}")

        say.step("Delete the webhooks and forget their secrets")
        for item in [webhook, *more]:
            api.delete_webhook(item.gid)
            if item.target:
                store.delete(target_key(item.target))
        _expect(not fake.webhooks, "webhooks remain after deleting them all")
        _expect(store.get(target) is None, "the secret of a deleted webhook is still stored")
        say.say("    no webhooks left, and their secrets are gone from the store")

        say.step("Stop the receiver and the stand-in")
    say.say(f"    stopped. The demo took {time.monotonic() - started:.1f} s.")


def main(out: TextIO, *, server: str = "auto", error: Callable[[str], None]) -> int:
    """Run the demo; return the exit status (0 when every step went as it should)."""
    try:
        run_demo(out, server=server)
    except DemoError as exc:
        error(f"the demo went wrong: {exc}")
        return 1
    return 0
