"""The ``asana-webhooks`` command against FakeAsana over real sockets.

Most commands run in this process through ``main(argv)`` (fast, and the output is captured);
the ones whose promise is about the process itself (exit status and no traceback, signals,
long-running servers) run as subprocesses.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from asana_webhooks import WebhookFilter, WebhookResponse
from asana_webhooks._cli import UsageError, main, parse_filter
from asana_webhooks._health import judge_webhook
from asana_webhooks.testing import FakeAsana, make_event
from tests._cli_helpers import COMMAND, Process, Result, assert_one_clean_line, run_process

pytestmark = pytest.mark.timeout(90)

CLOSED_PORT_TARGET = "http://127.0.0.1:9/asana/{}"  # the discard port: nothing listens


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana(handshake_timeout=10.0, delivery_timeout=5.0) as running:
        yield running


@pytest.fixture
def env(fake: FakeAsana) -> dict[str, str]:
    return {**os.environ, "ASANA_HOST": fake.url, "ASANA_ACCESS_TOKEN": fake.access_token}


@pytest.fixture
def cli(
    fake: FakeAsana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run ``asana-webhooks ARGS`` in this process against ``fake``."""
    monkeypatch.setenv("ASANA_HOST", fake.url)
    monkeypatch.setenv("ASANA_ACCESS_TOKEN", fake.access_token)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


def seed(fake: FakeAsana, count: int) -> list[str]:
    """``count`` webhooks on distinct resources, without handshakes; their gids in order."""
    return [
        fake.add_webhook(str(1_000_000 + n), CLOSED_PORT_TARGET.format(n))["gid"]
        for n in range(count)
    ]


# --- list, get -----------------------------------------------------------------------------


def test_list_follows_every_page_of_a_few_hundred_webhooks(fake: FakeAsana, cli: Any) -> None:
    gids = seed(fake, 250)
    fake.clear_requests()

    result = cli("list", "--workspace", fake.workspace_gid)

    assert result.status == 0, result
    listed = [line.split()[0] for line in result.out.splitlines()[1:-1]]
    assert listed == gids, "every webhook, once, in Asana's order"
    assert result.out.splitlines()[-1] == "250 webhooks"
    pages = [r for r in fake.requests if r.method == "GET" and r.path == "/webhooks"]
    assert [r.query.get("limit") for r in pages] == ["100", "100", "100"], "three pages of 100"
    assert "offset" not in pages[0].query and all("offset" in r.query for r in pages[1:])


def test_list_json_parses_and_can_filter_by_resource(fake: FakeAsana, cli: Any) -> None:
    gids = seed(fake, 12)

    everything = cli("list", "--workspace", fake.workspace_gid, "--page-size", "5", "--json")
    one = cli("list", "--workspace", fake.workspace_gid, "--resource", "1000003", "--json")

    assert everything.status == 0, everything
    assert [item["gid"] for item in json.loads(everything.out)] == gids
    assert one.status == 0, one
    [only] = json.loads(one.out)
    assert only["gid"] == gids[3] and only["resource"]["gid"] == "1000003"


def test_get_shows_the_full_record_as_a_table_and_as_json(fake: FakeAsana, cli: Any) -> None:
    webhook = fake.add_webhook(
        "1000001",
        CLOSED_PORT_TARGET.format(1),
        filters=[{"resource_type": "task", "action": "changed", "fields": ["name", "due_on"]}],
    )

    table = cli("get", webhook["gid"])
    as_json = cli("get", webhook["gid"], "--json")

    assert table.status == 0, table
    rows = dict(line.split(None, 1) for line in table.out.splitlines())
    assert rows["gid"] == webhook["gid"]
    assert rows["target"] == webhook["target"]
    assert rows["filters"] == "task:changed:name,due_on", "filters shown in --filter syntax"
    assert rows["last_success_at"] == "-"
    assert as_json.status == 0, as_json
    record = json.loads(as_json.out)
    assert record["gid"] == webhook["gid"]
    assert record["last_failure_at"] is None, "every field is present, null when unset"
    assert record["filters"][0]["fields"] == ["name", "due_on"]


