"""``ReceiverServer`` (and so ``asana-webhooks serve``) against slow and hostile clients.

Everything here uses real sockets on 127.0.0.1: slow clients that send a byte now and then,
more connections than the cap, a process that runs out of file descriptors, and requests
that lie about their length. The promises: a deadline for the whole request, a cap on
connections without a thread per connection, a pause instead of a busy loop on EMFILE, one
log line per refused request at most and never a traceback, and a delivery still answered
quickly meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asana_webhooks import MemorySecretStore, WebhookReceiver, sign_body
from asana_webhooks._http_server import ReceiverServer
from asana_webhooks.testing import make_event
from tests._cli_helpers import Process

pytestmark = pytest.mark.timeout(120)

SECRET = "s" * 32
DELIVERY = b'{"events": []}'


def delivery_request(path: str = "/hooks/1") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(DELIVERY)}\r\n"
        f"X-Hook-Signature: {sign_body(DELIVERY, SECRET)}\r\n\r\n"
    )
    return head.encode() + DELIVERY


def exchange(port: int, request: bytes, timeout: float = 10.0) -> tuple[int, bytes, float]:
    """Send ``request``; return the status, the whole answer and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 "), f"no HTTP answer: {answer[:200]!r}"
    return int(answer.split()[1]), answer, elapsed


@pytest.fixture
def receiver() -> WebhookReceiver:
    store = MemorySecretStore()
    store.set("/hooks/1", SECRET)
    return WebhookReceiver(store, lambda events, target: None)


@contextlib.contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that have sent the start of a request and then nothing."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"POST /hooks/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def wait_for_open(server: ReceiverServer, count: int) -> None:
    deadline = time.monotonic() + 5
    while server.open_connections != count:
        assert time.monotonic() < deadline, f"{server.open_connections} open, not {count}"
        time.sleep(0.01)


