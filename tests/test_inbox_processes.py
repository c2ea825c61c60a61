"""The inbox with real processes: workers killed with SIGKILL lose nothing; SIGTERM is clean.

Workers are ``asana-webhooks worker`` processes running ``_inbox_handlers.record``, which
logs every call and keeps an idempotent record of effects (see the inbox guide). The inbox is
named by URL, so another backend is one more entry in ``INBOX_URLS``.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import pytest
from _inbox_helpers import SECRET, body_of, event, get, post

from asana_webhooks import MemorySecretStore, WebhookReceiver, event_key, open_inbox
from asana_webhooks._wsgi import ReceiverServer

TESTS = Path(__file__).parent
TARGET = "/asana/hooks/1201"


def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'inbox.sqlite3'}"


#: One line per backend: pytest.param(factory yielding an empty inbox's URL, id=name).
def redis_url(tmp_path: Path) -> Iterator[str]:
    from _services import require_redis, unique_name
    from inbox_servers import drop_redis_keys

    url = require_redis()
    prefix = unique_name("aw_test")
    yield f"{url}?prefix={prefix}"
    drop_redis_keys(url, prefix)


INBOX_URLS = [pytest.param(sqlite_url, id="sqlite"), pytest.param(redis_url, id="redis")]


@pytest.fixture(params=INBOX_URLS)
def inbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    factory: Callable[[Path], Iterator[str]] = request.param
    yield from factory(tmp_path)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "asana_webhooks", *args]


def worker_env(tmp_path: Path, sleep: float = 0.0) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["INBOX_TEST_EFFECTS"] = str(tmp_path / "effects.sqlite3")
    env["INBOX_TEST_CALLS"] = str(tmp_path / "calls.log")
    env["INBOX_TEST_SLEEP"] = str(sleep)
    return env


_started = 0


def start_worker(url: str, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    """A worker process; its stderr goes to a file (a pipe nobody reads would fill up)."""
    global _started
    _started += 1
    log = Path(env["INBOX_TEST_CALLS"]).with_name(f"worker-{_started}.log")
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            cli("worker", "--inbox", url, "--handler", "_inbox_handlers:record", *extra),
            env=env,
            cwd=TESTS,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    process.log = log  # type: ignore[attr-defined]
    return process


def log_of(process: subprocess.Popen[bytes]) -> str:
    return str(process.log.read_text())  # type: ignore[attr-defined]


def terminate_when_ready(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM once the worker is running (it says so), and wait for it to exit."""
    deadline = time.monotonic() + timeout
    while "handling events" not in log_of(process) and process.poll() is None:
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def calls(tmp_path: Path) -> Counter[str]:
    path = tmp_path / "calls.log"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def effects(tmp_path: Path) -> Counter[str]:
    db = sqlite3.connect(tmp_path / "effects.sqlite3")
    try:
        return Counter(key for (key,) in db.execute("SELECT key FROM effects"))
    finally:
        db.close()