# --- errors --------------------------------------------------------------------------------


def test_an_unknown_gid_is_one_line_on_stderr_and_exit_1(env: dict[str, str]) -> None:
    result = run_process(["get", "1234567890"], env)

    assert result.status == 1, result
    assert_one_clean_line(result)
    assert "404" in result.err and "1234567890" in result.err
    assert result.out == ""


def test_a_missing_token_is_a_clear_message_and_exit_2(env: dict[str, str]) -> None:
    without = {k: v for k, v in env.items() if k != "ASANA_ACCESS_TOKEN"}

    result = run_process(["list", "--workspace", "1"], without)

    assert result.status == 2, result
    assert_one_clean_line(result)
    assert "ASANA_ACCESS_TOKEN" in result.err


def test_a_wrong_token_is_401_without_showing_the_token(env: dict[str, str]) -> None:
    token = "wrong-token-that-must-not-be-printed"

    result = run_process(["get", "1"], {**env, "ASANA_ACCESS_TOKEN": token})

    assert result.status == 1, result
    assert_one_clean_line(result)
    assert "401" in result.err and "ASANA_ACCESS_TOKEN" in result.err
    assert token not in result.err + result.out


def test_an_unreachable_host_is_one_line_after_bounded_retries(env: dict[str, str]) -> None:
    started = time.monotonic()

    result = run_process(["get", "1", "--host", "http://127.0.0.1:9/api/1.0"], env, timeout=60)

    assert result.status == 1, result
    assert_one_clean_line(result)
    assert "127.0.0.1:9" in result.err
    assert time.monotonic() - started < 30, "retries are bounded for a person waiting"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["get", "abc"], "not a gid"),
        (["create", "--resource", "1", "--target", "http://x/", "--filter", "task:made"], "action"),
        (
            ["create", "--resource", "1", "--target", "http://x/", "--filter", "task:added:name"],
            "changed",
        ),
        (["update", "1"], "--filter"),
        (["list"], "--workspace"),
        (["list", "--workspace", "1", "--page-size", "500"], "1 to 100"),
        (["get", "1", "--host", "ftp://example.com"], "http"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli: Any, args: list[str], complaint: str) -> None:
    result = cli(*args)

    assert result.status == 2, result
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1, f"one line: {result!r}"
    assert complaint in result.err, result