def test_a_client_that_sends_a_byte_at_a_time_is_cut_off_at_the_deadline(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    request = delivery_request()
    with (
        ReceiverServer.for_receiver(receiver, request_timeout=1.5) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        caplog.at_level(logging.WARNING, logger="asana_webhooks"),
    ):
        started = time.monotonic()
        answer = b""
        for byte in request:  # one byte every 0.2 s: each read is quick, the whole is not
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > 5:
                break
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        elapsed = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    # Without the deadline it would go on for the whole 5 s the client keeps sending.
    assert elapsed < 4.0, f"the connection lived {elapsed:.1f}s with a 1.5 s deadline"
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "408" in refused[0].getMessage()
    assert refused[0].exc_info is None, "no traceback for a refused request"


def test_connections_beyond_the_cap_are_refused_without_a_thread_each(
    receiver: WebhookReceiver,
) -> None:
    threads_before = threading.active_count()
    with ReceiverServer.for_receiver(receiver, max_connections=50, workers=4) as server:
        with slow_clients(server.port, 49):
            wait_for_open(server, 49)
            threads_serving = threading.active_count() - threads_before

            status, _, elapsed = exchange(server.port, delivery_request())
            assert status == 200, "the 50th connection is still served"
            assert elapsed < 3.0, "served at once (generous: the machine may be busy)"

            with slow_clients(server.port, 1):
                wait_for_open(server, 50)
                status, answer, elapsed = exchange(server.port, delivery_request())
                assert status == 503, "the 51st connection is refused"
                assert b"Retry-After: 1" in answer
                assert elapsed < 3.0, "refused at once, not queued until a slot frees"

        # The slow ones have gone: a delivery gets in again.
        wait_for_open(server, 0)
        assert exchange(server.port, delivery_request())[0] == 200

    assert threads_serving <= 1 + 4, f"{threads_serving} threads for 49 slow clients"


def test_a_lying_content_length_is_one_line_and_no_traceback(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    head = (
        b"POST /hooks/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
        b"X-Hook-Signature: " + b"0" * 64 + b"\r\n\r\n"
    )
    with (
        ReceiverServer.for_receiver(receiver, request_timeout=1.0) as server,
        caplog.at_level(logging.DEBUG, logger="asana_webhooks"),
    ):
        for _ in range(3):
            status, _, elapsed = exchange(server.port, head + b"{}")
            assert status == 408
            assert elapsed < 5.0, "the deadline (1 s) ended it, not the client's 10 s"
        # The client that gives up (closes) before its body is whole costs no line at all.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(head + b"{}")
        assert exchange(server.port, delivery_request())[0] == 200

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 3, [r.getMessage() for r in warnings]
    assert all(r.exc_info is None for r in caplog.records), "no tracebacks"
    assert all("\n" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"POST /hooks/1 HTTP/2.0\r\n\r\n", 505),
        (b"POST /hooks/1 HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400),
        (b"POST /hooks/1 HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /hooks/1 HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /hooks/1 HTTP/1.1\r\nX: " + b"a" * 40000 + b"\r\n\r\n", 431),
        (b"POST /hooks/1 HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"POST /hooks/1 HTTP/1.1\r\nbad header\r\n\r\n", 400),
    ],
)
def test_malformed_requests_are_answered_by_the_server_at_once(
    receiver: WebhookReceiver, request_bytes: bytes, status: int
) -> None:
    with ReceiverServer.for_receiver(receiver) as server:
        answered, _, elapsed = exchange(server.port, request_bytes)

    assert answered == status
    assert elapsed < 5.0, "answered at once, not after the 10 s request deadline"


def test_a_chunked_delivery_is_read_and_one_over_the_limit_refused_at_once() -> None:
    store = MemorySecretStore()
    store.set("/hooks/1", SECRET)
    got: list[str] = []
    receiver = WebhookReceiver(
        store, lambda events, target: got.append(target), max_body_bytes=1000
    )
    body = json.dumps({"events": [make_event()]}).encode()
    signature = sign_body(body, SECRET).encode()
    chunked = b"5\r\n" + body[:5] + b"\r\n" + b"%x\r\n" % (len(body) - 5)
    chunked += body[5:] + b"\r\n0\r\n\r\n"
    head = b"POST /hooks/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Hook-Signature: "
    with ReceiverServer.for_receiver(receiver) as server:
        status, _, _ = exchange(server.port, head + signature + b"\r\n\r\n" + chunked)
        big = b"".join(b"100\r\n" + b"a" * 256 + b"\r\n" for _ in range(8))
        too_big, _, elapsed = exchange(server.port, head + b"0\r\n\r\n" + big)

    assert status == 200 and got == ["/hooks/1"]
    assert too_big == 413 and elapsed < 5.0


# --- the real command ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
def test_serve_pauses_instead_of_spinning_when_out_of_file_descriptors(tmp_path: Path) -> None:
    """Run out of descriptors on purpose (a low RLIMIT_NOFILE and a cap above it)."""
    script = tmp_path / "low_fd_server.py"
    script.write_text(
        "import resource, sys, time\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "from asana_webhooks import MemorySecretStore, WebhookReceiver\n"
        "from asana_webhooks._http_server import ReceiverServer\n"
        "store = MemorySecretStore()\n"
        f"store.set('/hooks/1', {SECRET!r})\n"
        "receiver = WebhookReceiver(store, lambda events, target: None)\n"
        "server = ReceiverServer.for_receiver(receiver, max_connections=1000,"
        " request_timeout=30).start()\n"
        "print(server.port, flush=True)\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        opened = []
        for _ in range(100):  # more than 64: the server's accept() hits EMFILE
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /hooks/1 HTTP/1.1\r\n")
            opened.append(sock)
        time.sleep(0.5)
        before = cpu_seconds(process.pid)
        time.sleep(2.0)
        spent = cpu_seconds(process.pid) - before
        assert spent < 0.5, f"{spent:.2f}s of CPU in 2 s while out of descriptors: a busy loop"

        for sock in opened:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # once descriptors are free again, deliveries are answered
            try:
                status, _, _ = exchange(port, delivery_request(), timeout=3)
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline, "serve did not recover from EMFILE"
                time.sleep(0.2)
        assert status == 200
    finally:
        process.kill()
        _, err = process.communicate(timeout=10)
    assert "Traceback" not in err, err
    assert "cannot accept connections" in err or "Too many open files" in err, err


def test_serve_answers_a_delivery_within_a_second_while_300_clients_trickle(
    tmp_path: Path,
) -> None:
    env = dict(os.environ)
    secrets = str(tmp_path / "secrets.sqlite3")
    serve = Process(["serve", "--port", "0", "--secrets", secrets], env)
    try:
        url = serve.wait_for(r"listening on (http://127\.0\.0\.1:(\d+))")
        port = int(url.group(2))
        from asana_webhooks import SQLiteSecretStore

        SQLiteSecretStore(secrets).set("/hooks/1", SECRET)
        with slow_clients(port, 300):
            timings = [exchange(port, delivery_request())[2] for _ in range(5)]
            statuses = [exchange(port, delivery_request())[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        timings.sort()
        assert timings[2] < 1.0, f"deliveries took {timings} (median over 1 s)"
        assert timings[-1] < 3.0, f"deliveries took {timings}"
        assert serve.stop() == 0
    finally:
        serve.kill()
    err = "".join(serve.err_seen)
    assert "Traceback" not in err


def test_serve_logs_a_lying_content_length_as_one_line(tmp_path: Path) -> None:
    secrets = str(tmp_path / "secrets.sqlite3")
    args = ["serve", "--port", "0", "--secrets", secrets, "--request-timeout", "1"]
    serve = Process(args, dict(os.environ))
    try:
        port = int(serve.wait_for(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
        lying = b"POST /hooks/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n{}"
        assert exchange(port, lying)[0] == 408
        line = serve.wait_for(r"refused a request", timeout=10).string
        assert "408" in line and "not whole within 1s" in line, line
        assert serve.stop() == 0
        rest = serve.popen.stderr.read() if serve.popen.stderr else ""
    finally:
        serve.kill()
    assert "Traceback" not in "".join(serve.err_seen) + rest
