"""Benchmark asana_webhooks against Asana's official SDK, raw requests and raw urllib3.

    python benchmarks/run.py            # the full run, about two minutes
    python benchmarks/run.py --quick    # a smoke run, a few seconds
    python benchmarks/run.py --output docs/results.md   # also write the tables as Markdown

A canned-response server (``benchmarks/_server.py``) runs in a separate process on 127.0.0.1;
this process measures its own CPU time (``time.process_time``) and wall time per call. Every
figure is the median over repetitions, and the contenders take turns within each repetition
(round-robin, starting one further along each time), so noise from other processes on the
machine falls on all of them alike. Ratios compare medians from the same run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import attrs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

import asana  # noqa: E402 - the official SDK (the `bench` extra pins it)
import requests  # noqa: E402
import urllib3  # noqa: E402

import asana_webhooks as aw  # noqa: E402
from asana_webhooks import _converter  # noqa: E402

TOKEN = "0/benchmark-token"
WEBHOOK_GID = "1204000000000042"
PAGE_WORKSPACE = "100000"  # the server's workspace N holds N webhooks
RAW_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}


# --- the server process ---------------------------------------------------------------


class CannedServer:
    """``_server.py`` in a child process; killed on exit, even when the benchmark fails."""

    def __init__(self) -> None:
        self.process: Optional[subprocess.Popen[str]] = None
        self.base = ""

    def __enter__(self) -> CannedServer:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.__exit__()
            raise RuntimeError(f"the canned server did not start: {line!r}")
        self.base = f"http://127.0.0.1:{line[1]}/api/1.0"
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        if process.stdin is not None:
            process.stdin.close()  # the server stops when its stdin closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


# --- contenders -----------------------------------------------------------------------


@attrs.define
class Contender:
    name: str
    call: Callable[[], Any]
    peer: Optional[str] = None  # the short label when this contender is a peer to compare to


@attrs.define
class Timing:
    cpu: float  # seconds per call, median
    wall: float


def _ours(base: str, transport: str, fast: bool) -> aw.WebhooksApi:
    config = aw.Configuration(host=base, access_token=TOKEN, fast_json=fast)
    chosen: Optional[aw.Transport] = None  # the default: RequestsTransport
    if transport == "urllib3":
        chosen = aw.Urllib3Transport()
    elif transport == "http.client":
        chosen = aw.HTTPClientTransport()
    return aw.WebhooksApi(aw.ApiClient(config, transport=chosen))


def _sdk(base: str) -> Any:
    configuration = asana.Configuration()
    configuration.host = base
    configuration.access_token = TOKEN
    return asana.WebhooksApi(asana.ApiClient(configuration))


OUR_VARIANTS = [
    ("requests", True, "asana-webhooks, requests, msgspec"),
    ("requests", False, "asana-webhooks, requests, no extras"),
    ("urllib3", True, "asana-webhooks, urllib3, msgspec"),
    ("urllib3", False, "asana-webhooks, urllib3, no extras"),
    ("http.client", True, "asana-webhooks, http.client, msgspec"),
    ("http.client", False, "asana-webhooks, http.client, no extras"),
]


class Clients:
    """One long-lived client of each kind, as an application would hold them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.pool = urllib3.PoolManager()
        self.session = requests.Session()
        self.sdk = _sdk(base)
        self.ours = {(t, f): _ours(base, t, f) for t, f, _ in OUR_VARIANTS}

    def close(self) -> None:
        self.pool.clear()
        self.session.close()
        for api in self.ours.values():
            api.api_client.close()

    # the raw peers: one GET and json.loads, nothing else

    def urllib3_json(self, url: str) -> Any:
        return json.loads(self.pool.request("GET", url, headers=RAW_HEADERS).data)

    def requests_json(self, url: str) -> Any:
        return json.loads(self.session.get(url, headers=RAW_HEADERS, timeout=(10, 60)).content)


def get_webhook_contenders(c: Clients) -> list[Contender]:
    url = f"{c.base}/webhooks/{WEBHOOK_GID}"
    found = [
        Contender("urllib3 + json.loads", lambda: c.urllib3_json(url), "urllib3"),
        Contender("requests Session + json.loads", lambda: c.requests_json(url), "requests"),
        Contender("asana SDK 5.4 (dicts)", lambda: c.sdk.get_webhook(WEBHOOK_GID, {}), "SDK"),
    ]
    for transport, fast, name in OUR_VARIANTS:
        api = c.ours[transport, fast]
        found.append(Contender(name, lambda api=api: api.get_webhook(WEBHOOK_GID)))
    return found


