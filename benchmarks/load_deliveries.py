"""Push signed webhook deliveries through the Flask adapter on a real WSGI server, from several
concurrent senders, and check that every event reached ``on_events`` exactly once.

    python benchmarks/load_deliveries.py                      # 3000 deliveries, 8 senders
    python benchmarks/load_deliveries.py --deliveries 500     # a smoke run
    python benchmarks/load_deliveries.py --store sqlite --json

A werkzeug server (threaded, as ``flask run`` serves) binds 127.0.0.1 on a free port and
serves ``webhook_blueprint(receiver)`` for a few targets whose secrets are in the store.
Each sender thread keeps one HTTP/1.1 connection open and POSTs deliveries of 1 to 5 events,
each event with a ``resource.gid`` no other event has; every ``--tamper-every``-th delivery
carries a wrong ``X-Hook-Signature`` and must be refused with 401. The run is bounded by
``--deliveries`` and by ``--time-limit`` seconds, and stops by itself.

Reported: deliveries and events per second (wall clock, senders and server sharing this
machine's cores and one Python process), latency percentiles, the statuses seen, and the
exactly-once check: every event of every accepted delivery was handed to ``on_events``
once, no event of a refused delivery was, and ``on_events`` ran once per accepted delivery.
The exit status is 0 only if that check holds.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

import flask  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from asana_webhooks import (  # noqa: E402
    Event,
    MemorySecretStore,
    SecretStore,
    SQLiteSecretStore,
    WebhookReceiver,
    sign_body,
)
from asana_webhooks.contrib.flask import webhook_blueprint  # noqa: E402

MAX_DELIVERIES = 100_000
MAX_SENDERS = 64
PREFIX = "/asana/webhooks"


class Ledger:
    """What ``on_events`` saw: how often each event id arrived, and how many calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: collections.Counter[str] = collections.Counter()
        self.calls = 0

    def on_events(self, events: Sequence[Event], target: str) -> None:
        ids = [event.resource.gid for event in events if event.resource is not None]
        with self.lock:
            self.calls += 1
            self.seen.update(ids)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def serving(receiver: WebhookReceiver) -> Iterator[int]:
    app = flask.Flask("load_deliveries")
    app.register_blueprint(webhook_blueprint(receiver, PREFIX))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def make_event(gid: str) -> dict[str, Any]:
    return {
        "user": {"gid": "1209000000000001", "resource_type": "user"},
        "created_at": "2026-01-01T00:00:00.000Z",
        "action": "changed",
        "resource": {"gid": gid, "resource_type": "task", "resource_subtype": "default_task"},
        "parent": None,
        "change": {"field": "name", "action": "changed"},
    }


