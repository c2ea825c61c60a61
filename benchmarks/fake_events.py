"""How fast the stand-in plays Asana's event traffic, so tests built on it stay short.

    python benchmarks/fake_events.py [--events 1000] [--webhooks 20]

Measures, over real sockets on 127.0.0.1:

- ``generate_traffic``: events made, recorded in the streams and delivered one POST each to a
  ``RecordingTarget`` (events per second);
- ``GET /events``: reading them back 100 a call with a sync token (events per second);
- ``advance(25 h)`` with ``--webhooks`` targets offline: every retry of every webhook at its
  backoff moment, then the 24-hour deletions (seconds of wall time, POST attempts made).
"""

from __future__ import annotations

import argparse
import time

import requests

from asana_webhooks.testing import FakeAsana, RecordingTarget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=20)
    args = parser.parse_args()

    with FakeAsana() as fake, RecordingTarget() as target:
        project = fake.add_resource(resource_type="project")
        fake.add_webhook(project, target.url)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {fake.access_token}"
        url = f"{fake.url}/events"
        sync = session.get(url, params={"resource": project}, timeout=10).json()["sync"]

        started = time.perf_counter()
        fake.generate_traffic(project, args.events, seed=1)
        took = time.perf_counter() - started
        delivered = len(target.deliveries)
        print(
            f"generate_traffic: {args.events} events, {delivered} deliveries in {took:.2f} s "
            f"({args.events / took:,.0f} events/s)"
        )

        started = time.perf_counter()
        read = calls = 0
        while True:
            page = session.get(url, params={"resource": project, "sync": sync}, timeout=10).json()
            calls += 1
            read += len(page["data"])
            sync = page["sync"]
            if not page["has_more"]:
                break
        took = time.perf_counter() - started
        print(f"GET /events: {read} events in {calls} calls, {took:.2f} s ({read / took:,.0f}/s)")

        fake.reset()
        for n in range(args.webhooks):
            hook = fake.add_webhook(str(1_200_000_000_100_000 + n), f"{target.url}/{n}")
            fake.take_offline(hook["target"])
        fake.emit([])  # nothing yet: the first failures come from heartbeats at 8 hours
        started = time.perf_counter()
        done = fake.advance(25 * 3600 + 8 * 3600)
        took = time.perf_counter() - started
        attempts = sum(1 for d in done if d.kind in ("heartbeat", "retry"))
        deleted = sum(1 for d in done if d.outcome == "deleted")
        print(
            f"advance(33 h), {args.webhooks} offline webhooks: {attempts} attempts, "
            f"{deleted} deleted, {took:.2f} s"
        )


if __name__ == "__main__":
    main()
