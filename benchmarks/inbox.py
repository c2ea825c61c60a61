"""The inbox's cost and capacity: the receiver with and without it, and worker throughput.

    python benchmarks/inbox.py                 # about a minute
    python benchmarks/inbox.py --quick         # a smoke run
    python benchmarks/inbox.py --json

1. **Receiver.** ``asana-webhooks serve`` runs in its own process on 127.0.0.1 (the stdlib
   threaded server), once without an inbox (events printed to /dev/null: the receiver as it
   was) and once with ``--inbox`` on a SQLite file while an ``asana-webhooks worker``
   process runs a handler that sleeps ``--handler-sleep`` seconds per batch. 16 sender
   threads in this process POST signed deliveries of 1 to 3 events; reported:
   deliveries/s (wall clock) and the p50/p99 time to answer. Every answer must be 200.
2. **Workers.** An inbox pre-filled with ``--events`` events (deliveries of 3, 16 targets)
   is drained by 1, then by 4, ``worker --drain`` processes with a no-op handler; reported:
   events/s from the first start to the last exit (process start-up included).

``--backend redis`` runs the inbox cases on Redis (``ASANA_WEBHOOKS_BENCH_REDIS``, default
``redis://127.0.0.1:6379/0``, under a key prefix of its own that is deleted afterwards), with
the secrets in Redis too, as receivers on several machines would have them; ``--serves 2``
adds a case with two ``serve`` processes sharing the inbox, the senders spread over both.

Both sides share this machine's cores, as they would on one small server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from asana_webhooks import SQLiteSecretStore, open_inbox, open_secret_store, sign_body  # noqa: E402

SECRET = "5a" * 32
TARGETS = [f"/asana/hooks/{n}" for n in range(16)]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "asana_webhooks", *args]


def env() -> dict[str, str]:
    variables = dict(os.environ)
    variables["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent)])
    return variables


def make_event(n: int) -> dict[str, Any]:
    return {
        "user": {"gid": "1209000000000001", "resource_type": "user"},
        "created_at": f"2026-01-01T00:00:00.{n % 1000:03d}Z",
        "action": "changed",
        "resource": {"gid": str(1_200_000_000_000_000 + n), "resource_type": "task"},
        "parent": None,
        "change": {"field": "name", "action": "changed", "new_value": f"v{n}"},
    }


class Backend:
    """Where the inbox (and, with it, the secrets) of the inbox cases live."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.redis = os.environ.get("ASANA_WEBHOOKS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
        self.prefixes: list[str] = []

    def urls(self, folder: Path) -> tuple[str, str]:
        """(inbox URL, secrets URL) for a fresh, empty inbox."""
        if self.name == "sqlite":
            return f"sqlite:///{folder / 'inbox.sqlite3'}", str(folder / "secrets.sqlite3")
        prefix = f"asana_webhooks_bench_{uuid.uuid4().hex[:10]}"
        self.prefixes.append(prefix)
        url = f"{self.redis}?prefix={prefix}"
        return url, url

    def clean(self) -> None:
        """Delete this run's Redis keys, and only those."""
        if not self.prefixes:
            return
        import redis

        client = redis.Redis.from_url(self.redis, socket_timeout=10)
        for prefix in self.prefixes:
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                client.delete(key)
        client.close()


def start_serve(
    folder: Path, inbox: Optional[str], secrets: Optional[str] = None
) -> tuple[subprocess.Popen[bytes], str]:
    secrets = secrets or str(folder / "secrets.sqlite3")
    store = open_secret_store(secrets) if "://" in secrets else SQLiteSecretStore(secrets)
    for target in TARGETS:
        store.set(target, SECRET)
    args = ["serve", "--port", "0", "--secrets", secrets]
    if inbox:
        args += ["--inbox", inbox]
    process = subprocess.Popen(
        cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env()
    )
    assert process.stderr is not None
    while True:
        line = process.stderr.readline()
        if b"listening on " in line:
            return process, line.split(b"listening on ")[1].split()[0].decode()
        if not line:
            raise RuntimeError("serve did not start")


def send_all(urls: list[str], deliveries: int, senders: int) -> dict[str, Any]:
    ports = [int(url.rsplit(":", 1)[1]) for url in urls]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(deliveries))

    def sender() -> None:
        mine: list[float] = []
        seen: dict[int, int] = {}
        for number in counter:
            events = [make_event(number * 3 + i) for i in range(1 + number % 3)]
            body = json.dumps({"events": events}).encode()
            headers = {"X-Hook-Signature": sign_body(body, SECRET)}
            port = ports[number % len(ports)]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", TARGETS[number % len(TARGETS)], body=body, headers=headers
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = -1  # reported among the statuses: a connection that failed
            finally:
                connection.close()
            mine.append(time.perf_counter() - started)
            seen[status] = seen.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for status, n in seen.items():
                statuses[status] = statuses.get(status, 0) + n

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "deliveries": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "statuses": statuses,
    }