def page_contenders(c: Clients) -> list[Contender]:
    url = f"{c.base}/webhooks?workspace={PAGE_WORKSPACE}&limit=100"
    found = [
        Contender("urllib3 + json.loads", lambda: c.urllib3_json(url), "urllib3"),
        Contender("requests Session + json.loads", lambda: c.requests_json(url), "requests"),
        Contender(
            "asana SDK 5.4 (dicts)",
            lambda: c.sdk.get_webhooks(PAGE_WORKSPACE, {"limit": 100}, full_payload=True),
            "SDK",
        ),
    ]
    for transport, fast, name in OUR_VARIANTS:
        api = c.ours[transport, fast]
        found.append(Contender(name, lambda api=api: api.get_webhooks(PAGE_WORKSPACE, limit=100)))
    return found


def _drain(items: Iterator[Any]) -> int:
    count = 0
    for _ in items:
        count += 1
    return count


def _raw_pages(c: Clients, workspace: str) -> Iterator[dict[str, Any]]:
    offset = None
    while True:
        url = f"{c.base}/webhooks?workspace={workspace}&limit=100"
        if offset:
            url += f"&offset={offset}"
        page = c.urllib3_json(url)
        yield from page["data"]
        if not page.get("next_page"):
            return
        offset = page["next_page"]["offset"]


def iter_contenders(c: Clients, total: int) -> list[Contender]:
    workspace = str(total)
    found = [
        Contender("urllib3 + json.loads", lambda: _drain(_raw_pages(c, workspace)), "urllib3"),
        Contender(
            "asana SDK 5.4 (dicts)",
            lambda: _drain(c.sdk.get_webhooks(workspace, {"limit": 100})),
            "SDK",
        ),
    ]
    for transport, fast, name in OUR_VARIANTS:
        api = c.ours[transport, fast]
        found.append(Contender(name, lambda api=api: _drain(api.iter_webhooks(workspace))))
    return found


SECRET = "8a3f0c6e1b2d4f5a6c7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"


def _raw_verify(body: bytes, signature: str) -> bool:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, signature)


def signature_contenders(size: int) -> list[Contender]:
    body = (b'{"events":[' + b" " * size)[:size]
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert _raw_verify(body, signature)
    assert aw.verify_signature(body, signature, SECRET)
    return [
        Contender("hmac + compare_digest", lambda: _raw_verify(body, signature), "hmac"),
        Contender(
            "asana_webhooks.verify_signature", lambda: aw.verify_signature(body, signature, SECRET)
        ),
    ]


def delivery_body(events: int) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "user": {"gid": "1201", "resource_type": "user", "name": "Ada"},
                    "created_at": f"2024-05-03T12:00:{i % 60:02d}.123Z",
                    "action": "changed",
                    "resource": {
                        "gid": str(1_203_000_000_000_000 + i),
                        "resource_type": "task",
                        "resource_subtype": "default_task",
                        "name": "Ship it",
                    },
                    "parent": None,
                    "change": {
                        "field": "assignee",
                        "action": "changed",
                        "new_value": {"gid": "1202", "resource_type": "user"},
                    },
                }
                for i in range(events)
            ]
        },
        separators=(",", ":"),
    ).encode()


def receiver_contenders() -> list[Contender]:
    try:
        from asana_webhooks._receiver import WebhookReceiver
        from asana_webhooks._secrets import MemorySecretStore
    except ImportError:
        return []
    target = "/asana/receive/1204000000000042?team=core"
    body = delivery_body(10)
    headers = {
        "Content-Type": "application/json",
        "X-Hook-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Length": str(len(body)),
        "User-Agent": "Asana",
    }
    store = MemorySecretStore()
    store.set(target, SECRET)
    received: list[int] = []
    receiver = WebhookReceiver(store, on_events=lambda events, key: received.append(len(events)))
    answer = receiver.handle(target, headers, body)
    assert answer.status == 200 and received == [10], (answer, received)

    def raw() -> bool:
        sig = headers["X-Hook-Signature"]
        return _raw_verify(body, sig) and bool(json.loads(body)["events"])

    return [
        Contender("hmac + json.loads (dicts)", raw, "raw"),
        Contender("WebhookReceiver.handle (typed)", lambda: receiver.handle(target, headers, body)),
    ]


# --- measuring -------------------------------------------------------------------------


