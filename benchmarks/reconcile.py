"""How fast one reconcile pass recovers events into an inbox, and how fast it skips known ones.

    python benchmarks/reconcile.py [--events 5000] [--inbox sqlite|redis]

Over real sockets on 127.0.0.1: FakeAsana's Events API (100 events an answer, as Asana) and a
real inbox (SQLite in a temp dir, or Redis at ``ASANA_WEBHOOKS_TEST_REDIS`` with a key prefix
of its own). Three passes over ``--events`` generated events:

- all new (what a receiver that was down for a while needs recovered);
- all already known (a webhook brought them: the usual case, only duplicates are dropped);
- nothing new (the steady state: one request, no events).

Prints events per second and answers (requests) per pass. Figures are wall time, client and
stand-in sharing the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from asana_webhooks import ApiClient, Configuration, Reconciler, SQLiteInbox
from asana_webhooks import open_inbox as open_inbox_url
from asana_webhooks.testing import FakeAsana

REDIS = os.environ.get("ASANA_WEBHOOKS_TEST_REDIS", "redis://127.0.0.1:6379/0")
PREFIX = f"aw_bench_{uuid.uuid4().hex[:8]}"


def open_inbox(kind: str, directory: Path) -> Any:
    if kind == "sqlite":
        return SQLiteInbox(directory / "inbox.sqlite3")
    return open_inbox_url(f"{REDIS}?prefix={PREFIX}")


def forget_redis_keys() -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(match=f"{PREFIX}*", count=1000):
        client.delete(key)
    client.close()


def timed(reconciler: Reconciler, fake: FakeAsana, resource: str, label: str) -> None:
    fake.clear_requests()
    started = time.perf_counter()
    result = reconciler.run_once()[resource]
    took = time.perf_counter() - started
    calls = len([r for r in fake.requests if r.path == "/events"])
    seen = result.recovered + result.already_known
    rate = f"{seen / took:,.0f} events/s" if seen else f"{took * 1000:.1f} ms"
    print(
        f"{label:<14} {result.recovered:>6} recovered {result.already_known:>6} known "
        f"{calls:>4} answers {took:7.2f} s  ({rate})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--inbox", choices=("sqlite", "redis"), default="sqlite")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory, FakeAsana() as fake:
        project = fake.add_resource(resource_type="project")
        inbox = open_inbox(args.inbox, Path(directory))
        client = ApiClient(Configuration(host=fake.url, access_token=fake.access_token))
        reconciler = Reconciler(client, inbox, [project])
        reconciler.run_once()  # the starting token

        generated = fake.generate_traffic(project, args.events, seed=1, batch=100)
        timed(reconciler, fake, project, "all new")

        start = reconciler.api.starting_sync_token(project)  # read only what comes next
        inbox.store_polled(project, [], start, restart=True)
        more = fake.generate_traffic(project, args.events, seed=2, batch=100)
        inbox.store("/asana/webhook", more)  # as if every webhook had arrived
        timed(reconciler, fake, project, "all known")
        timed(reconciler, fake, project, "nothing new")
        print(f"({len(generated) + len(more)} events generated; inbox: {args.inbox})")
        inbox.close()
        client.close()
    if args.inbox == "redis":
        forget_redis_keys()


if __name__ == "__main__":
    main()