# --- create, update, delete with a real receiver -------------------------------------------


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start ``asana-webhooks serve`` on a free port; yields a function returning (process, url)."""
    started: list[Process] = []

    def start(*extra: str) -> tuple[Process, str]:
        secrets = str(tmp_path / "secrets.sqlite3")
        process = Process(["serve", "--port", "0", "--secrets", secrets, *extra], env)
        started.append(process)
        url = process.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
        return process, url

    yield start
    for process in started:
        process.kill()


def test_create_through_serve_then_deliver_update_and_delete(
    fake: FakeAsana, cli: Any, serve: Any, tmp_path: Path
) -> None:
    receiver, url = serve()
    target = f"{url}/hooks/project-1?team=web"

    created = cli(
        "create",
        "--resource",
        "1200000000000001",
        "--target",
        target,
        "--filter",
        "task:changed:name,due_on",
        "--filter",
        "story:added",
        "--secrets",
        str(tmp_path / "secrets.sqlite3"),
        "--json",
    )

    assert created.status == 0, created
    webhook = json.loads(created.out)
    gid = webhook["gid"]
    assert webhook["target"] == target
    assert receiver.wait_for("handshake accepted for /hooks/project-1") is not None
    secret = fake.secret_for(gid)
    assert secret not in created.out + created.err, "the secret is never printed"
    stored = fake.get_webhook(gid)
    assert stored is not None
    assert stored["filters"] == [
        {
            "resource_type": "task",
            "resource_subtype": None,
            "action": "changed",
            "fields": ["name", "due_on"],
        },
        {"resource_type": "story", "resource_subtype": None, "action": "added", "fields": None},
    ]

    event = make_event("changed", "1200000000000099", field="name")
    assert fake.deliver(gid, [event]) == 200, "serve verified the signature"
    line = json.loads(receiver.line("out"))
    assert line["target"] == "/hooks/project-1?team=web"
    assert line["event"]["action"] == "changed"
    assert line["event"]["resource"]["gid"] == "1200000000000099"
    assert line["event"]["change"]["field"] == "name"
    assert fake.deliver(gid, [event], signature="0" * 64) == 401, "serve refuses a forgery"
    assert fake.heartbeat(gid) == 200

    updated = cli("update", gid, "--filter", "task:added")
    assert updated.status == 0, updated
    assert "task:added" in updated.out
    stored = fake.get_webhook(gid)
    assert stored is not None and [f["action"] for f in stored["filters"]] == ["added"]

    cleared = cli("update", gid, "--no-filters", "--json")
    assert cleared.status == 0, cleared
    assert json.loads(cleared.out)["filters"] == []

    deleted = cli("delete", gid)
    assert deleted.status == 0, deleted
    assert deleted.out.strip() == f"deleted webhook {gid}"
    assert fake.get_webhook(gid) is None

    assert receiver.stop(signal.SIGTERM) == 0, "SIGTERM stops serve cleanly"
    assert receiver.wait_for(r"stopped \(SIGTERM\)") is not None
    assert receiver.out.empty(), "the forgery and the heartbeat printed no events"


def test_create_without_a_shared_store_needs_an_open_receiver(
    fake: FakeAsana, cli: Any, serve: Any
) -> None:
    receiver, url = serve("--accept-unannounced-handshakes")

    created = cli("create", "--resource", "1200000000000002", "--target", f"{url}/open/2")

    assert created.status == 0, created
    gid = dict(line.split(None, 1) for line in created.out.splitlines() if "  " in line)["gid"]
    assert "not shown" in created.out
    assert fake.secret_for(gid) not in created.out
    assert fake.deliver(gid, [make_event("added", "1200000000000003")]) == 200
    assert json.loads(receiver.line("out"))["event"]["action"] == "added"
    assert receiver.stop(signal.SIGINT) == 130, "Ctrl-C stops serve, as interrupted"


def test_create_refused_by_a_receiver_is_one_line(fake: FakeAsana, cli: Any, serve: Any) -> None:
    _, url = serve()  # no --accept-unannounced-handshakes and no --secrets: 403 on handshake

    result = cli("create", "--resource", "1200000000000004", "--target", f"{url}/x")

    assert result.status == 1, result
    assert result.err.count("\n") == 1 and "handshake" in result.err.lower(), result
    assert "refused it (403)" in result.err, result
    assert "same --secrets file" in result.err, "the usual reason: the target was not announced"
    assert "--accept-unannounced-handshakes" in result.err
    assert "already has a secret" in result.err
    assert fake.webhooks == []


def test_the_readme_command_line_block_works_as_a_pair(
    fake: FakeAsana, env: dict[str, str], tmp_path: Path
) -> None:
    """README's serve and create lines, run as written (ports and public URL substituted)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### The command line\n\n```sh\n(.*?)```", readme, re.S)
    assert block, "README has a command-line block"
    lines = {}
    for line in block.group(1).splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["asana-webhooks"] and words[1] in ("serve", "create"):
            lines[words[1]] = [w for w in words[2:] if w != "&"]
    assert set(lines) == {"serve", "create"}, lines
    serve_args = list(lines["serve"])
    serve_args[serve_args.index("--port") + 1] = "0"
    receiver = Process(["serve", *serve_args], env, cwd=tmp_path)
    try:
        url = receiver.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
        resource = "1200000000000005"
        create_args = [
            resource if word == "R" else word.replace("https://YOUR-PUBLIC-HOST", url)
            for word in lines["create"]
        ]
        created = run_process(["create", *create_args], env, cwd=tmp_path)

        assert created.status == 0, created
        assert receiver.wait_for("handshake accepted") is not None
        assert len(fake.webhooks) == 1
    finally:
        receiver.kill()