def receiver_case(
    args: argparse.Namespace, with_inbox: bool, backend: Backend, serves: int = 1
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        inbox_url, secrets = backend.urls(folder) if with_inbox else (None, None)
        started = [start_serve(folder, inbox_url, secrets) for _ in range(serves)]
        urls = [url for _, url in started]
        worker = None
        if inbox_url:
            worker_env = env()
            worker_env["BENCH_HANDLER_SLEEP"] = str(args.handler_sleep)
            worker = subprocess.Popen(
                cli("worker", "--inbox", inbox_url, "--handler", "_bench_handlers:sleepy"),
                env=worker_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            send_all(urls, min(200, args.deliveries), args.senders)  # warm up
            result = send_all(urls, args.deliveries, args.senders)
        finally:
            for process in [serve for serve, _ in started] + [worker]:
                if process is not None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(60)
        if inbox_url:
            inbox = open_inbox(inbox_url)
            stats = inbox.stats()
            inbox.close()
            result["handled_meanwhile"] = stats.handled
            result["stored"] = stats.stored
        result["serves"] = serves
        return result


def worker_case(args: argparse.Namespace, workers: int, backend: Backend) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        url, _ = backend.urls(Path(name))
        inbox = open_inbox(url)
        for number in range(0, args.events, 3):
            inbox.store(TARGETS[number % 16], [make_event(number + i) for i in range(3)])
        started = time.perf_counter()
        logs = [Path(name) / f"worker-{n}.log" for n in range(workers)]
        processes = []
        for log in logs:
            with open(log, "wb") as stderr:
                processes.append(
                    subprocess.Popen(
                        cli(
                            *("worker", "--inbox", url),
                            *("--handler", "_bench_handlers:noop", "--drain"),
                        ),
                        env=env(),
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
        codes = [process.wait(600) for process in processes]
        for code, log in zip(codes, logs):
            if code != 0:
                print(
                    f"a worker exited {code}: {log.read_text().splitlines()[-1:]}", file=sys.stderr
                )
        elapsed = time.perf_counter() - started
        handled = inbox.stats().handled
        inbox.close()
        if codes != [0] * workers or handled != args.events:
            raise RuntimeError(f"workers exited {codes}, handled {handled} of {args.events}")
        return {"workers": workers, "events": handled, "per_second": handled / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--handler-sleep", type=float, default=0.5)
    parser.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument(
        "--serves", type=int, default=1, help="2: also two serve processes sharing the inbox"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.deliveries, args.events = 400, 3000
    backend = Backend(args.backend)
    try:
        without = receiver_case(args, with_inbox=False, backend=backend)
        with_inbox = receiver_case(args, with_inbox=True, backend=backend)
        shared = (
            receiver_case(args, with_inbox=True, backend=backend, serves=args.serves)
            if args.serves > 1
            else None
        )
        workers = [worker_case(args, n, backend) for n in (1, 4)]
    finally:
        backend.clean()
    report = {
        "machine": f"{platform.python_version()} on {platform.system()}, {os.cpu_count()} cores",
        "backend": args.backend,
        "receiver_without_inbox": without,
        f"receiver_with_{args.backend}_inbox": with_inbox,
        "ratio": with_inbox["per_second"] / without["per_second"],
        "workers": workers,
    }
    if shared is not None:
        report[f"receiver_with_{args.backend}_inbox_{args.serves}_serves"] = shared
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"Python {report['machine']}; {args.senders} senders, {args.deliveries} deliveries\n")
    print("| receiver | deliveries/s | p50 ms | p99 ms | statuses |")
    print("|---|---:|---:|---:|---|")
    rows = [
        ("no inbox (events to stdout)", without),
        (f"{args.backend} inbox, handler sleeping {args.handler_sleep:g} s/batch", with_inbox),
    ]
    if shared is not None:
        rows.append((f"{args.backend} inbox, {args.serves} serve processes", shared))
    for label, row in rows:
        print(
            f"| {label} | {row['per_second']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} "
            f"| {row['statuses']} |"
        )
    print(f"\nthroughput with the inbox: {report['ratio']:.2f}x without\n")
    print(f"| workers ({args.backend}, no-op handler) | events | events/s |")
    print("|---:|---:|---:|")
    for row in workers:
        print(f"| {row['workers']} | {row['events']} | {row['per_second']:.0f} |")


if __name__ == "__main__":
    main()
