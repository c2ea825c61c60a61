"""Decoding a page of 100 webhooks, with and without keys the models do not declare.

    python benchmarks/unknown_keys.py            # medians of 9 samples
    python benchmarks/unknown_keys.py --reps 21

Only the decode is timed (``_converter.decode`` on bytes already in memory), on the msgspec
fast path and on cattrs' (the column path), for a page as ``_server.py`` serves it and the
same page with ``is_workspace_webhook`` on every webhook. The msgspec path reads the body's
keys in a second pass to keep them (``additional_properties``); this shows what that costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from _server import page  # noqa: E402

from asana_webhooks import _converter, _models  # noqa: E402


def median_us(fn: Callable[[], object], calls: int, reps: int) -> float:
    samples = []
    for _ in range(reps):
        start = time.process_time()
        for _ in range(calls):
            fn()
        samples.append((time.process_time() - start) / calls * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    listing = page(100000, 100, 0)
    plain = json.dumps(listing, separators=(",", ":")).encode()
    unknown = json.dumps(
        {**listing, "data": [{**w, "is_workspace_webhook": False} for w in listing["data"]]},
        separators=(",", ":"),
    ).encode()
    cls = _models.GetWebhooks200Response
    print("| body | msgspec path µs | cattrs path µs |")
    print("|---|---|---|")
    for name, body in (("100 webhooks", plain), ("same, one unknown key each", unknown)):
        fast = median_us(lambda body=body: _converter.decode(body, cls, fast=True), 100, args.reps)
        slow = median_us(lambda body=body: _converter.decode(body, cls, fast=False), 30, args.reps)
        print(f"| {name} | {fast:.0f} | {slow:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