# --- health --------------------------------------------------------------------------------


def test_health_reports_a_failing_webhook_and_when_it_will_be_deleted(
    fake: FakeAsana, cli: Any, serve: Any
) -> None:
    healthy = fake.add_webhook("1000100", "http://127.0.0.1:9/never-called")["gid"]
    failing = fake.add_webhook("1000101", CLOSED_PORT_TARGET.format("failing"))["gid"]
    assert fake.deliver(failing, [make_event()]) == 0, "nothing listens on port 9"
    assert fake.deliver(failing, [make_event()]) == 0

    table = cli("health", "--workspace", fake.workspace_gid)
    as_json = cli("health", "--workspace", fake.workspace_gid, "--json")
    everything = cli("health", "--workspace", fake.workspace_gid, "--all", "--json")

    assert table.status == 3, f"needs attention is exit 3: {table!r}"
    assert failing in table.out and healthy not in table.out, table
    assert f"{failing} (failing): deliveries are failing" in table.out
    assert "2 retries so far" in table.out
    assert re.search(r"Asana deletes it at [-\d]+ [:\d]+ UTC \(in 23h 5\dm\)", table.out), table
    assert table.out.splitlines()[-1] == "1 of 2 webhooks need attention"
    assert as_json.status == 3, as_json
    assert everything.status == 3, everything
    [report] = json.loads(as_json.out)
    assert report["gid"] == failing and report["healthy"] is False
    assert report["state"] == "failing"
    assert report["delivery_retry_count"] == 2
    assert report["failure_deletion_timestamp"] is not None
    assert report["deletion_at"] is not None
    assert report["last_success_at"] is None
    assert {item["gid"]: item["healthy"] for item in json.loads(everything.out)} == {
        healthy: True,
        failing: False,
    }


def test_health_says_all_is_well_when_it_is(fake: FakeAsana, cli: Any) -> None:
    seed(fake, 3)

    result = cli("health", "--workspace", fake.workspace_gid)

    assert result.status == 0, result
    assert result.out == "all 3 webhooks are ok\n"


NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def webhook(**fields: Any) -> WebhookResponse:
    return WebhookResponse(**{"gid": "1", "active": True, **fields})


HOUR = datetime.timedelta(hours=1)


@pytest.mark.parametrize(
    ("record", "heard", "state"),
    [
        (webhook(last_success_at=NOW - HOUR), None, "ok"),
        (webhook(active=False), None, "failing"),
        (webhook(last_success_at=NOW - 2 * HOUR, last_failure_at=NOW - HOUR), None, "failing"),
        (webhook(last_failure_at=NOW - HOUR, last_success_at=NOW - HOUR / 12), None, "ok"),
        (
            webhook(delivery_retry_count=3, failure_deletion_timestamp=NOW - datetime.timedelta(1)),
            None,
            "failing",
        ),
        (webhook(last_success_at=NOW - 10 * HOUR), None, "silent"),
        (webhook(created_at=NOW - datetime.timedelta(days=2)), None, "silent"),
        # The receiver's record outweighs Asana's: something else answered the target.
        (webhook(last_success_at=NOW - HOUR), NOW - 10 * HOUR, "silent"),
        (webhook(last_success_at=NOW - 10 * HOUR), NOW - HOUR, "ok"),
    ],
)
def test_health_states(
    record: WebhookResponse, heard: Optional[datetime.datetime], state: str
) -> None:
    assert judge_webhook(record, now=NOW, heard=heard).state == state