@pytest.mark.timeout(300)
def test_workers_killed_at_random_lose_nothing_and_double_no_effect(
    inbox_url: str, tmp_path: Path
) -> None:
    inbox = open_inbox(inbox_url)
    store = MemorySecretStore()
    store.set(TARGET, SECRET)
    receiver = WebhookReceiver(store, inbox=inbox)
    # 1,000 deliveries of 3 events: 2 new, 1 repeating the previous delivery's last; every
    # 10th delivery is sent twice, as Asana does after a timeout.
    deliveries = [
        [event(2 * d), event(2 * d + 1)] + ([event(2 * d - 1)] if d else []) for d in range(1000)
    ]
    expected = {event_key(e) for delivery in deliveries for e in delivery}
    env = worker_env(tmp_path, sleep=0.01)
    rng = random.Random(1414)
    workers: list[subprocess.Popen[bytes]] = []
    kills = 0
    refused = Counter[int]()
    sending_done = threading.Event()

    def send(index: int) -> None:
        body = body_of(deliveries[index])
        for _ in range(1 + (index % 10 == 0)):
            while True:
                status, _ = post(running.url + TARGET, body)
                if status == 200:
                    break
                refused[status] += 1  # Asana would deliver again: so do we
                time.sleep(0.1)

    with ReceiverServer.for_receiver(receiver) as running:
        workers = [
            start_worker(inbox_url, env, "--lease", "1", "--concurrency", "2") for _ in range(2)
        ]
        try:
            with ThreadPoolExecutor(8) as senders:
                futures = [senders.submit(send, i) for i in range(len(deliveries))]
                sender_errors: list[BaseException] = []

                def wait_senders() -> None:
                    for future in futures:
                        if future.exception() is not None:
                            sender_errors.append(future.exception())  # type: ignore[arg-type]
                    sending_done.set()

                threading.Thread(target=wait_senders, daemon=True).start()
                # Kill a worker at a random moment, then start a new one, while deliveries
                # arrive and for a while after.
                deadline = time.monotonic() + 150
                while (not sending_done.is_set() or kills < 8) and time.monotonic() < deadline:
                    time.sleep(rng.uniform(0.2, 0.8))
                    victim = rng.randrange(len(workers))
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait(30)
                    kills += 1
                    workers[victim] = start_worker(
                        inbox_url, env, "--lease", "1", "--concurrency", "2"
                    )
            assert not sender_errors, sender_errors[:3]

            def settled() -> bool:
                stats = inbox.stats()
                return stats.pending == 0 and stats.in_progress == 0

            deadline = time.monotonic() + 120
            while not settled() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert settled(), f"events left unhandled: {inbox.stats()}"
        finally:
            statuses = [terminate_when_ready(process) for process in workers]
    for process, status in zip(workers, statuses):
        assert status == 0, log_of(process)[-2000:]
        assert "Traceback" not in log_of(process)
    called = calls(tmp_path)
    done = effects(tmp_path)
    missing = expected - set(called)
    assert not missing, f"{len(missing)} events never reached the handler"
    assert set(called) == expected, "the handler got events nobody sent"
    assert set(done) == expected, f"{len(expected - set(done))} events have no effect"
    doubled = {key: n for key, n in done.items() if n > 1}
    assert not doubled, f"{len(doubled)} events had their effect twice"
    stats = inbox.stats()
    assert stats.failed == 0 and stats.stored == len(expected)
    assert kills >= 8
    redelivered = sum(n - 1 for n in called.values())
    print(
        f"\n{kills} kills, {len(expected)} events, {redelivered} handed over again after a "
        f"kill, receiver refusals {dict(refused)}"
    )
    inbox.close()


