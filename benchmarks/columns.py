"""Structuring a list of webhooks item by item (cattrs hooks) or column by column.

    python benchmarks/columns.py            # sizes 1 to 100, full and compact webhooks
    python benchmarks/columns.py --reps 60

Only the structuring is timed (the JSON is decoded once, beforehand); ``gc`` is off while
measuring so a collection does not land on one side. In each repetition both ways run once,
in alternating order; the figures are medians of CPU time (``time.process_time``). This is
what sets ``_COLUMNS_FROM`` in ``asana_webhooks/_converter.py``: the size from which columns
are cheaper even for compact webhooks (the five fields Asana lists by default).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import webhook

from asana_webhooks import _converter, _models, make_converter

COMPACT_FIELDS = ("gid", "resource_type", "active", "resource", "target")


def compact(index: int) -> dict[str, Any]:
    full = webhook(index)
    return {key: full[key] for key in COMPACT_FIELDS}


def sample_us(fn: Callable[[], object], calls: int, samples: list[float]) -> None:
    start = time.process_time()
    for _ in range(calls):
        fn()
    samples.append((time.process_time() - start) / calls * 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=25)
    args = parser.parse_args()
    page = _models.GetWebhooks200Response
    by_item = make_converter(columns=False)
    by_column = make_converter()
    _converter._COLUMNS_FROM = 1  # columns at every size here, to see where they start to pay
    print("| webhooks | size | item by item µs | column by column µs | ratio |")
    print("|---|---|---|---|---|")
    for kind, make in (("full", webhook), ("compact", compact)):
        for size in (1, 8, 12, 16, 32, 100):
            data = {"data": [make(i) for i in range(size)], "next_page": None}
            if by_item.structure(data, page) != by_column.structure(data, page):
                raise SystemExit(f"the two ways differ on {size} {kind} webhooks")
            calls = max(5, 2000 // size)
            items: list[float] = []
            columns: list[float] = []
            gc.disable()
            try:
                for rep in range(args.reps):
                    pair = [(by_item, items), (by_column, columns)]
                    for converter, samples in pair if rep % 2 else pair[::-1]:
                        sample_us(lambda c=converter, d=data: c.structure(d, page), calls, samples)
            finally:
                gc.enable()
            a, b = statistics.median(items), statistics.median(columns)
            print(f"| {kind} | {size} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