def test_overdue_deletion_is_said_plainly() -> None:
    record = webhook(failure_deletion_timestamp=NOW - 2 * HOUR)
    detail = judge_webhook(record, now=NOW).detail
    assert detail == (
        "deliveries are failing; Asana was due to delete it at 2024-05-01 10:00 UTC (2h 0m ago)"
    )


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("task:changed:name,due_on", WebhookFilter("task", None, "changed", ["name", "due_on"])),
        ("task:added", WebhookFilter("task", None, "added", None)),
        ("task", WebhookFilter("task", None, None, None)),
        ("task/milestone:changed", WebhookFilter("task", "milestone", "changed", None)),
        (":deleted", WebhookFilter(None, None, "deleted", None)),
        ("*:removed", WebhookFilter(None, None, "removed", None)),
        (" story : added ", WebhookFilter("story", None, "added", None)),
    ],
)
def test_filter_syntax(spec: str, expected: WebhookFilter) -> None:
    assert parse_filter(spec) == expected


@pytest.mark.parametrize("spec", ["", "*", "::", "task:made", "task:added:name", "a:b:c:d"])
def test_malformed_filters_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError, match="--filter"):
        parse_filter(spec)


# --- the stand-in on its own ---------------------------------------------------------------


def test_fake_serves_until_interrupted_and_the_cli_can_use_it(tmp_path: Path) -> None:
    token = "token-for-the-stand-in"
    process = Process(["fake", "--port", "0", "--token", token], dict(os.environ))
    try:
        url = process.wait_for(r"serving at (http://127\.0\.0\.1:\d+/api/1\.0)", "out").group(1)
        workspace = process.wait_for(r"workspace: (\d+)", "out").group(1)
        env = {**os.environ, "ASANA_HOST": url, "ASANA_ACCESS_TOKEN": token}

        listed = run_process(["list", "--workspace", workspace, "--json"], env)

        assert listed.status == 0, listed
        assert json.loads(listed.out) == []
        assert process.stop(signal.SIGINT) == 130, "Ctrl-C stops the stand-in, as interrupted"
        assert "Traceback" not in "".join(process.err_seen)
    finally:
        process.kill()


def test_python_dash_m_and_the_console_script_agree() -> None:
    script = Path(sys.executable).with_name("asana-webhooks")
    version = run_process(["--version"], dict(os.environ))
    assert version.status == 0 and version.out.startswith("asana-webhooks "), version
    if script.exists():
        done = subprocess.run(
            [str(script), "--version"], capture_output=True, text=True, timeout=30
        )
        assert done.stdout == version.out


# --- the WSGI app behind serve (and the demo without Flask) -----------------------------------


