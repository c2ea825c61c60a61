"""Profile one benchmark contender under cProfile, against the same canned server.

    python benchmarks/profile_call.py get_webhook "asana-webhooks, urllib3, msgspec"
    python benchmarks/profile_call.py page "asana SDK 5.4 (dicts)" --calls 300

Cases: ``get_webhook``, ``page``. Prints the top functions by own time, then by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["get_webhook", "page"])
    parser.add_argument("contender")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with run.CannedServer() as server:
        clients = run.Clients(server.base)
        try:
            make = run.get_webhook_contenders if args.case == "get_webhook" else run.page_contenders
            contenders = {c.name: c for c in make(clients)}
            if args.contender not in contenders:
                parser.error(f"contender must be one of {sorted(contenders)}")
            call = contenders[args.contender].call
            for _ in range(20):
                call()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(min(args.calls, 5000)):
                call()
            profiler.disable()
        finally:
            clients.close()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