def measure(contenders: list[Contender], calls: int, reps: int) -> dict[str, Timing]:
    """Median per-call CPU and wall time; contenders take turns within each repetition."""
    for contender in contenders:  # warm up: connections, caches, generated hooks
        for _ in range(min(calls, 3)):
            contender.call()
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    wall: dict[str, list[float]] = {c.name: [] for c in contenders}
    for rep in range(reps):
        shift = rep % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            call = contender.call
            gc.collect()
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(calls):
                call()
            c1, w1 = time.process_time(), time.perf_counter()
            cpu[contender.name].append((c1 - c0) / calls)
            wall[contender.name].append((w1 - w0) / calls)
    return {
        c.name: Timing(statistics.median(cpu[c.name]), statistics.median(wall[c.name]))
        for c in contenders
    }


def peak_growth(call: Callable[[], Any]) -> int:
    """Bytes allocated at the peak of ``call()`` above what was live before it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


# --- reporting -------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}" if seconds >= 1e-5 else f"{seconds * 1e6:,.2f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def table(
    title: str, contenders: list[Contender], timings: dict[str, Timing], unit: str = "µs"
) -> list[str]:
    peers = [c for c in contenders if c.peer]
    fmt = _us if unit == "µs" else _ms
    head = ["contender", f"CPU {unit}/call", f"wall {unit}/call"]
    head += [f"CPU ÷ {p.peer}" for p in peers]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in contenders:
        t = timings[c.name]
        row = [c.name if c.peer else f"**{c.name}**", fmt(t.cpu), fmt(t.wall)]
        row += [f"{t.cpu / timings[p.name].cpu:.2f}x" for p in peers]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


@attrs.define
class Check:
    target: str
    value: float
    limit: float
    above: bool = False  # True when the value must be at least the limit

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.above else self.value <= self.limit

    def line(self) -> str:
        sign = "≥" if self.above else "≤"
        verdict = "met" if self.met else "NOT met"
        return f"| {self.target} | {self.value:.2f} | {sign} {self.limit:.2f} | {verdict} |"


SDK = "asana SDK 5.4 (dicts)"
RAW_REQUESTS = "requests Session + json.loads"
(
    OURS_REQUESTS_FAST,
    OURS_REQUESTS_PLAIN,
    OURS_URLLIB3_FAST,
    OURS_URLLIB3_PLAIN,
    OURS_HTTP_CLIENT_FAST,
    OURS_HTTP_CLIENT_PLAIN,
) = (name for _, _, name in OUR_VARIANTS)
OURS_FAST = [name for _, fast, name in OUR_VARIANTS if fast]
OURS_PLAIN = [name for _, fast, name in OUR_VARIANTS if not fast]


@attrs.define
class Run:
    """What every case needs: the clients, the run's size, and where results go."""

    clients: Optional[Clients]
    quick: bool
    reps: int
    out: list[str] = attrs.field(factory=list)
    checks: list[Check] = attrs.field(factory=list)

    def show(self, lines: list[str]) -> None:
        print("\n".join(lines), flush=True)
        self.out.extend(lines)

    def check(self, target: str, value: float, limit: float, above: bool = False) -> None:
        self.checks.append(Check(target, value, limit, above))

    @property
    def api(self) -> Clients:
        assert self.clients is not None
        return self.clients


def case_get_webhook(run: Run) -> None:
    contenders = get_webhook_contenders(run.api)
    t = measure(contenders, calls=10 if run.quick else 60, reps=run.reps)
    run.show(table("get_webhook (one full webhook)", contenders, t))
    urllib3_worst = max(t[OURS_URLLIB3_FAST].cpu, t[OURS_URLLIB3_PLAIN].cpu)
    run.check("get_webhook, urllib3 transport, CPU ÷ SDK", urllib3_worst / t[SDK].cpu, 1.0)
    http_client_worst = max(t[OURS_HTTP_CLIENT_FAST].cpu, t[OURS_HTTP_CLIENT_PLAIN].cpu)
    run.check("get_webhook, http.client transport, CPU ÷ SDK", http_client_worst / t[SDK].cpu, 1.0)
    run.check(
        "get_webhook, requests transport, CPU ÷ raw requests",
        t[OURS_REQUESTS_FAST].cpu / t[RAW_REQUESTS].cpu,
        0.9,
    )


def case_page(run: Run) -> None:
    contenders = page_contenders(run.api)
    t = measure(contenders, calls=3 if run.quick else 16, reps=run.reps)
    run.show(table("get_webhooks: one page of 100 full webhooks", contenders, t))
    fastest = min(t[name].cpu for name in OURS_FAST)
    plain = min(t[name].cpu for name in OURS_PLAIN)
    run.check("100-webhook page, fastest path, CPU ÷ SDK", fastest / t[SDK].cpu, 0.75)
    run.check("100-webhook page, no extras, CPU ÷ SDK", plain / t[SDK].cpu, 1.5)


