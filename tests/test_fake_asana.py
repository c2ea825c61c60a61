"""FakeAsana over real HTTP on 127.0.0.1, checked with plain ``requests`` (no library client).

Fixtures ``asana_fake`` and ``asana_target`` come from asana_webhooks.testing.pytest_plugin
(the package's pytest11 entry point).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Optional

import pytest
import requests

from asana_webhooks.testing import FakeAsana, RecordingTarget, make_event

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
GID = re.compile(r"^\d{16}$")
TIMEOUT = 5.0


class Api:
    """A thin requests.Session bound to a FakeAsana, with a finite timeout on every call."""

    def __init__(self, fake: FakeAsana, token: Optional[str] = None) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token or fake.access_token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.fake.url + path, **kwargs)

    def create(self, resource: str, target: str, **data: Any) -> requests.Response:
        return self.call(
            "POST", "/webhooks", json={"data": {"resource": resource, "target": target, **data}}
        )

    def list(self, **params: Any) -> requests.Response:
        params.setdefault("workspace", self.fake.workspace_gid)
        return self.call("GET", "/webhooks", params=params)


@pytest.fixture
def api(asana_fake: FakeAsana) -> Iterator[Api]:
    client = Api(asana_fake)
    yield client
    client.session.close()


def error_message(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"errors"}, f"not an Asana error body: {body}"
    errors = body["errors"]
    assert errors and isinstance(errors[0]["message"], str) and errors[0]["help"], body
    return str(errors[0]["message"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- lifecycle ---------------------------------------------------------------------------


def test_constructing_starts_nothing_and_url_needs_start() -> None:
    threads_before = threading.active_count()
    fake = FakeAsana(access_token="secret-token-value")
    assert threading.active_count() == threads_before, "construction must not start threads"
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url
    assert "secret-token-value" not in repr(fake)


def test_url_is_loopback_with_api_base_path_and_repr_hides_token() -> None:
    with FakeAsana(access_token="secret-token-value") as fake:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/1\.0", fake.url), fake.url
        assert fake.access_token == "secret-token-value"
        assert "secret-token-value" not in repr(fake)
        assert "secret-token-value" not in str(fake)


def test_stop_is_quick_even_with_idle_keep_alive_connections() -> None:
    fake = FakeAsana().start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fake.access_token}"
    response = session.get(
        fake.url + "/webhooks", params={"workspace": fake.workspace_gid}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 2.0, "stop() must not wait for idle keep-alive connections"
    fake.stop()  # twice is fine
    session.close()


def test_stop_interrupts_a_delayed_request() -> None:
    fake = FakeAsana().start()
    fake.delay_next(30)
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            requests.get(fake.url + "/webhooks", timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    fake.stop()
    thread.join(5)
    assert time.monotonic() - started < 3.0, "stop() must wake delayed handlers"
    assert not thread.is_alive()


def test_wait_returns_once_stopped() -> None:
    fake = FakeAsana().start()
    assert fake.wait(0.05) is False
    threading.Timer(0.1, fake.stop).start()
    assert fake.wait(5) is True


def test_fixed_port_is_used(asana_fake: FakeAsana) -> None:
    port = free_port()
    with FakeAsana(port=port) as fake:
        assert fake.port == port
        assert fake.url == f"http://127.0.0.1:{port}/api/1.0"


def test_keep_alive_connections_are_reused(api: Api) -> None:
    for _ in range(5):
        assert api.list().status_code == 200
    hook = api.fake.add_webhook("1200000000000001", "http://127.0.0.1:9/hook")
    assert api.call("GET", f"/webhooks/{hook['gid']}").status_code == 200
    assert api.call("GET", "/webhooks/1299999999999999").status_code == 404
    ports = {record.client_port for record in api.fake.requests}
    assert len(ports) == 1, "HTTP/1.1 keep-alive should let a pooled connection be reused"


# --- authentication and routing -------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic Zm9vOmJhcg==", "Bearer", ""],
    ids=["missing", "wrong-token", "basic", "no-token", "empty"],
)
def test_requests_without_the_right_bearer_token_get_401(
    asana_fake: FakeAsana, authorization: Optional[str]
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.get(
        asana_fake.url + "/webhooks",
        params={"workspace": asana_fake.workspace_gid},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert error_message(response) == "Not Authorized"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/tasks"), ("TRACE", "/tasks"), ("GET", "/webhooks/1/2"), ("POST", "/events/1")],
)
def test_unknown_routes_get_404(api: Api, method: str, path: str) -> None:
    response = api.call(method, path)
    assert response.status_code == 404
    assert error_message(response) == "No matching route for request"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/webhooks/1200000000000001", "GET, PUT, DELETE"),
        ("DELETE", "/webhooks", "GET, POST"),
        ("TRACE", "/webhooks", "GET, POST"),
        ("PROPFIND", "/webhooks/1200000000000001", "GET, PUT, DELETE"),
        ("OPTIONS", "/events", "GET"),
        ("PUT", "/workspaces/1200000000000001/events", "GET"),
    ],
)
def test_methods_a_known_path_does_not_serve_get_405_with_allow(
    api: Api, method: str, path: str, allowed: str
) -> None:
    response = api.call(method, path)
    assert response.status_code == 405, f"{method} {path}: {response.status_code} {response.text}"
    assert response.headers["Allow"] == allowed
    assert method in error_message(response)


def test_head_is_get_without_a_body(api: Api) -> None:
    response = api.call("HEAD", "/webhooks", params={"workspace": api.fake.workspace_gid})
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["Content-Length"]) > 0


@pytest.mark.parametrize("value", ["foo", "1", "yes", "{'limit': 2}"])
def test_non_boolean_opt_pretty_is_400(api: Api, value: str) -> None:
    response = api.list(opt_pretty=value)
    assert response.status_code == 400, response.text
    assert error_message(response) == f"opt_pretty: Not a boolean: {value}"


@pytest.mark.parametrize(("value", "pretty"), [("", True), ("true", True), ("FALSE", False)])
def test_boolean_opt_pretty_is_accepted(api: Api, value: str, pretty: bool) -> None:
    response = api.list(opt_pretty=value)
    assert response.status_code == 200, response.text
    assert (b"\n" in response.content) is pretty


def test_paths_outside_the_api_base_get_404(asana_fake: FakeAsana) -> None:
    base = asana_fake.url.replace("/api/1.0", "")
    response = requests.get(
        base + "/webhooks",
        headers={"Authorization": f"Bearer {asana_fake.access_token}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 404
    assert error_message(response)


def test_malformed_request_line_gets_asana_shaped_error(asana_fake: FakeAsana) -> None:
    with socket.create_connection(("127.0.0.1", asana_fake.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0], head
    assert "errors" in json.loads(body), body


# --- create and the handshake ---------------------------------------------------------------


def test_create_performs_the_handshake_while_the_request_is_in_flight(
    api: Api, asana_target: RecordingTarget
) -> None:
    response = api.create("1200000000000001", asana_target.url)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "X-Hook-Secret"}
    secret = body["X-Hook-Secret"]
    assert re.fullmatch(r"[0-9a-f]{64}", secret), "X-Hook-Secret should be 64 hex characters"
    assert asana_target.handshake_secrets == [secret], "the handshake must carry the same secret"
    handshake = asana_target.received[0]
    assert handshake.body == b"", "the handshake POST has an empty body"
    webhook = body["data"]
    assert GID.match(webhook["gid"]), webhook["gid"]
    assert webhook["resource_type"] == "webhook"
    assert webhook["resource"] == {
        "gid": "1200000000000001",
        "resource_type": "task",
        "name": "Task 1200000000000001",
    }
    assert webhook["target"] == asana_target.url
    assert TIMESTAMP.match(webhook["created_at"]), webhook["created_at"]
    for field in ("last_failure_at", "next_attempt_after", "failure_deletion_timestamp"):
        assert webhook[field] is None, field
    assert webhook["delivery_retry_count"] == 0
    assert webhook["filters"] == []
    # As published real 201 answers show: the handshake was the first successful delivery.
    assert webhook["active"] is True
    assert webhook["last_failure_content"] == ""
    assert TIMESTAMP.match(webhook["last_success_at"]), webhook["last_success_at"]
    assert webhook["last_success_at"] > webhook["created_at"], "just after created_at"
    assert response.headers["Location"] == f"{api.fake.url}/webhooks/{webhook['gid']}"
    assert api.fake.secret_for(webhook["gid"]) == secret
    stored = api.fake.get_webhook(webhook["gid"])
    assert stored is not None and stored["active"] is True


def test_create_keeps_filters_and_declared_resources(
    api: Api, asana_target: RecordingTarget
) -> None:
    project = api.fake.add_resource(name="Bugs", resource_type="project")
    filters = [
        {"resource_type": "task", "action": "changed", "fields": ["due_on"]},
        {"action": "added"},
    ]
    response = api.create(project, asana_target.url, filters=filters)
    assert response.status_code == 201, response.text
    webhook = response.json()["data"]
    assert webhook["resource"] == {"gid": project, "resource_type": "project", "name": "Bugs"}
    assert webhook["filters"] == [
        {
            "resource_type": "task",
            "resource_subtype": None,
            "action": "changed",
            "fields": ["due_on"],
        },
        {"resource_type": None, "resource_subtype": None, "action": "added", "fields": None},
    ]


def test_create_accepts_a_form_encoded_body_like_asanas_curl_example(
    api: Api, asana_target: RecordingTarget
) -> None:
    response = api.call(
        "POST", "/webhooks", data={"resource": "1200000000000002", "target": asana_target.url}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": {"target": "http://127.0.0.1:1/x"}}, "You should specify one of resource"),
        (
            {"data": {"data": {"resource": "1200000000000001", "target": "http://127.0.0.1:1/x"}}},
            "You should specify one of resource",
        ),
        ({"data": {"resource": "1200000000000001"}}, "target: Missing input"),
        ({"resource": "1200000000000001", "target": "http://127.0.0.1:1/x"}, "data: Missing input"),
        (
            {"data": {"resource": "not-a-gid", "target": "http://127.0.0.1:1/x"}},
            "resource: Not a recognized ID: not-a-gid",
        ),
        ({"data": {"resource": "1200000000000001", "target": "ftp://127.0.0.1/x"}}, "target:"),
        (
            {
                "data": {
                    "resource": "1200000000000001",
                    "target": "http://127.0.0.1:1/x",
                    "filters": {"action": "added"},
                }
            },
            "filters:",
        ),
        (
            {
                "data": {
                    "resource": "1200000000000001",
                    "target": "http://127.0.0.1:1/x",
                    "filters": [{"action": "exploded"}],
                }
            },
            "filters[0].action",
        ),
        (
            {
                "data": {
                    "resource": "1200000000000001",
                    "target": "http://127.0.0.1:1/x",
                    "filters": [{"action": "added", "fields": ["name"]}],
                }
            },
            "filters[0].fields",
        ),
    ],
    ids=[
        "no-resource",
        "double-data",
        "no-target",
        "no-envelope",
        "bad-gid",
        "bad-scheme",
        "filters-not-list",
        "bad-action",
        "fields-without-changed",
    ],
)
def test_create_rejects_bad_input_with_400(api: Api, body: dict[str, Any], message: str) -> None:
    response = api.call("POST", "/webhooks", json=body)
    assert response.status_code == 400, response.text
    assert error_message(response).startswith(message)
    assert api.fake.webhooks == []


def test_create_rejects_invalid_json_with_400(api: Api) -> None:
    response = api.call(
        "POST", "/webhooks", data=b'{"data": {', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in error_message(response)


def test_webhooks_on_a_workspace_need_filters(api: Api, asana_target: RecordingTarget) -> None:
    response = api.create(api.fake.workspace_gid, asana_target.url)
    assert response.status_code == 400
    assert "filters" in error_message(response)
    ok = api.create(
        api.fake.workspace_gid,
        asana_target.url,
        filters=[{"resource_type": "project", "action": "added"}],
    )
    assert ok.status_code == 201, ok.text


def test_a_second_webhook_on_the_same_resource_and_target_is_403(
    api: Api, asana_target: RecordingTarget
) -> None:
    assert api.create("1200000000000001", asana_target.url).status_code == 201
    response = api.create("1200000000000001", asana_target.url)
    assert response.status_code == 403
    assert error_message(response) == (
        "Duplicated webhook. You already have an existing webhook for the given resource and "
        "target. Delete the old one before creating another."
    )
    assert len(asana_target.handshake_secrets) == 1, "a duplicate is refused before any handshake"
    assert api.create("1200000000000001", asana_target.url + "?other=1").status_code == 201


def test_concurrent_creates_of_the_same_webhook_make_exactly_one(
    api: Api, asana_target: RecordingTarget
) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(
            pool.map(
                lambda _: Api(api.fake).create("1200000000000001", asana_target.url).status_code,
                range(8),
            )
        )
    assert statuses.count(201) == 1, statuses
    assert set(statuses) == {201, 403}, statuses
    assert len(api.fake.webhooks) == 1


@pytest.mark.parametrize(
    "target_url",
    [
        "http://example.com/hook",
        "https://10.0.0.1/hook",
        "http://192.168.1.1:8080/x",
        "http://[2001:db8::1]/x",
    ],
)
def test_targets_off_this_machine_are_refused_without_connecting(api: Api, target_url: str) -> None:
    response = api.create("1200000000000001", target_url)
    assert response.status_code == 400
    assert "loopback" in error_message(response)
    assert api.fake.outbound == [], "FakeAsana must never connect outside 127.0.0.1/::1"


def test_refuse_loopback_targets_gives_asanas_403(asana_target: RecordingTarget) -> None:
    with FakeAsana(refuse_loopback_targets=True) as fake:
        response = Api(fake).create("1200000000000001", asana_target.url)
    assert response.status_code == 403
    assert "localhost" in error_message(response)
    assert asana_target.received == []


def _handshake_failure(api: Api, target_url: str) -> str:
    response = api.create("1200000000000001", target_url)
    assert response.status_code == 400, response.text
    assert api.fake.webhooks == [], "a failed handshake must not create a webhook"
    message = error_message(response)
    assert message.startswith("Could not complete activation handshake with target URL"), message
    return message


def test_handshake_fails_when_the_target_does_not_echo_the_secret(
    api: Api, asana_target: RecordingTarget
) -> None:
    asana_target.echo_secret = False
    assert "without an X-Hook-Secret" in _handshake_failure(api, asana_target.url)


def test_handshake_fails_when_the_target_answers_an_error(
    api: Api, asana_target: RecordingTarget
) -> None:
    asana_target.handshake_status = 500
    assert "500" in _handshake_failure(api, asana_target.url)


def test_handshake_accepts_204(api: Api, asana_target: RecordingTarget) -> None:
    asana_target.handshake_status = 204
    assert api.create("1200000000000001", asana_target.url).status_code == 201


def test_handshake_fails_when_nothing_listens(api: Api) -> None:
    _handshake_failure(api, f"http://127.0.0.1:{free_port()}/hook")


def test_handshake_fails_when_the_target_is_too_slow(asana_target: RecordingTarget) -> None:
    asana_target.delay = 2.0
    with FakeAsana(handshake_timeout=0.3) as fake:
        started = time.monotonic()
        message = _handshake_failure(Api(fake), asana_target.url)
        assert time.monotonic() - started < 1.5, "the handshake timeout must bound the create"
    assert "Timed out" in message


def test_handshake_to_localhost_name_works(api: Api, asana_target: RecordingTarget) -> None:
    url = asana_target.url.replace("127.0.0.1", "localhost")
    response = api.create("1200000000000001", url)
    if response.status_code == 400 and "resolves" in response.text:
        pytest.skip("localhost does not resolve to 127.0.0.1 here")
    assert response.status_code == 201, response.text


# --- get, update, delete --------------------------------------------------------------------


def test_get_update_delete_a_webhook(api: Api, asana_target: RecordingTarget) -> None:
    created = api.create(
        "1200000000000001", asana_target.url, filters=[{"action": "added"}]
    ).json()["data"]
    gid = created["gid"]
    got = api.call("GET", f"/webhooks/{gid}")
    assert got.status_code == 200
    assert got.json()["data"] == {**created, "active": True}

    updated = api.call(
        "PUT", f"/webhooks/{gid}", json={"data": {"filters": [{"action": "removed"}]}}
    )
    assert updated.status_code == 200, updated.text
    assert [f["action"] for f in updated.json()["data"]["filters"]] == ["removed"], (
        "PUT replaces the whole filters list"
    )

    refused = api.call("PUT", f"/webhooks/{gid}", json={"data": {"target": "http://127.0.0.1:1/x"}})
    assert refused.status_code == 400
    assert error_message(refused).startswith("target:")

    deleted = api.call("DELETE", f"/webhooks/{gid}")
    assert deleted.status_code == 200
    assert deleted.json() == {"data": {}}
    assert api.call("GET", f"/webhooks/{gid}").status_code == 404
    assert api.call("DELETE", f"/webhooks/{gid}").status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_webhook_gid_is_404(api: Api, method: str) -> None:
    response = api.call(method, "/webhooks/1299999999999999", json={"data": {"filters": []}})
    assert response.status_code == 404
    assert error_message(response) == "webhook: Unknown object: 1299999999999999"


def test_opt_pretty_indents_and_opt_fields_is_accepted(
    api: Api, asana_target: RecordingTarget
) -> None:
    gid = api.create("1200000000000001", asana_target.url).json()["data"]["gid"]
    response = api.call("GET", f"/webhooks/{gid}?opt_pretty&opt_fields=target,created_at")
    assert response.status_code == 200
    assert "\n  " in response.text, "opt_pretty should pretty-print"
    assert response.json()["data"]["target"] == asana_target.url


# --- listing and pagination ----------------------------------------------------------------


def test_list_requires_a_known_workspace(api: Api) -> None:
    missing = api.call("GET", "/webhooks")
    assert missing.status_code == 400
    assert error_message(missing) == "workspace: Missing input"
    unknown = api.list(workspace="1299999999999998")
    assert unknown.status_code == 404


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
def test_list_limit_must_be_between_1_and_100(api: Api, limit: str) -> None:
    response = api.list(limit=limit)
    assert response.status_code == 400
    assert error_message(response).startswith("limit:")


def test_list_without_limit_has_no_next_page_and_compact_items(api: Api) -> None:
    hook = api.fake.add_webhook("1200000000000001", "http://127.0.0.1:9/hook")
    body = api.list().json()
    assert "next_page" not in body, "next_page is only present when limit is given"
    assert body["data"] == [
        {key: hook[key] for key in ("gid", "resource_type", "active", "resource", "target")}
    ], "list items are compact by default"


def test_list_opt_fields_adds_fields(api: Api) -> None:
    api.fake.add_webhook(
        "1200000000000001", "http://127.0.0.1:9/hook", filters=[{"action": "added"}]
    )
    item = api.list(opt_fields="created_at,filters.action,last_success_at").json()["data"][0]
    assert TIMESTAMP.match(item["created_at"])
    assert item["filters"][0]["action"] == "added"
    assert "last_success_at" in item
    assert "failure_deletion_timestamp" not in item


def test_pagination_walks_hundreds_of_webhooks_in_creation_order(api: Api) -> None:
    created = [
        api.fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")["gid"]
        for i in range(250)
    ]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 100, "opt_fields": "target,created_at"}
    pages = 0
    while True:
        body = api.list(**params).json()
        pages += 1
        seen.extend(item["gid"] for item in body["data"])
        next_page = body["next_page"]
        if next_page is None:
            break
        offset = next_page["offset"]
        assert not offset.isdigit(), "offsets must be opaque, not plain integers"
        assert (
            next_page["path"].startswith("/webhooks?") and f"offset={offset}" in next_page["path"]
        )
        assert next_page["uri"] == api.fake.url + next_page["path"]
        assert "opt_fields=target,created_at" in next_page["path"]
        params["offset"] = offset
        assert pages < 10
    assert pages == 3
    assert seen == created


def test_last_full_page_has_null_next_page(api: Api) -> None:
    for i in range(4):
        api.fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")
    first = api.list(limit=2).json()
    assert len(first["data"]) == 2 and first["next_page"] is not None
    second = api.list(limit=2, offset=first["next_page"]["offset"]).json()
    assert len(second["data"]) == 2
    assert second["next_page"] is None, "no more pages: next_page must be null"


def test_pages_stay_stable_when_webhooks_are_deleted_between_calls(api: Api) -> None:
    gids = [
        api.fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")["gid"]
        for i in range(6)
    ]
    first = api.list(limit=3).json()
    api.call("DELETE", f"/webhooks/{gids[2]}")
    second = api.list(limit=3, offset=first["next_page"]["offset"]).json()
    assert [item["gid"] for item in second["data"]] == gids[3:]


def test_tampered_or_foreign_offsets_are_400(api: Api) -> None:
    for i in range(3):
        api.fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")
    offset = api.list(limit=1).json()["next_page"]["offset"]
    _, _, signature = offset.partition(".")
    forged = (
        base64.urlsafe_b64encode(b'{"s":0,"q":"x","e":0}').decode().rstrip("=") + "." + signature
    )
    for bad in ("1", "abc", forged):
        response = api.list(limit=1, offset=bad)
        assert response.status_code == 400, bad
        assert error_message(response).startswith("offset:")
    other_query = api.list(limit=1, offset=offset, resource="1200000000000000")
    assert other_query.status_code == 400, "an offset only works with the query that made it"


def test_expired_offsets_are_400(api: Api) -> None:
    for i in range(3):
        api.fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")
    offset = api.list(limit=1).json()["next_page"]["offset"]
    api.fake.expire_offsets()
    response = api.list(limit=1, offset=offset)
    assert response.status_code == 400
    assert "expired" in error_message(response)
    fresh = api.list(limit=1).json()["next_page"]["offset"]
    assert api.list(limit=1, offset=fresh).status_code == 200


def test_list_filters_by_workspace_and_resource(api: Api) -> None:
    other = api.fake.add_workspace(name="Other")
    project = api.fake.add_resource(name="Roadmap", workspace=other)
    mine = api.fake.add_webhook("1200000000000001", "http://127.0.0.1:9/a")["gid"]
    theirs = api.fake.add_webhook(project, "http://127.0.0.1:9/b")["gid"]
    theirs_too = api.fake.add_webhook(project, "http://127.0.0.1:9/c")["gid"]
    assert [w["gid"] for w in api.list().json()["data"]] == [mine]
    assert [w["gid"] for w in api.list(workspace=other).json()["data"]] == [theirs, theirs_too]
    assert [w["gid"] for w in api.list(workspace=other, resource=project).json()["data"]] == [
        theirs,
        theirs_too,
    ]
    assert api.list(resource=project).json()["data"] == []


def test_unpaginated_lists_over_1000_are_refused(api: Api) -> None:
    for i in range(1001):
        api.fake.add_webhook(str(1200000000000000 + i), "http://127.0.0.1:9/hook")
    response = api.list()
    assert response.status_code == 400
    assert "pagination" in error_message(response)


# --- deliveries ------------------------------------------------------------------------------


def _established(api: Api, target: RecordingTarget) -> tuple[str, str]:
    body = api.create("1200000000000001", target.url).json()
    return body["data"]["gid"], body["X-Hook-Secret"]


def test_deliveries_are_signed_with_the_webhook_secret(
    api: Api, asana_target: RecordingTarget
) -> None:
    gid, secret = _established(api, asana_target)
    event = make_event(
        "changed",
        "1200000000000001",
        field="assignee",
        new_value={"gid": "1", "resource_type": "user"},
    )
    assert api.fake.deliver(gid, [event]) == 200
    delivery = asana_target.deliveries[-1]
    assert json.loads(delivery.body) == {"events": [event]}
    assert hmac.compare_digest(
        delivery.headers["X-Hook-Signature"], expected_signature(delivery.body, secret)
    )
    assert "X-Hook-Secret" not in delivery.headers, "the secret is only sent in the handshake"
    state = api.fake.get_webhook(gid)
    assert state is not None and TIMESTAMP.match(state["last_success_at"])


def test_heartbeat_is_a_signed_empty_events_list(api: Api, asana_target: RecordingTarget) -> None:
    gid, secret = _established(api, asana_target)
    assert api.fake.heartbeat(gid) == 200
    delivery = asana_target.deliveries[-1]
    assert json.loads(delivery.body) == {"events": []}
    assert delivery.headers["X-Hook-Signature"] == expected_signature(delivery.body, secret)


def test_signature_can_be_forged_or_left_out_to_test_receivers(
    api: Api, asana_target: RecordingTarget
) -> None:
    gid, _ = _established(api, asana_target)
    api.fake.deliver(gid, [], signature="0" * 64)
    api.fake.deliver(gid, [], signature="")
    first, second = asana_target.deliveries[-2:]
    assert first.headers["X-Hook-Signature"] == "0" * 64
    assert "X-Hook-Signature" not in second.headers


def test_failed_deliveries_update_the_webhook_state(
    api: Api, asana_target: RecordingTarget
) -> None:
    gid, _ = _established(api, asana_target)
    asana_target.status = 500
    asana_target.response_body = b"Could not complete the request"
    assert api.fake.heartbeat(gid) == 500
    assert api.fake.heartbeat(gid) == 500
    state = api.call("GET", f"/webhooks/{gid}").json()["data"]
    assert state["delivery_retry_count"] == 2
    assert (
        state["last_failure_content"]
        == "500 Internal Server Error\n\nCould not complete the request"
    )
    for field in ("last_failure_at", "next_attempt_after", "failure_deletion_timestamp"):
        assert TIMESTAMP.match(state[field]), field
    first_failure = api.fake.outbound[-2]
    assert first_failure.status == 500
    assert state["failure_deletion_timestamp"] > state["last_failure_at"]

    asana_target.status = 204
    assert api.fake.heartbeat(gid) == 204
    state = api.call("GET", f"/webhooks/{gid}").json()["data"]
    assert state["delivery_retry_count"] == 0, "a success resets the retry count"
    assert state["next_attempt_after"] is None and state["failure_deletion_timestamp"] is None
    assert state["last_success_at"] >= state["last_failure_at"]


def test_failure_deletion_timestamp_is_24_hours_after_the_first_failure(
    api: Api, asana_target: RecordingTarget
) -> None:
    import datetime

    gid, _ = _established(api, asana_target)
    asana_target.status = 503
    api.fake.heartbeat(gid)
    first = api.fake.get_webhook(gid)
    api.fake.heartbeat(gid)
    second = api.fake.get_webhook(gid)
    assert first is not None and second is not None
    assert second["failure_deletion_timestamp"] == first["failure_deletion_timestamp"]

    def parse(value: str) -> datetime.datetime:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")

    gap = parse(first["failure_deletion_timestamp"]) - parse(first["last_failure_at"])
    assert gap == datetime.timedelta(hours=24)


def test_delivery_to_a_dead_target_returns_0_and_records_the_failure(api: Api) -> None:
    hook = api.fake.add_webhook("1200000000000001", f"http://127.0.0.1:{free_port()}/gone")
    assert api.fake.heartbeat(hook["gid"]) == 0
    state = api.fake.get_webhook(hook["gid"])
    assert state is not None and state["delivery_retry_count"] == 1
    assert state["last_failure_content"], "a connection failure is described"
    assert api.fake.outbound[-1].error


def test_deliver_to_unknown_webhook_raises_key_error(asana_fake: FakeAsana) -> None:
    with pytest.raises(KeyError):
        asana_fake.deliver("1299999999999999", [])
    with pytest.raises(KeyError):
        asana_fake.secret_for("1299999999999999")


def test_make_event_shapes() -> None:
    changed = make_event(
        "changed",
        "1200000000000001",
        field="assignee",
        new_value={"gid": "9", "resource_type": "user"},
    )
    assert changed["action"] == "changed"
    assert changed["resource"]["gid"] == "1200000000000001"
    assert changed["change"] == {
        "field": "assignee",
        "action": "changed",
        "new_value": {"gid": "9", "resource_type": "user"},
    }
    assert changed["parent"] is None and TIMESTAMP.match(changed["created_at"])
    added = make_event("added", parent="1200000000000002")
    assert "change" not in added and added["parent"] == {
        "gid": "1200000000000002",
        "resource_type": "project",
    }
    assert make_event("deleted", user=None)["user"] is None
    with pytest.raises(ValueError, match="parent"):
        make_event("changed", parent="1")
    with pytest.raises(ValueError, match="action"):
        make_event("exploded")


# --- faults -----------------------------------------------------------------------------------


def test_fail_next_answers_with_an_asana_error_and_retry_after(api: Api) -> None:
    api.fake.fail_next(503, retry_after=7)
    response = api.list()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    body = response.json()
    assert body["errors"][0]["phrase"], "5xx bodies carry an error phrase"
    assert api.list().status_code == 200, "count=1 means only the next request fails"


def test_fail_next_with_http_date_retry_after_and_raw_html(api: Api) -> None:
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    api.fake.fail_next(502, retry_after=date, body="<html><body>502 Bad Gateway</body></html>")
    response = api.list()
    assert response.status_code == 502
    assert response.headers["Retry-After"] == date
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<html>")


def test_faults_can_target_one_method_and_path(api: Api, asana_target: RecordingTarget) -> None:
    api.fake.fail_next(500, count=2, method="POST", path="/webhooks")
    assert api.list().status_code == 200, "GET /webhooks is not the faulted route"
    assert api.create("1200000000000001", asana_target.url).status_code == 500
    assert api.create("1200000000000001", asana_target.url).status_code == 500
    assert api.fake.webhooks == [], "a fault before handling creates nothing"
    assert api.create("1200000000000001", asana_target.url).status_code == 201


def test_path_globs_match_single_webhook_routes(api: Api) -> None:
    hook = api.fake.add_webhook("1200000000000001", "http://127.0.0.1:9/hook")
    api.fake.fail_next(404, path="/webhooks/*")
    assert api.list().status_code == 200
    assert api.call("GET", f"/webhooks/{hook['gid']}").status_code == 404
    assert api.call("GET", f"/webhooks/{hook['gid']}").status_code == 200


def test_create_whose_response_is_lost_still_creates_the_webhook(
    api: Api, asana_target: RecordingTarget
) -> None:
    api.fake.fail_next(500, method="POST", path="/webhooks", after_handling=True)
    assert api.create("1200000000000001", asana_target.url).status_code == 500
    assert len(api.fake.webhooks) == 1, (
        "after_handling: the webhook exists though the answer was a 500"
    )
    assert api.create("1200000000000001", asana_target.url).status_code == 403, (
        "a blind retry hits the duplicate rule"
    )


def test_create_whose_connection_drops_after_handling_still_creates_the_webhook(
    api: Api, asana_target: RecordingTarget
) -> None:
    api.fake.drop_next(method="POST", path="/webhooks", after_handling=True)
    with pytest.raises(requests.ConnectionError):
        api.create("1200000000000001", asana_target.url)
    assert len(api.fake.webhooks) == 1
    record = api.fake.requests[-1]
    assert record.method == "POST" and record.status is None and record.fault == "drop"


@pytest.mark.parametrize(
    "options",
    [{}, {"after_request": False}, {"reset": True}],
    ids=["after-request", "after-headers", "reset"],
)
def test_drop_next_closes_without_answering(api: Api, options: dict[str, Any]) -> None:
    api.fake.drop_next(**options)
    with pytest.raises(requests.ConnectionError):
        api.list()
    assert api.list().status_code == 200, "the next request (a fresh connection) works"


def test_truncate_next_cuts_the_body_short(api: Api, asana_target: RecordingTarget) -> None:
    api.fake.truncate_next(method="POST")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        api.create("1200000000000001", asana_target.url)
    assert len(api.fake.webhooks) == 1, "a truncated create was carried out"
    assert api.fake.requests[-1].fault == "truncate"
    assert api.list().status_code == 200


def test_delay_next_triggers_client_read_timeouts(api: Api) -> None:
    api.fake.delay_next(1.0)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        api.call("GET", "/webhooks", params={"workspace": api.fake.workspace_gid}, timeout=0.2)
    assert time.monotonic() - started < 0.9
    assert api.list().status_code == 200


def test_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    api.fake.rate_limit(per_minute=3, window=1.0)
    assert [api.list().status_code for _ in range(3)] == [200, 200, 200]
    limited = api.list()
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert error_message(limited).startswith("You've made too many requests and hit a rate limit.")
    assert api.fake.requests[-1].fault == "rate_limit"
    time.sleep(1.05)
    assert api.list().status_code == 200, "after Retry-After the quota is back"
    api.fake.rate_limit(None)
    assert all(api.list().status_code == 200 for _ in range(5))


def test_rate_limit_with_fixed_retry_after(api: Api) -> None:
    api.fake.rate_limit(per_minute=1, retry_after=30)
    api.list()
    assert api.list().headers["Retry-After"] == "30"


def test_rate_limit_does_not_count_unauthenticated_requests(api: Api) -> None:
    api.fake.rate_limit(per_minute=1)
    assert requests.get(api.fake.url + "/webhooks", timeout=TIMEOUT).status_code == 401
    assert api.list().status_code == 200


# --- records, reset, concurrency -------------------------------------------------------------


def test_requests_are_recorded_with_secrets_hidden_in_repr(api: Api) -> None:
    api.list(limit=5)
    record = api.fake.requests[-1]
    assert record.method == "GET" and record.path == "/webhooks"
    assert record.query == {"workspace": api.fake.workspace_gid, "limit": "5"}
    assert record.headers["authorization"] == f"Bearer {api.fake.access_token}", (
        "headers are case-insensitive"
    )
    assert record.status == 200 and record.fault is None
    assert api.fake.access_token not in repr(record)
    api.fake.clear_requests()
    assert api.fake.requests == []


def test_recorded_bodies_are_the_raw_bytes(api: Api, asana_target: RecordingTarget) -> None:
    api.create("1200000000000001", asana_target.url)
    record = api.fake.requests[-1]
    assert record.json() == {"data": {"resource": "1200000000000001", "target": asana_target.url}}


def test_reset_forgets_everything_but_token_and_workspace(
    api: Api, asana_target: RecordingTarget
) -> None:
    api.create("1200000000000001", asana_target.url)
    api.fake.fail_next(500, count=5)
    api.fake.reset()
    assert api.fake.webhooks == [] and api.fake.requests == [] and api.fake.pending_faults == []
    assert api.list().status_code == 200


def test_sixteen_threads_of_two_hundred_calls(api: Api) -> None:
    hook = api.fake.add_webhook("1200000000000001", "http://127.0.0.1:9/hook")
    local = threading.local()

    def worker(index: int) -> list[int]:
        if not hasattr(local, "api"):
            local.api = Api(api.fake)
        statuses = []
        for call in range(200):
            if call % 2:
                statuses.append(local.api.call("GET", f"/webhooks/{hook['gid']}").status_code)
            else:
                statuses.append(local.api.list(limit=10).status_code)
        return statuses

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    elapsed = time.monotonic() - started
    flat = [status for statuses in results for status in statuses]
    assert len(flat) == 3200
    assert set(flat) == {200}, {status: flat.count(status) for status in set(flat)}
    assert elapsed < 60, f"3200 calls took {elapsed:.1f}s"


def test_serve_forever_blocks_until_stopped() -> None:
    fake = FakeAsana()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not fake.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert requests.get(fake.url + "/webhooks", timeout=TIMEOUT).status_code == 401
    fake.stop()
    thread.join(5)
    assert not thread.is_alive(), "serve_forever must return once stop() is called"


def test_a_bug_while_handling_still_gets_an_asana_500(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.fake._app, "handle", broken)
    response = api.list()
    assert response.status_code == 500
    assert error_message(response) == "Server Error"
    monkeypatch.undo()
    assert api.list().status_code == 200


def test_fail_next_takes_retry_after_as_the_issue_spells_it() -> None:
    # fail_next(status, count=1, retry_after=None): the third argument may be positional.
    with FakeAsana(access_token="t") as fake:
        fake.fail_next(429, 1, 7)
        answer = requests.get(
            f"{fake.url}/webhooks?workspace={fake.workspace_gid}",
            headers={"Authorization": "Bearer t"},
            timeout=5,
        )
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
