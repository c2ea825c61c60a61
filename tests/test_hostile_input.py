"""Hostile and broken input: the decoders raise only our typed errors, and the receiver, over
real sockets, refuses what it must (wrong methods, duplicated headers, huge and non-UTF-8
bodies, handshakes it did not expect, deliveries it has no secret for) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asana_webhooks import (
    ApiClient,
    AsanaError,
    Configuration,
    Event,
    InvalidPayloadError,
    InvalidResponseError,
    MemorySecretStore,
    MockTransport,
    Response,
    RetryPolicy,
    ServerError,
    WebhookReceiver,
    WebhooksApi,
    establish_webhook,
    parse_events,
    sign_body,
    target_key,
    verify_signature,
)
from asana_webhooks._converter import _MODELS, decode, structure
from asana_webhooks._wsgi import ReceiverServer, wsgi_app
from asana_webhooks.testing import FakeAsana, make_event

pytestmark = pytest.mark.timeout(120)

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
DEEP = [b"[" * 100_000, b'{"data":' * 50_000, b'{"events":[' + b"[" * 100_000]

# --- strategies ---------------------------------------------------------------------------

# Names the models and events use, so generated documents reach deep into the hooks.
KEYS = [
    "data",
    "gid",
    "resource_type",
    "resource_subtype",
    "name",
    "active",
    "resource",
    "target",
    "created_at",
    "last_failure_at",
    "last_failure_content",
    "last_success_at",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
    "filters",
    "action",
    "fields",
    "next_page",
    "offset",
    "path",
    "uri",
    "errors",
    "message",
    "help",
    "phrase",
    "X-Hook-Secret",
    "events",
    "user",
    "parent",
    "change",
    "field",
    "new_value",
    "added_value",
    "removed_value",
    "type",
]
DATES = [
    "2012-02-22T02:06:58.147Z",
    "2012-02-22T02:06:58.147z",
    "2012-02-22T02:06:58Z",
    "2012-02-22T02:06:58.1234567+05:30",
    "2012-02-22T02:06:58+0530",
    "2012-02-22T02:06:58",
    "2012-02-30T02:06:58Z",
    "2012-02-22T25:06:58Z",
    "2012-02-22",
    "9999-12-31T23:59:59.999999+23:59",
    "0001-01-01T00:00:00-23:59",
    "Z",
    "",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(DATES)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=25,
)
# Mostly objects keyed like Asana's, so structuring gets past the first check.
documents = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6) | json_values


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


bodies = st.binary(max_size=300) | documents.map(dumps)


# --- the model converter ---------------------------------------------------------------------


@pytest.mark.parametrize("model", _MODELS, ids=lambda m: m.__name__)
@given(body=bodies)
def test_decode_gives_the_model_or_invalid_response_error(model: type[Any], body: bytes) -> None:
    for fast in (True, False):
        try:
            result = decode(body, model, fast=fast)
        except InvalidResponseError:
            continue
        assert isinstance(result, model)


@pytest.mark.parametrize("model", _MODELS, ids=lambda m: m.__name__)
@given(document=documents)
def test_structure_gives_the_model_or_invalid_response_error(
    model: type[Any], document: Any
) -> None:
    try:
        result = structure(document, model)
    except InvalidResponseError:
        return
    assert isinstance(result, model)


@pytest.mark.parametrize("model", _MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("body", DEEP, ids=["array", "object", "events"])
def test_json_nested_too_deeply_is_an_invalid_response(model: type[Any], body: bytes) -> None:
    for fast in (True, False):
        with pytest.raises(InvalidResponseError):
            decode(body, model, fast=fast)


def test_an_error_body_nested_too_deeply_is_still_a_server_error() -> None:
    transport = MockTransport(lambda request: Response(500, {}, DEEP[0]))
    config = Configuration(
        host="https://asana.test/api/1.0", access_token="t", retry=RetryPolicy.off()
    )
    with pytest.raises(ServerError) as caught:
        WebhooksApi(ApiClient(config, transport=transport)).get_webhook("1")
    assert "not JSON" in str(caught.value)


# --- parse_events and verify_signature ----------------------------------------------------------


@given(body=bodies)
@example(body=DEEP[2])
@example(body=b'{"events": [{"created_at": "2012-02-22T02:06:58.1234567+05:30"}]}')
def test_parse_events_gives_events_or_invalid_payload_error(body: bytes) -> None:
    try:
        events: Any = parse_events(body)
    except InvalidPayloadError as exc:
        events = exc
    if isinstance(events, InvalidPayloadError):
        assert isinstance(events, AsanaError)
        assert len(str(events)) < 1000, "messages end up in logs and HTTP answers: keep them short"
    else:
        assert isinstance(events, list) and all(isinstance(e, Event) for e in events)


@given(events=st.lists(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=7), max_size=4))
def test_parse_events_on_event_shaped_documents(events: list[dict[str, Any]]) -> None:
    with contextlib.suppress(InvalidPayloadError):
        parse_events(dumps({"events": events}))


header_text = st.text(max_size=80) | st.text(
    alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64
)
secrets_ = (
    st.text(max_size=70)
    | st.binary(max_size=70)
    | st.lists(st.text(max_size=10) | st.binary(max_size=10), max_size=3)
)


@given(body=st.binary(max_size=200), signature=header_text | st.none(), secret=secrets_)
@example(body=b"x", signature=sign_body(b"x", "s"), secret="\ud800")
@example(body=b"x", signature="\u0660" * 64, secret="s")
def test_verify_signature_answers_true_or_false_and_never_raises(
    body: bytes, signature: Optional[str], secret: Any
) -> None:
    assert verify_signature(body, signature, secret) in (True, False)


@given(body=st.binary(max_size=200), secret=st.text(min_size=1, max_size=70))
def test_a_correct_signature_verifies_and_one_flipped_digit_does_not(
    body: bytes, secret: str
) -> None:
    try:
        signature = sign_body(body, secret)
    except UnicodeEncodeError:
        return  # a lone surrogate is no key; verify_signature says False for it
    assert verify_signature(body, signature, secret)
    flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
    assert not verify_signature(body, flipped, secret)


# --- the receiver, called directly with what no framework would hand it ------------------------


@given(
    target=st.text(max_size=30),
    headers=st.dictionaries(
        st.sampled_from(["X-Hook-Secret", "X-Hook-Signature", "Content-Length"]),
        st.text(max_size=70),
    ),
    body=st.binary(max_size=100),
)
@example(target="/asana/\udcff", headers={}, body=b"")
@example(target="/asana/x?q=\ud800", headers={"X-Hook-Secret": SECRET}, body=b"")
def test_handle_never_raises_even_for_lone_surrogates(
    target: str, headers: dict[str, str], body: bytes
) -> None:
    store = MemorySecretStore()
    store.set("/asana/t", SECRET)
    answer = WebhookReceiver(store).handle(target, headers, body)
    assert answer.status in {200, 400, 401, 403, 413}


def test_a_target_with_lone_surrogates_still_has_a_key() -> None:
    assert target_key("/asana/\udcff") != target_key("/asana/\udcfe")


# --- the receiver over real sockets ---------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[Event]] = []
        self.lock = threading.Lock()

    def __call__(self, events: Sequence[Event], target: str) -> None:
        with self.lock:
            self.calls.append(list(events))


LIMIT = 64 * 1024


@contextlib.contextmanager
def flask_server(receiver: WebhookReceiver) -> Iterator[int]:
    flask = pytest.importorskip("flask")
    from werkzeug.serving import WSGIRequestHandler, make_server

    from asana_webhooks.contrib.flask import webhook_blueprint

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = flask.Flask("hostile")
    app.register_blueprint(webhook_blueprint(receiver, "/asana"))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def wsgi_server(receiver: WebhookReceiver) -> Iterator[int]:
    with ReceiverServer(wsgi_app(receiver)) as server:
        yield server.port


class Site:
    def __init__(self, port: int, store: MemorySecretStore, on_events: Recorder) -> None:
        self.port = port
        self.store = store
        self.on_events = on_events

    def raw(
        self, head: bytes, body: bytes = b"", *, timeout: float = 3.0
    ) -> tuple[int, bytes, float]:
        """Send bytes as they are; return the status, the answer's head, and the seconds taken."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(head + body)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        elapsed = time.monotonic() - started
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1."), f"no HTTP answer: {answer[:200]!r}"
        return int(status_line.split()[1]), answer, elapsed

    def post(
        self, path: str, headers: Sequence[tuple[str, str]], body: bytes = b""
    ) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        status, answer, _ = self.raw(head, body)
        return status, answer