def case_iterate(run: Run) -> None:
    """Time for 1,000 and 10,000 webhooks, then peak memory growth for each."""
    per_total: dict[int, dict[str, Timing]] = {}
    for total in (1_000, 10_000):
        contenders = iter_contenders(run.api, total)
        for contender in contenders:
            assert contender.call() == total, contender.name
        reps = (2 if run.quick else 9) if total == 10_000 else run.reps
        per_total[total] = measure(contenders, calls=1, reps=reps)
        title = f"iterate over {total:,} webhooks (pages of 100)"
        run.show(table(title, contenders, per_total[total], unit="ms"))
    lines = [
        "### iterate: peak memory growth (tracemalloc) and scaling",
        "",
        "| contender | peak, 1,000 webhooks | peak, 10,000 webhooks | CPU 10,000 ÷ 1,000 |",
        "|---|---|---|---|",
    ]
    small = iter_contenders(run.api, 1_000)
    big = iter_contenders(run.api, 10_000)
    for one, other in zip(small, big):
        small_peak, big_peak = peak_growth(one.call), peak_growth(other.call)
        scale = per_total[10_000][one.name].cpu / per_total[1_000][one.name].cpu
        lines.append(
            f"| {one.name} | {small_peak / 1024:,.0f} KiB | {big_peak / 1024:,.0f} KiB "
            f"| {scale:.1f}x |"
        )
        if not one.peer:
            run.check(f"iterate, {one.name}: peak 10k ÷ 1k", big_peak / small_peak, 1.5)
            # Linear in pages: the CPU per webhook is the same for 10,000 as for 1,000.
            run.check(f"iterate, {one.name}: CPU per webhook, 10k ÷ 1k", scale / 10, 1.3)
    run.show([*lines, ""])


def case_signature(run: Run) -> None:
    for size, label in ((1024, "1 KB"), (1024 * 1024, "1 MB")):
        contenders = signature_contenders(size)
        calls = (200 if size < 4096 else 2) * (1 if run.quick else 5)
        t = measure(contenders, calls=calls, reps=run.reps)
        run.show(table(f"verify_signature, {label} body", contenders, t))
        if size > 4096:  # the target is about large bodies; on 1 KB, fixed costs show
            throughput = t[contenders[0].name].cpu / t[contenders[1].name].cpu
            run.check(f"verify_signature {label}: throughput ÷ raw hmac", throughput, 0.9, True)


def case_receiver(run: Run) -> None:
    contenders = receiver_contenders()
    if not contenders:
        run.show(["### receiver", "", "(asana_webhooks.WebhookReceiver is not available)", ""])
        return
    t = measure(contenders, calls=20 if run.quick else 100, reps=run.reps)
    run.show(table("receiver: one signed delivery of 10 events", contenders, t))


CASES: dict[str, Callable[[Run], None]] = {
    "get_webhook": case_get_webhook,
    "page": case_page,
    "iterate": case_iterate,
    "signature": case_signature,
    "receiver": case_receiver,
}
NEEDS_SERVER = {"get_webhook", "page", "iterate"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--output", type=Path, help="also write the Markdown tables here")
    parser.add_argument(
        "--only", nargs="+", choices=list(CASES), default=list(CASES), help="run only these cases"
    )
    args = parser.parse_args()
    # Only 127.0.0.1 is ever contacted; no proxy from the environment may intervene.
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

    started = time.perf_counter()
    run = Run(clients=None, quick=args.quick, reps=5 if args.quick else 31)
    run.show(
        [
            f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
            f"asana {importlib.metadata.version('asana')}, requests {requests.__version__}, "
            f"urllib3 {urllib3.__version__}, msgspec fast path "
            f"{'available' if _converter.FAST_PATH_AVAILABLE else 'missing'}; "
            f"{'quick' if args.quick else 'full'} run, medians of {run.reps} repetitions.",
            "",
        ]
    )
    with CannedServer() as server:
        run.clients = Clients(server.base)
        try:
            for name in CASES:
                if name in args.only and name in NEEDS_SERVER:
                    CASES[name](run)
        finally:
            run.clients.close()
    for name in CASES:
        if name in args.only and name not in NEEDS_SERVER:
            CASES[name](run)

    lines = ["### targets", "", "| target | ratio | limit | verdict |", "|---|---|---|---|"]
    run.show([*lines, *(c.line() for c in run.checks), ""])
    run.show([f"Total run time {time.perf_counter() - started:.0f} s."])
    if args.output:
        args.output.write_text("\n".join(run.out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
