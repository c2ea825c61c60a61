"""WebhookReceiver: the handshake, signed deliveries, heartbeats, limits and failures."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asana_webhooks._receiver as receiver_module
from asana_webhooks import (
    Event,
    MemorySecretStore,
    ReceiverResponse,
    SQLiteSecretStore,
    WebhookReceiver,
    sign_body,
)

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
TARGET = "https://example.com/asana/webhooks/1201?team=a"
PATH = "/asana/webhooks/1201?team=a"
EVENT = {
    "user": {"gid": "1", "resource_type": "user"},
    "resource": {"gid": "2", "resource_type": "task", "name": "A task"},
    "action": "changed",
    "created_at": "2024-05-01T10:00:00.000Z",
    "change": {"field": "name", "action": "changed"},
}
DELIVERY = json.dumps({"events": [EVENT, dict(EVENT, action="deleted")]}).encode()
HEARTBEAT = b'{"events":[]}'


class Recorder:
    """An ``on_events`` that remembers its calls, and can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[Event], str]] = []
        self.fail = fail

    def __call__(self, events: Sequence[Event], target: str) -> None:
        self.calls.append((list(events), target))
        if self.fail:
            raise RuntimeError("the application's database is down")


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def on_events() -> Recorder:
    return Recorder()


@pytest.fixture
def receiver(store: MemorySecretStore, on_events: Recorder) -> WebhookReceiver:
    return WebhookReceiver(store, on_events)


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hook-Signature": sign_body(body, secret)}


# --- handshake ---------------------------------------------------------------------------


def test_an_announced_handshake_is_stored_and_echoed(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    store.announce(TARGET)
    answer = receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert answer.status == 200
    assert answer.headers["X-Hook-Secret"] == SECRET, "Asana needs the secret echoed back"
    assert store.get(TARGET) == SECRET


def test_an_unannounced_handshake_is_forbidden_and_stores_nothing(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    answer = receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert answer.status == 403
    assert "X-Hook-Secret" not in answer.headers
    assert store.get(TARGET) is None, "a stranger must not be able to plant a secret"


def test_one_announcement_admits_one_handshake(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    store.announce(TARGET)
    assert receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"").status == 200
    second = receiver.handle(TARGET, {"X-Hook-Secret": "attacker"}, b"")
    assert second.status == 403
    assert store.get(TARGET) == SECRET


def test_an_expired_announcement_admits_nothing(on_events: Recorder) -> None:
    now = [1000.0]
    store = MemorySecretStore(clock=lambda: now[0])
    receiver = WebhookReceiver(store, on_events)
    store.announce(TARGET, ttl=30)
    now[0] += 31
    assert receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"").status == 403
    assert store.get(TARGET) is None


@pytest.mark.parametrize("name", ["x-hook-secret", "X-HOOK-SECRET", "X-Hook-Secret"])
def test_header_names_match_in_any_case(
    receiver: WebhookReceiver, store: MemorySecretStore, name: str
) -> None:
    store.announce(TARGET)
    assert receiver.handle(TARGET, {name: SECRET}, b"").status == 200
    body_headers = {"x-HOOK-signature": sign_body(HEARTBEAT, SECRET)}
    assert receiver.handle(TARGET, body_headers, HEARTBEAT).status == 200


def test_unannounced_handshakes_can_be_allowed_for_simple_setups(store: MemorySecretStore) -> None:
    receiver = WebhookReceiver(store, accept_unannounced_handshakes=True)
    assert receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"").status == 200
    assert store.get(TARGET) == SECRET
    replaced = receiver.handle(TARGET, {"X-Hook-Secret": "attacker"}, b"")
    assert replaced.status == 403, "a target that has a secret must refuse a new one"
    assert store.get(TARGET) == SECRET
    store.announce(TARGET)
    assert receiver.handle(TARGET, {"X-Hook-Secret": "0" * 64}, b"").status == 200
    assert store.get(TARGET) == "0" * 64, "an announced re-handshake replaces the secret"