class Sender(threading.Thread):
    """One connection, deliveries in turn; records what it sent and what came back."""

    def __init__(
        self,
        index: int,
        port: int,
        targets: Sequence[tuple[str, str]],
        quota: int,
        deadline: float,
        tamper_every: int,
    ) -> None:
        super().__init__(name=f"sender-{index}", daemon=True)
        self.index = index
        self.port = port
        self.targets = targets
        self.quota = quota
        self.deadline = deadline
        self.tamper_every = tamper_every
        self.accepted_ids: list[str] = []
        self.refused_ids: list[str] = []
        self.unknown_ids: list[str] = []
        self.statuses: collections.Counter[int] = collections.Counter()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.sent = 0

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10.0)

    def run(self) -> None:
        connection = self._connect()
        try:
            for number in range(self.quota):
                if time.monotonic() >= self.deadline:
                    break
                path, secret = self.targets[number % len(self.targets)]
                count = 1 + (number * 7 + self.index) % 5
                ids = [f"{self.index:03d}{number:07d}{i}" for i in range(count)]
                body = json.dumps({"events": [make_event(gid) for gid in ids]}).encode()
                tampered = self.tamper_every > 0 and number % self.tamper_every == 0
                signature = sign_body(body, "not-the-secret" if tampered else secret)
                headers = {"Content-Type": "application/json", "X-Hook-Signature": signature}
                started = time.perf_counter()
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    connection.close()
                    connection = self._connect()
                    self.unknown_ids.extend(ids)  # it may or may not have been handled
                    continue
                self.latencies.append(time.perf_counter() - started)
                self.sent += 1
                self.statuses[response.status] += 1
                if response.status == 200 and not tampered:
                    self.accepted_ids.extend(ids)
                else:
                    self.refused_ids.extend(ids)
                    if tampered and response.status != 401:
                        self.errors.append(f"a tampered delivery got {response.status}")
                    if not tampered:
                        self.errors.append(f"a good delivery got {response.status}")
        finally:
            connection.close()


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    ledger = Ledger()
    with tempfile.TemporaryDirectory() as folder:
        store: SecretStore
        if args.store == "sqlite":
            store = SQLiteSecretStore(Path(folder) / "secrets.sqlite3")
        else:
            store = MemorySecretStore()
        targets = [(f"{PREFIX}/{n}?team=t{n}", f"{n:02d}" * 32) for n in range(args.targets)]
        for path, secret in targets:
            store.set(path, secret)
        receiver = WebhookReceiver(store, ledger.on_events)
        with serving(receiver) as port:
            deadline = time.monotonic() + args.time_limit
            share, extra = divmod(args.deliveries, args.senders)
            senders = [
                Sender(
                    i, port, targets, share + (1 if i < extra else 0), deadline, args.tamper_every
                )
                for i in range(args.senders)
            ]
            started = time.perf_counter()
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(args.time_limit + 15)
            elapsed = time.perf_counter() - started
            hung = [s.name for s in senders if s.is_alive()]

    accepted = [gid for s in senders for gid in s.accepted_ids]
    refused = [gid for s in senders for gid in s.refused_ids]
    statuses: collections.Counter[int] = collections.Counter()
    for sender in senders:
        statuses.update(sender.statuses)
    latencies = [latency for s in senders for latency in s.latencies]
    sent = sum(s.sent for s in senders)
    good_deliveries = statuses[200]
    duplicates = sorted(gid for gid, n in ledger.seen.items() if n > 1)
    missing = [gid for gid in accepted if ledger.seen[gid] == 0]
    leaked = [gid for gid in refused if ledger.seen[gid] > 0]
    errors = [error for s in senders for error in s.errors]
    exactly_once = (
        not duplicates
        and not missing
        and not leaked
        and not hung
        and not errors
        and ledger.calls == good_deliveries
        and len(accepted) == len(set(accepted))
    )
    return {
        "python": platform.python_version(),
        "store": args.store,
        "senders": args.senders,
        "targets": args.targets,
        "deliveries_sent": sent,
        "deliveries_accepted": good_deliveries,
        "deliveries_refused": sent - good_deliveries,
        "events_accepted": len(accepted),
        "seconds": round(elapsed, 3),
        "deliveries_per_second": round(sent / elapsed, 1) if elapsed else 0.0,
        "events_per_second": round(len(accepted) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 0.50), 2),
            "p95": round(1000 * percentile(latencies, 0.95), 2),
            "p99": round(1000 * percentile(latencies, 0.99), 2),
            "mean": round(1000 * statistics.fmean(latencies), 2) if latencies else 0.0,
        },
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "on_events_calls": ledger.calls,
        "duplicated_events": len(duplicates),
        "missing_events": len(missing),
        "refused_events_that_reached_on_events": len(leaked),
        "errors": errors[:10],
        "stopped_by_time_limit": sent < args.deliveries,
        "exactly_once": exactly_once,
    }


def _bounded(name: str, low: int, high: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be {low}..{high}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--deliveries", type=_bounded("deliveries", 1, MAX_DELIVERIES), default=3000
    )
    parser.add_argument("--senders", type=_bounded("senders", 1, MAX_SENDERS), default=8)
    parser.add_argument("--targets", type=_bounded("targets", 1, 100), default=4)
    parser.add_argument(
        "--tamper-every",
        type=_bounded("tamper-every", 0, MAX_DELIVERIES),
        default=50,
        help="every Nth delivery of a sender carries a wrong signature (0: none)",
    )
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument(
        "--time-limit", type=float, default=60.0, help="stop sending after this many seconds"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not 0 < args.time_limit <= 600:
        parser.error("--time-limit must be 0..600 seconds")
    # The receiver logs each refused (tampered) delivery; the counts below say it all.
    logging.getLogger("asana_webhooks").addHandler(logging.NullHandler())

    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        latency = result["latency_ms"]
        print(
            f"{result['deliveries_sent']} deliveries ({result['deliveries_refused']} tampered, "
            f"refused) from {result['senders']} senders to {result['targets']} targets "
            f"through Flask on werkzeug, {result['store']} store, Python {result['python']}"
        )
        print(
            f"  {result['seconds']:.2f} s: {result['deliveries_per_second']:.0f} deliveries/s, "
            f"{result['events_per_second']:.0f} events/s"
        )
        print(
            f"  latency p50 {latency['p50']} ms, p95 {latency['p95']} ms, "
            f"p99 {latency['p99']} ms; statuses {result['statuses']}"
        )
        print(
            f"  on_events: {result['on_events_calls']} calls for {result['deliveries_accepted']} "
            f"accepted deliveries; {result['events_accepted']} events, "
            f"{result['duplicated_events']} duplicated, {result['missing_events']} missing, "
            f"{result['refused_events_that_reached_on_events']} from refused deliveries"
        )
        if result["stopped_by_time_limit"]:
            print("  stopped by --time-limit before every delivery was sent")
        for error in result["errors"]:
            print(f"  error: {error}")
        print("  exactly once: " + ("yes" if result["exactly_once"] else "NO"))
    return 0 if result["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
