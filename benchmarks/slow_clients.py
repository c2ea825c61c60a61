"""How many slow clients ``asana-webhooks serve`` survives while still answering deliveries.

    python benchmarks/slow_clients.py                         # the default cap (512)
    python benchmarks/slow_clients.py --max-connections 4000 --counts 1000,2000,3900

Starts the real ``asana-webhooks serve`` (the console script of this environment) on
127.0.0.1, then for each count N holds N connections that have sent the start of a request
and nothing more (a slow-loris client; each would be cut off at the request deadline, 10 s,
which is longer than a round here), and meanwhile sends signed deliveries one after another.
A round "survives" when every delivery is answered 200 within 1 s. Prints one line per N:
the statuses and the p50 and slowest times.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asana_webhooks import SQLiteSecretStore, sign_body

SECRET = "s" * 32
BODY = b'{"events": []}'


def delivery(port: int) -> tuple[int, float]:
    request = (
        f"POST /hooks/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(BODY)}\r\n"
        f"X-Hook-Signature: {sign_body(BODY, SECRET)}\r\n\r\n"
    ).encode() + BODY
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = int(answer.split()[1])
    except (OSError, IndexError, ValueError):
        status = 0
    return status, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--counts", default="0,100,250,500,511,512,1000")
    parser.add_argument("--deliveries", type=int, default=20)
    args = parser.parse_args()
    counts = [int(text) for text in args.counts.split(",")]

    script = Path(sys.executable).with_name("asana-webhooks")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "asana_webhooks"]
    folder = tempfile.mkdtemp()
    secrets = os.path.join(folder, "secrets.sqlite3")
    SQLiteSecretStore(secrets).set("/hooks/1", SECRET)
    extra = ["--max-connections", str(args.max_connections)] if args.max_connections else []
    serve = subprocess.Popen(
        [*command, "serve", "--port", "0", "--secrets", secrets, *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stderr is not None
        port = 0
        for line in serve.stderr:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        print(f"serve on port {port}; cap {args.max_connections or 'default (512)'}")
        for count in counts:
            slow = []
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /hooks/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
                slow.append(sock)
            time.sleep(0.5)
            results = [delivery(port) for _ in range(args.deliveries)]
            for sock in slow:
                sock.close()
            statuses = sorted({status for status, _ in results})
            times = [elapsed for _, elapsed in results]
            survived = all(status == 200 for status, _ in results) and max(times) < 1.0
            print(
                f"N={count:5d}  statuses {statuses}  p50 {statistics.median(times) * 1000:6.1f} ms"
                f"  slowest {max(times) * 1000:6.1f} ms  {'survives' if survived else 'REFUSED'}"
            )
            time.sleep(1.5)  # the closed ones leave the server
    finally:
        serve.terminate()
        serve.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
