"""One ApiClient shared by 16 threads, 200 calls each, against the stand-in over real sockets.

Every call must get its own answer (no cross-talk between threads' responses), no call may
need a retry, urllib3 must never warn that its pool is full, and the stand-in must see no more
connections than there are threads (and so no more than ``pool_maxsize``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from asana_webhooks import (
    ApiClient,
    Configuration,
    HTTPClientTransport,
    RequestsTransport,
    RetryPolicy,
    Timeout,
    Transport,
    Urllib3Transport,
    WebhooksApi,
)
from asana_webhooks.testing import FakeAsana

pytestmark = pytest.mark.timeout(120)

THREADS = 16
CALLS_PER_THREAD = 200
GIDS_PER_THREAD = 10
POOL_MAXSIZE = 32  # the Configuration default


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana() as running:
        yield running


def run_threads(api: WebhooksApi, owned: list[list[tuple[str, str]]]) -> tuple[list[str], float]:
    """Each thread asks for its own gids in turn; returns the problems seen and the time."""
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        mine = owned[index]
        start.wait(10)
        try:
            for call in range(CALLS_PER_THREAD):
                gid, target = mine[call % len(mine)]
                webhook = api.get_webhook(gid).data
                if webhook is None or webhook.gid != gid or webhook.target != target:
                    got = None if webhook is None else (webhook.gid, webhook.target)
                    with lock:
                        problems.append(f"thread {index} call {call}: asked {gid}, got {got}")
                    return
        except Exception as exc:
            with lock:
                problems.append(f"thread {index}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(100)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    return problems, elapsed


@pytest.mark.parametrize(
    "kind",
    [RequestsTransport, Urllib3Transport, HTTPClientTransport],
    ids=["requests", "urllib3", "http.client"],
)
def test_sixteen_threads_share_one_client_without_cross_talk(
    fake: FakeAsana, kind: type[Transport], caplog: pytest.LogCaptureFixture
) -> None:
    owned = [
        [
            (
                fake.add_webhook(f"12090000000{t:02d}{g:03d}", f"http://127.0.0.1:9/t{t}/g{g}")[
                    "gid"
                ],
                f"http://127.0.0.1:9/t{t}/g{g}",
            )
            for g in range(GIDS_PER_THREAD)
        ]
        for t in range(THREADS)
    ]
    transport = kind(pool_maxsize=POOL_MAXSIZE)  # type: ignore[call-arg]
    config = Configuration(
        host=fake.url,
        access_token=fake.access_token,
        timeout=Timeout(connect=5.0, read=10.0),
        retry=RetryPolicy(sleep=lambda seconds: None),
        pool_maxsize=POOL_MAXSIZE,
    )
    fake.clear_requests()
    with caplog.at_level(logging.WARNING), ApiClient(config, transport=transport) as client:
        problems, elapsed = run_threads(WebhooksApi(client), owned)
    transport.close()

    assert problems == [], f"{len(problems)} wrong answers, first: {problems[:3]}"
    total = THREADS * CALLS_PER_THREAD
    requests = fake.requests
    assert len(requests) == total, f"expected {total} requests, the stand-in saw {len(requests)}"
    assert all(r.status == 200 and r.fault is None for r in requests)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retries == [], f"calls needed retries: {retries[:3]}"
    pool_full = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert pool_full == [], f"urllib3 discarded connections {len(pool_full)} times"
    connections = {r.client_port for r in requests}
    assert len(connections) <= THREADS <= POOL_MAXSIZE, (
        f"{len(connections)} connections for {THREADS} threads: the pool does not reuse them"
    )
    print(
        f"\n{kind.__name__}: {total} calls from {THREADS} threads in {elapsed:.2f}s "
        f"({total / elapsed:.0f} calls/s) over {len(connections)} connections"
    )


@pytest.mark.parametrize(
    "kind",
    [RequestsTransport, Urllib3Transport, HTTPClientTransport],
    ids=["requests", "urllib3", "http.client"],
)
def test_a_pool_smaller_than_the_threads_still_answers_everyone_correctly(
    fake: FakeAsana, kind: type[Transport], caplog: pytest.LogCaptureFixture
) -> None:
    # Undersized on purpose: extra connections are opened and dropped, but no answer may
    # go to the wrong thread.
    owned = [
        [
            (
                fake.add_webhook(f"1209{t:04d}", f"http://127.0.0.1:9/s{t}")["gid"],
                f"http://127.0.0.1:9/s{t}",
            )
        ]
        for t in range(THREADS)
    ]
    transport = kind(pool_maxsize=2)  # type: ignore[call-arg]
    config = Configuration(host=fake.url, access_token=fake.access_token, retry=RetryPolicy.off())
    with caplog.at_level(logging.WARNING), ApiClient(config, transport=transport) as client:
        api = WebhooksApi(client)
        problems: list[str] = []

        def worker(index: int) -> None:
            gid, target = owned[index][0]
            for _ in range(20):
                webhook = api.get_webhook(gid).data
                if webhook is None or webhook.target != target:
                    problems.append(f"thread {index} got {webhook}")

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    transport.close()
    assert problems == []
    # The warning the main test watches for does appear here: its absence there means something.
    assert any("Connection pool is full" in r.getMessage() for r in caplog.records), (
        "an undersized pool should make urllib3 warn; the capture is not working"
    )