def post_raw(url: str, request: bytes) -> tuple[int, bytes]:
    """Send raw HTTP bytes to ``url``'s server; return the status and the body."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_wsgi_receiver_refuses_what_is_not_a_webhook_post() -> None:
    from asana_webhooks import MemorySecretStore, WebhookReceiver
    from asana_webhooks._wsgi import ReceiverServer

    receiver = WebhookReceiver(MemorySecretStore(), max_body_bytes=100)
    with ReceiverServer.for_receiver(receiver) as server:
        host = f"Host: 127.0.0.1:{server.port}\r\n"
        get = post_raw(server.url, f"GET /a HTTP/1.0\r\n{host}\r\n".encode())
        too_big = post_raw(
            server.url, f"POST /a HTTP/1.0\r\n{host}Content-Length: 101\r\n\r\n".encode()
        )
        unsigned = post_raw(
            server.url,
            f"POST /a HTTP/1.0\r\n{host}Content-Length: 13\r\n\r\n".encode() + b'{"events":[]}',
        )
        no_length = post_raw(server.url, f"POST /a HTTP/1.0\r\n{host}\r\n".encode())

    assert get[0] == 405, "only POST is a webhook request"
    assert too_big[0] == 413, "an announced body over the limit is refused unread"
    assert unsigned[0] == 401, "a delivery without a secret or signature is refused"
    assert no_length[0] == 401, "no Content-Length: an empty body, not a hung read"


def test_the_wsgi_receiver_keys_secrets_by_utf8_path_and_query() -> None:
    from asana_webhooks import MemorySecretStore, WebhookReceiver, sign_body
    from asana_webhooks._wsgi import ReceiverServer

    store = MemorySecretStore()
    calls: list[str] = []
    receiver = WebhookReceiver(store, lambda events, target: calls.append(target))
    store.set("/hooks/caf%C3%A9?team=a", "s" * 64)
    body = b'{"events":[{"resource":{"gid":"1","resource_type":"task"},"action":"added"}]}'
    with ReceiverServer.for_receiver(receiver) as server:
        status, _ = post_raw(
            server.url,
            (
                f"POST /hooks/caf%C3%A9?team=a HTTP/1.0\r\nHost: 127.0.0.1:{server.port}\r\n"
                f"X-Hook-Signature: {sign_body(body, 's' * 64)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body,
        )

    assert status == 200
    assert calls == ["/hooks/caf%C3%A9?team=a"]


# --- long listings: rows as pages arrive, progress on a terminal ----------------------------


def test_list_shows_the_first_page_while_the_next_is_still_coming(
    fake: FakeAsana, env: dict[str, str]
) -> None:
    seed(fake, 150)
    fake.delay_next(0.0, method="GET", path="/webhooks")  # the first page at once
    fake.delay_next(8.0, method="GET", path="/webhooks")  # the second one late
    process = Process(["list", "--workspace", fake.workspace_gid, "--page-size", "100"], env)
    try:
        first_page = [process.line("out", timeout=6.0) for _ in range(101)]
        still_running = process.popen.poll() is None
        assert first_page[0].split() == ["GID", "ACTIVE", "RESOURCE", "TARGET"]
        assert still_running, "the first page was printed before the last page arrived"
        assert process.popen.wait(30) == 0
        rest = [process.line("out") for _ in range(51)]
        assert rest[-1] == "150 webhooks"
    finally:
        process.kill()


def test_list_json_lines_streams_one_object_per_line(fake: FakeAsana, cli: Any) -> None:
    gids = seed(fake, 12)

    result = cli("list", "--workspace", fake.workspace_gid, "--page-size", "5", "--json-lines")

    assert result.status == 0, result
    lines = result.out.splitlines()
    assert [json.loads(line)["gid"] for line in lines] == gids, "one webhook per line"


def test_list_json_is_still_one_document_written_as_it_comes(fake: FakeAsana, cli: Any) -> None:
    gids = seed(fake, 7)

    result = cli("list", "--workspace", fake.workspace_gid, "--page-size", "3", "--json")
    empty = cli("list", "--workspace", fake.add_workspace(), "--json")

    assert result.status == 0, result
    records = json.loads(result.out)
    assert [record["gid"] for record in records] == gids
    assert result.out == json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    assert empty.out == "[]\n"


def test_health_json_lines_and_exit_3(fake: FakeAsana, cli: Any) -> None:
    failing = fake.add_webhook("1000101", CLOSED_PORT_TARGET.format("failing"))["gid"]
    seed(fake, 3)
    assert fake.deliver(failing, [make_event()]) == 0

    result = cli("health", "--workspace", fake.workspace_gid, "--all", "--json-lines")

    assert result.status == 3, result
    reports = [json.loads(line) for line in result.out.splitlines()]
    assert len(reports) == 4
    assert [r["gid"] for r in reports if not r["healthy"]] == [failing]


def test_progress_goes_to_stderr_only_when_it_is_a_terminal(
    fake: FakeAsana, env: dict[str, str]
) -> None:
    import pty

    seed(fake, 120)
    args = [*COMMAND, "list", "--workspace", fake.workspace_gid, "--page-size", "50"]
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            args, env=env, stdout=subprocess.PIPE, stderr=follower, timeout=60, check=False
        )
        os.close(follower)
        follower = -1
        seen = b""
        with contextlib.suppress(OSError):  # EIO once the terminal's other end is closed
            while chunk := os.read(leader, 65536):
                seen += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    piped = run_process(["list", "--workspace", fake.workspace_gid, "--page-size", "50"], env)

    assert done.returncode == 0
    assert b"listing webhooks: 100 so far" in seen, seen
    assert done.stdout.decode().splitlines()[-1] == "120 webhooks", "rows still on stdout"
    assert piped.err == "", "no progress when stderr is not a terminal"