@pytest.fixture(params=["flask", "wsgi"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    store = MemorySecretStore()
    on_events = Recorder()
    receiver = WebhookReceiver(store, on_events, max_body_bytes=LIMIT)
    serve: Callable[[WebhookReceiver], Any] = (
        flask_server if request.param == "flask" else wsgi_server
    )
    with serve(receiver) as port:
        yield Site(port, store, on_events)


DELIVERY = json.dumps({"events": [make_event()]}).encode()


def echoes_a_secret(answer: bytes) -> bool:
    """Whether the answer's head carries an X-Hook-Secret header (its body may name it)."""
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    return b"\r\nx-hook-secret:" in head


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_are_405_and_store_nothing(site: Site, method: str) -> None:
    site.store.announce("/asana/t")
    head = (
        f"{method} /asana/t HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        f"X-Hook-Secret: {SECRET}\r\n\r\n"
    )
    status, _, _ = site.raw(head.encode())
    assert status == 405
    assert site.store.get("/asana/t") is None


def test_two_signature_headers_are_refused_whichever_is_valid(site: Site) -> None:
    site.store.set("/asana/t", SECRET)
    good = sign_body(DELIVERY, SECRET)
    bad = sign_body(DELIVERY, "another secret")
    for pair in ((good, bad), (bad, good), (good, good)):
        status, _ = site.post("/asana/t", [("X-Hook-Signature", v) for v in pair], DELIVERY)
        assert status == 401, f"two X-Hook-Signature headers {pair} were not refused"
    assert site.on_events.calls == []
    status, _ = site.post("/asana/t", [("X-Hook-Signature", good)], DELIVERY)
    assert status == 200 and len(site.on_events.calls) == 1


def test_two_secret_headers_in_a_handshake_are_refused(site: Site) -> None:
    site.store.announce("/asana/h")
    status, answer = site.post("/asana/h", [("X-Hook-Secret", "aaaa"), ("X-Hook-Secret", "bbbb")])
    assert status == 400, f"a handshake with two secrets got {status}"
    assert not echoes_a_secret(answer)
    assert site.store.get("/asana/h") is None, "a merged 'aaaa,bbbb' must not be stored"


def test_missing_signature_and_missing_secret_are_refused(site: Site) -> None:
    site.store.set("/asana/t", SECRET)
    assert site.post("/asana/t", [], DELIVERY)[0] == 401
    assert site.post("/asana/t", [("X-Hook-Signature", "")], DELIVERY)[0] == 401
    assert site.post("/asana/t", [("X-Hook-Secret", "")])[0] in (400, 401)
    assert site.on_events.calls == []


def test_a_huge_declared_length_is_refused_at_once_without_reading_it(site: Site) -> None:
    site.store.set("/asana/t", SECRET)
    head = (
        b"POST /asana/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Hook-Signature: " + sign_body(b"{}", SECRET).encode() + b"\r\n"
        b"Content-Length: 100000000\r\n\r\n"
    )
    tracemalloc.start()
    try:
        status, _, elapsed = site.raw(head, b'{"events": []}')
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    assert elapsed < 1.0, f"the 413 took {elapsed:.2f}s: the server waited for the body"
    assert peak < 10 * 1024 * 1024, f"{peak / 1e6:.1f} MB allocated for a refused request"


def test_a_chunked_body_over_the_limit_is_refused(site: Site) -> None:
    site.store.set("/asana/t", SECRET)
    chunk = b"a" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2))
    head = (
        b"POST /asana/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"X-Hook-Signature: " + b"0" * 64 + b"\r\n\r\n"
    )
    status, _, _ = site.raw(head, body + b"0\r\n\r\n")
    assert status in (413, 401), status  # the wsgiref server hands over no chunked body
    assert site.on_events.calls == []


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "99999999999999999999999"])
def test_a_malformed_or_absurd_length_is_refused(site: Site, length: str) -> None:
    head = f"POST /asana/t HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    status, _, elapsed = site.raw(head, b"{}")
    assert status in (400, 413)
    assert elapsed < 1.0