def test_sigterm_lets_a_worker_finish_its_batch_and_exit_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.sqlite3'}"
    inbox = open_inbox(url)
    inbox.store(TARGET, [event(n) for n in range(3)])
    inbox.store("/other", [event(n) for n in range(3, 6)])
    env = worker_env(tmp_path, sleep=3.0)
    worker = start_worker(url, env)
    deadline = time.monotonic() + 60
    while not calls(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert calls(tmp_path), "the worker never called the handler"
    assert terminate_when_ready(worker) == 0, log_of(worker)
    stderr = log_of(worker)
    assert "Traceback" not in stderr
    assert "stopped (SIGTERM)" in stderr
    stats = inbox.stats()
    # The batch in hand was finished; the other target's batch was never started.
    assert (stats.handled, stats.pending, stats.in_progress) == (3, 3, 0), stats
    assert sum(effects(tmp_path).values()) == 3
    inbox.close()


def test_drain_exits_1_when_it_parked_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.sqlite3'}"
    inbox = open_inbox(url)
    inbox.store(TARGET, [event(1), event(2, name="poison"), event(3)])
    env = worker_env(tmp_path)
    result = subprocess.run(
        cli(
            "worker",
            *("--inbox", url, "--handler", "_inbox_handlers:fail_on_marked", "--drain"),
            *("--backoff", "0.05", "--max-attempts", "4"),
        ),
        env=env,
        cwd=TESTS,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr.decode()
    assert result.stdout.decode().startswith("2 handled, 3 retried, 1 parked")
    assert "Traceback" not in result.stderr.decode()
    # The poison event did not block the others, and is parked with its error.
    assert set(effects(tmp_path)) == {event_key(event(1)), event_key(event(3))}
    listed = subprocess.run(
        cli("inbox", "--inbox", url, "failed"), capture_output=True, timeout=60, cwd=TESTS
    )
    assert listed.returncode == 0
    (line,) = listed.stdout.decode().splitlines()
    assert "RuntimeError: poison event" in line and "attempts 4" in line
    parked_id = line.split()[0]
    replayed = subprocess.run(
        cli("inbox", "--inbox", url, "replay", parked_id), capture_output=True, timeout=60
    )
    assert (replayed.returncode, replayed.stdout) == (0, b"replayed 1 of 1 events\n")
    assert inbox.stats().pending == 1
    inbox.close()


@pytest.mark.timeout(300)
def test_an_event_that_kills_its_worker_is_parked_after_max_attempts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.sqlite3'}"
    inbox = open_inbox(url)
    inbox.store(TARGET, [event(1), event(2, name="poison"), event(3)])
    env = worker_env(tmp_path)
    command = cli(
        "worker",
        *("--inbox", url, "--handler", "_inbox_handlers:die_on_marked", "--drain"),
        *("--lease", "1", "--max-attempts", "3"),
    )
    statuses = []
    for _ in range(12):
        result = subprocess.run(command, env=env, cwd=TESTS, capture_output=True, timeout=120)
        statuses.append(result.returncode)
        if inbox.stats().failed:
            break
        time.sleep(1.2)  # the dead worker's lease runs out
    assert inbox.stats().failed == 1, f"the poison event was never parked: statuses {statuses}"
    assert statuses.count(3) == 3, f"each lost lease counts one attempt of 3: {statuses}"
    # The events beside it were handled, once, though their worker died with them too.
    assert set(effects(tmp_path)) == {event_key(event(1)), event_key(event(3))}
    assert max(effects(tmp_path).values()) == 1
    (parked,) = inbox.failed()
    assert parked.key == event_key(event(2, name="poison"))
    assert parked.error is not None and "lease ran out" in parked.error
    assert inbox.stats().pending == 0
    inbox.close()


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["inbox", "--inbox", "ftp://host/x", "stats"], 2, "unknown scheme 'ftp'"),
        (["inbox", "--inbox", "/no/such/dir/inbox.sqlite3", "stats"], 2, "does not exist"),
        (["inbox", "--inbox", "sqlite://host/x", "stats"], 2, "sqlite:///ABSOLUTE/PATH"),
        (
            ["worker", "--inbox", "{tmp}/i.sqlite3", "--handler", "no_such_module:f"],
            2,
            "cannot import",
        ),
        (
            ["worker", "--inbox", "{tmp}/i.sqlite3", "--handler", "_inbox_handlers"],
            2,
            "MODULE:FUNCTION",
        ),
        (
            ["worker", "--inbox", "{tmp}/i.sqlite3", "--handler", "_inbox_handlers:nope"],
            2,
            "no 'nope'",
        ),
        (
            ["worker", "--inbox", "{tmp}/i.sqlite3", "--handler", "x:y", "--lease", "0"],
            2,
            "--lease",
        ),
        (["inbox", "--inbox", "{tmp}/dir", "stats"], 2, "not a file path"),
        (["inbox", "--inbox", "{tmp}/i.sqlite3", "replay", "12345"], 1, "not parked"),
    ],
)
def test_bad_input_is_one_line_and_a_documented_status(
    args: list[str], status: int, message: str, tmp_path: Path
) -> None:
    (tmp_path / "dir").mkdir()
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = subprocess.run(
        cli(*argv), capture_output=True, timeout=60, cwd=TESTS, env=worker_env(tmp_path)
    )
    stderr = result.stderr.decode()
    assert result.returncode == status, stderr
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_an_unreachable_inbox_server_is_exit_1(tmp_path: Path) -> None:
    pytest.importorskip("asana_webhooks.contrib.redis")
    result = subprocess.run(
        cli("inbox", "--inbox", f"redis://127.0.0.1:{closed_port()}/0", "stats"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert b"Traceback" not in result.stderr


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_with_an_inbox_stores_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    inbox_path = tmp_path / "inbox.sqlite3"
    secrets = tmp_path / "secrets.sqlite3"
    from asana_webhooks import SQLiteSecretStore

    SQLiteSecretStore(secrets).set(TARGET, SECRET)
    serve = subprocess.Popen(
        cli(
            "serve", "--port", "0", "--secrets", str(secrets), "--inbox", f"sqlite:///{inbox_path}"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = _listening_url(serve)
        assert post(url + TARGET, body_of([event(1), event(2)]))[0] == 200
        status, text = get(url + "/metrics")
        assert status == 200
        assert b"asana_webhooks_inbox_pending 2.0" in text
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    stdout, stderr = serve.communicate()
    assert stdout == b"", "with an inbox, serve prints no events"
    assert b"Traceback" not in stderr
    inbox = open_inbox(str(inbox_path))
    assert inbox.stats().pending == 2
    inbox.close()


def _listening_url(process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    line: Optional[bytes] = b""
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if b"listening on " in line:
            return line.split(b"listening on ")[1].split()[0].decode()
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"serve did not start: {line!r}")
