"""What keeping many webhooks costs: ensure, health, and the receiver's record of contact.

    python benchmarks/ensure.py [--webhooks 100] [--deliveries 2000]

Over real sockets on 127.0.0.1, against the stand-in, with a SQLite secret store:

- ``ensure_webhooks`` creating ``--webhooks`` webhooks (each a verified handshake), then a
  second run that changes nothing (seconds each);
- ``webhook_health`` over the same declared list (seconds);
- the receiver answering ``--deliveries`` signed deliveries one after another, with the
  contact record on (throttled to one write per target per minute) and off (a store
  without ``record_contact``): deliveries per second, to show what the hot path pays.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from asana_webhooks import (
    ApiClient,
    Configuration,
    SQLiteSecretStore,
    WebhookReceiver,
    WebhooksApi,
    ensure_webhooks,
    parse_declared,
    webhook_health,
)
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana


class WithoutContact:
    """The same SQLite store, without record_contact: the receiver then records nothing."""

    def __init__(self, store: SQLiteSecretStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("record_contact", "last_contact"):
            raise AttributeError(name)
        return getattr(self._store, name)


def deliveries_per_second(fake: FakeAsana, gid: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        assert fake.deliver(gid, [fake.make_event()]) == 200
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--deliveries", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, FakeAsana() as fake:
        store = SQLiteSecretStore(Path(folder) / "secrets.sqlite3")
        receiver = WebhookReceiver(store, lambda events, target: None)
        server = ReceiverServer.for_receiver(receiver).start()
        client = ApiClient(Configuration(host=fake.url, access_token=fake.access_token))
        api = WebhooksApi(client)
        entries = []
        for index in range(args.webhooks):
            resource = fake.add_resource(resource_type="project", name=f"P{index}")
            entries.append(
                {
                    "workspace": fake.workspace_gid,
                    "resource": resource,
                    "target": f"{server.url}/asana/{resource}",
                    "filters": [{"resource_type": "task", "action": "changed"}],
                }
            )
        try:
            started = time.perf_counter()
            first = ensure_webhooks(api, store, entries)
            created = time.perf_counter() - started
            started = time.perf_counter()
            second = ensure_webhooks(api, store, entries)
            unchanged = time.perf_counter() - started
            assert first.ok and len(first.pending) == args.webhooks and not second.pending
            started = time.perf_counter()
            states = webhook_health(api, store, parse_declared(entries))
            judged = time.perf_counter() - started
            assert all(health.state == "ok" for health in states)
            print(f"ensure, {args.webhooks} creates:       {created:6.2f} s")
            print(f"ensure, nothing to do:        {unchanged:6.2f} s")
            print(f"webhook_health, {args.webhooks} webhooks: {judged:6.2f} s")

            gid = fake.webhooks[0]["gid"]
            deliveries_per_second(fake, gid, args.deliveries // 10)  # warm up
            # Alternate, best of three each: the machine is shared, and load comes and goes.
            with_record, without = 0.0, 0.0
            for _ in range(3):
                receiver.secret_store = store
                with_record = max(with_record, deliveries_per_second(fake, gid, args.deliveries))
                receiver.secret_store = WithoutContact(store)  # type: ignore[assignment]
                without = max(without, deliveries_per_second(fake, gid, args.deliveries))
            print(f"deliveries/s, contact record on:  {with_record:7.0f}")
            print(f"deliveries/s, contact record off: {without:7.0f}")
        finally:
            server.stop()
            client.close()


if __name__ == "__main__":
    main()