def test_a_body_that_is_not_utf8_is_400_when_signed_and_401_when_not(site: Site) -> None:
    site.store.set("/asana/t", SECRET)
    body = b'{"events": [\xff\xfe\x80]}'
    assert site.post("/asana/t", [("X-Hook-Signature", sign_body(body, SECRET))], body)[0] == 400
    assert site.post("/asana/t", [("X-Hook-Signature", sign_body(body, "x"))], body)[0] == 401
    latin1 = json.dumps({"events": [make_event()]}).encode().replace(b'"', b'"', 1) + b"\xe9"
    assert (
        site.post("/asana/t", [("X-Hook-Signature", sign_body(latin1, SECRET))], latin1)[0] == 400
    )
    assert site.on_events.calls == []


def test_a_second_handshake_is_refused_unless_announced(site: Site) -> None:
    site.store.set("/asana/t", SECRET)
    status, answer = site.post("/asana/t", [("X-Hook-Secret", "c" * 64)])
    assert status == 403 and not echoes_a_secret(answer)
    assert site.store.get("/asana/t") == SECRET, "an unannounced handshake replaced the secret"
    site.store.announce("/asana/t")
    status, answer = site.post("/asana/t", [("X-Hook-Secret", "c" * 64)])
    assert status == 200 and b"X-Hook-Secret: " + b"c" * 64 in answer
    assert site.store.get("/asana/t") == "c" * 64


# --- deliveries after the secret is gone, end to end ------------------------------------------


def test_deliveries_after_the_secret_was_removed_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemorySecretStore()
    on_events = Recorder()
    receiver = WebhookReceiver(store, on_events)
    with FakeAsana() as fake, ReceiverServer(wsgi_app(receiver)) as server:
        config = Configuration(host=fake.url, access_token=fake.access_token)
        with ApiClient(config) as client:
            target = f"{server.url}/asana/gone"
            webhook = establish_webhook(WebhooksApi(client), receiver, "1209000000000009", target)
            assert fake.deliver(webhook.gid, [make_event()]) == 200
            store.delete(target)
            with caplog.at_level(logging.WARNING, logger="asana_webhooks"):
                assert fake.deliver(webhook.gid, [make_event()]) == 401
                assert fake.heartbeat(webhook.gid) == 401
    assert len(on_events.calls) == 1, "only the delivery before the removal may reach the app"
    assert "no secret is stored" in caplog.text