@pytest.mark.parametrize("bad_secret", ["", "a\r\nSet-Cookie: x=1", "\u00e9" * 64, "x" * 2000])
def test_a_malformed_handshake_secret_is_refused(
    receiver: WebhookReceiver, store: MemorySecretStore, bad_secret: str
) -> None:
    announcement = store.announce(TARGET)
    answer = receiver.handle(TARGET, {"X-Hook-Secret": bad_secret}, b"")
    assert answer.status == 400
    assert store.get(TARGET) is None
    assert store.withdraw_announcement(TARGET, announcement) is None, (
        "the announcement must stay unused"
    )


def test_the_app_learns_of_a_handshake(store: MemorySecretStore) -> None:
    seen: list[str] = []
    receiver = WebhookReceiver(store, on_handshake=seen.append)
    store.announce(TARGET)
    receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert seen == [PATH]


def test_a_failing_on_handshake_does_not_undo_the_handshake(
    store: MemorySecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(target: str) -> None:
        raise ValueError("oops")

    receiver = WebhookReceiver(store, on_handshake=broken)
    store.announce(TARGET)
    with caplog.at_level(logging.ERROR, logger="asana_webhooks"):
        answer = receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert answer.status == 200
    assert store.get(TARGET) == SECRET
    assert "on_handshake raised" in caplog.text


def test_a_url_and_the_path_it_arrives_on_are_one_target(
    receiver: WebhookReceiver, store: MemorySecretStore, on_events: Recorder
) -> None:
    store.announce(TARGET)
    receiver.handle(TARGET, {"X-Hook-Secret": SECRET}, b"")
    answer = receiver.handle(PATH, signed(DELIVERY), DELIVERY)
    assert answer.status == 200
    assert on_events.calls[0][1] == PATH, "on_events gets the target's path and query"


# --- deliveries ----------------------------------------------------------------------------


@pytest.fixture
def established(store: MemorySecretStore) -> MemorySecretStore:
    store.set(TARGET, SECRET)
    return store


@pytest.mark.usefixtures("established")
def test_a_signed_delivery_is_dispatched_once(
    receiver: WebhookReceiver, on_events: Recorder
) -> None:
    answer = receiver.handle(PATH, signed(DELIVERY), DELIVERY)
    assert answer.status == 200
    assert len(on_events.calls) == 1, "on_events must be called exactly once per delivery"
    events, target = on_events.calls[0]
    assert [e.action for e in events] == ["changed", "deleted"]
    assert events[0].resource is not None
    assert events[0].resource.name == "A task"
    assert target == PATH


@pytest.mark.usefixtures("established")
def test_a_heartbeat_is_answered_without_calling_the_app(
    receiver: WebhookReceiver, on_events: Recorder
) -> None:
    assert receiver.handle(PATH, signed(HEARTBEAT), HEARTBEAT).status == 200
    assert on_events.calls == []


def test_a_delivery_for_an_unknown_target_is_unauthorized(
    receiver: WebhookReceiver, on_events: Recorder
) -> None:
    assert receiver.handle(PATH, signed(DELIVERY), DELIVERY).status == 401
    assert on_events.calls == []


@pytest.mark.usefixtures("established")
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hook-Signature": ""},
        {"X-Hook-Signature": "not-hex"},
        {"X-Hook-Signature": sign_body(DELIVERY, "wrong secret")},
        {"X-Hook-Signature": sign_body(DELIVERY, SECRET)[:-1]},
        # Signed over the JSON re-serialised: not the bytes Asana sent.
        {
            "X-Hook-Signature": sign_body(
                json.dumps(json.loads(DELIVERY), separators=(",", ":")).encode(), SECRET
            )
        },
    ],
    ids=["missing", "empty", "not hex", "wrong secret", "truncated", "re-serialised"],
)
def test_a_bad_signature_is_unauthorized_and_not_dispatched(
    receiver: WebhookReceiver, on_events: Recorder, headers: dict[str, str]
) -> None:
    assert receiver.handle(PATH, headers, DELIVERY).status == 401
    assert on_events.calls == []


@pytest.mark.usefixtures("established")
def test_the_signature_is_checked_before_the_body_is_parsed(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_parse(body: bytes) -> tuple[list[object], list[Event]]:
        raise AssertionError("parsed an unverified body")

    monkeypatch.setattr(receiver_module, "parse_events_raw", must_not_parse)
    answer = receiver.handle(PATH, signed(b"not json", "wrong"), b"not json")
    assert answer.status == 401


@pytest.mark.usefixtures("established")
@pytest.mark.parametrize(
    "body", [b"not json", b"", b"[]", b'{"events": {}}', b'{"events": [{"resource": {}}]}']
)
def test_a_signed_body_that_is_not_asanas_json_is_a_bad_request(
    receiver: WebhookReceiver, on_events: Recorder, body: bytes
) -> None:
    answer = receiver.handle(PATH, signed(body), body)
    assert answer.status == 400
    assert on_events.calls == []


@pytest.mark.usefixtures("established")
def test_a_failing_app_gets_a_500_so_asana_retries(
    store: MemorySecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    failing = Recorder(fail=True)
    receiver = WebhookReceiver(store, failing)
    with caplog.at_level(logging.ERROR, logger="asana_webhooks"):
        answer = receiver.handle(PATH, signed(DELIVERY), DELIVERY)
    assert answer.status == 500
    assert len(failing.calls) == 1
    assert "on_events raised" in caplog.text
    assert "database is down" in caplog.text, "the traceback should be logged"


@pytest.mark.usefixtures("established")
def test_events_without_a_handler_are_acknowledged(store: MemorySecretStore) -> None:
    assert WebhookReceiver(store).handle(PATH, signed(DELIVERY), DELIVERY).status == 200


def test_a_failing_store_is_a_server_error(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenStore(MemorySecretStore):
        def get(self, target: str) -> Optional[str]:
            raise OSError("disk full")

        def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
            raise OSError("disk full")

    receiver = WebhookReceiver(BrokenStore())
    with caplog.at_level(logging.ERROR, logger="asana_webhooks"):
        assert receiver.handle(PATH, signed(DELIVERY), DELIVERY).status == 500
        assert receiver.handle(PATH, {"X-Hook-Secret": SECRET}, b"").status == 500
    assert SECRET not in caplog.text


# --- limits and methods ------------------------------------------------------------------


@pytest.mark.usefixtures("established")
def test_a_body_over_the_limit_is_refused(store: MemorySecretStore, on_events: Recorder) -> None:
    receiver = WebhookReceiver(store, on_events, max_body_bytes=len(DELIVERY) - 1)
    assert receiver.handle(PATH, signed(DELIVERY), DELIVERY).status == 413
    assert on_events.calls == []
    assert receiver.handle(PATH, signed(HEARTBEAT), HEARTBEAT).status == 200


def test_the_default_limit_is_a_few_mebibytes() -> None:
    receiver = WebhookReceiver(MemorySecretStore())
    assert 1024 * 1024 <= receiver.max_body_bytes <= 16 * 1024 * 1024


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    receiver: WebhookReceiver,
) -> None:
    big = str(receiver.max_body_bytes + 1)
    early = receiver.reject_early("POST", {"content-length": big})
    assert early is not None
    assert early.status == 413
    assert receiver.reject_early("POST", {"Content-Length": "10"}) is None
    assert receiver.reject_early("POST", {}) is None, "no length: the adapter reads with a cap"


@pytest.mark.parametrize("length", ["-1", "ten", "1e3", "\u0661\u0662"])
def test_a_malformed_content_length_is_a_bad_request(
    receiver: WebhookReceiver, length: str
) -> None:
    early = receiver.reject_early("POST", {"Content-Length": length})
    assert early is not None
    assert early.status == 400


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_are_not_allowed(
    receiver: WebhookReceiver, store: MemorySecretStore, method: str
) -> None:
    store.announce(TARGET)
    answer = receiver.handle_request(method, TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
    assert store.get(TARGET) is None


def test_handle_request_handles_post(receiver: WebhookReceiver, store: MemorySecretStore) -> None:
    store.announce(TARGET)
    answer = receiver.handle_request("post", TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert answer == ReceiverResponse(200, {"X-Hook-Secret": SECRET}, b"")


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        WebhookReceiver(MemorySecretStore(), max_body_bytes=-1)


# --- secrets stay secret -------------------------------------------------------------------


def test_logs_and_reprs_never_show_secrets_or_signatures(
    store: MemorySecretStore, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = WebhookReceiver(store, Recorder(fail=True))
    signature = sign_body(DELIVERY, SECRET)
    with caplog.at_level(logging.DEBUG, logger="asana_webhooks"):
        receiver.handle(PATH, {"X-Hook-Secret": SECRET}, b"")  # refused: not announced
        store.announce(TARGET)
        receiver.handle(PATH, {"X-Hook-Secret": SECRET}, b"")  # accepted
        receiver.handle(PATH, {"X-Hook-Secret": SECRET}, b"")  # refused: used up
        receiver.handle(PATH, {"X-Hook-Signature": signature}, DELIVERY)  # app fails
        receiver.handle(PATH, {"X-Hook-Signature": signature}, b"{")  # bad signature
        receiver.handle(PATH, signed(b"{"), b"{")  # signed, not JSON
    assert caplog.records, "the receiver should log what it refused"
    for text in (SECRET, signature, sign_body(b"{", SECRET)):
        assert text not in caplog.text
        assert text not in repr(receiver)


def test_the_answers_never_contain_the_stored_secret(
    receiver: WebhookReceiver, established: MemorySecretStore
) -> None:
    for answer in (
        receiver.handle(PATH, {}, DELIVERY),
        receiver.handle(PATH, signed(b"{"), b"{"),
        receiver.handle(PATH, {"X-Hook-Secret": "other"}, b""),
    ):
        assert SECRET.encode() not in answer.body
        assert SECRET not in answer.headers.values()


# --- a real SQLite store -------------------------------------------------------------------


def test_handshake_then_delivery_through_a_sqlite_file(tmp_path: Path) -> None:
    store = SQLiteSecretStore(tmp_path / "secrets.sqlite3")
    on_events = Recorder()
    store.announce(TARGET)
    assert WebhookReceiver(store).handle(TARGET, {"X-Hook-Secret": SECRET}, b"").status == 200
    # Another worker process would build its own receiver over the same file.
    other_worker = WebhookReceiver(SQLiteSecretStore(tmp_path / "secrets.sqlite3"), on_events)
    assert other_worker.handle(PATH, signed(DELIVERY), DELIVERY).status == 200
    assert len(on_events.calls) == 1


# --- robustness ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    target=st.text(max_size=40),
    headers=st.dictionaries(
        st.sampled_from(["X-Hook-Secret", "X-Hook-Signature", "Content-Length", "X-Other"]),
        st.text(max_size=70),
    ),
    body=st.binary(max_size=200) | st.just(DELIVERY),
)
def test_handle_never_raises(target: str, headers: dict[str, str], body: bytes) -> None:
    store = MemorySecretStore()
    store.set(PATH, SECRET)
    receiver = WebhookReceiver(store, Recorder())
    answer = receiver.handle(target, headers, body)
    assert answer.status in {200, 400, 401, 403, 413}
    early = receiver.reject_early("POST", headers)
    assert early is None or early.status in {400, 413}


def test_importing_the_library_imports_no_web_framework() -> None:
    code = (
        "import sys, asana_webhooks, asana_webhooks.contrib;"
        "loaded = [m for m in ('flask', 'django', 'werkzeug') if m in sys.modules];"
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"importing asana_webhooks imported {result.stderr.strip()}"


def test_header_values_of_the_wrong_type_are_refused_not_raised(
    receiver: WebhookReceiver, store: MemorySecretStore
) -> None:
    store.announce(TARGET)
    odd_headers: dict[str, Any] = {"X-Hook-Secret": SECRET.encode()}
    assert receiver.handle(TARGET, odd_headers, b"").status == 400
    store.set(TARGET, SECRET)
    odd_headers = {"X-Hook-Signature": sign_body(DELIVERY, SECRET).encode()}
    assert receiver.handle(TARGET, odd_headers, DELIVERY).status == 401
