"""A canned Asana webhooks API on 127.0.0.1, for the benchmarks: stdlib only, HTTP/1.1 keep-alive.

Run as a separate process by ``run.py``; prints ``PORT <n>`` on its first line of stdout and
serves until its stdin closes (the parent exited, however it exited) or ``--max-seconds`` pass.

Routes, all under ``/api/1.0``:

- ``GET /webhooks/<gid>``: one webhook with every field set.
- ``GET /webhooks?workspace=<N>&limit=<L>[&offset=<token>]``: workspace ``N`` holds ``N``
  webhooks (every field set), served ``L`` at a time with Asana's ``next_page`` object.

Bodies are built once per distinct URL and cached, so the server's own CPU stays small and
steady; it never counts in the client's process time anyway.
"""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import sys
import threading
import urllib.parse
from typing import Any

BASE = "/api/1.0"
_FIRST_GID = 1_204_000_000_000_000


def webhook(index: int) -> dict[str, Any]:
    """A full webhook record as Asana returns it, varied a little by ``index``."""
    gid = str(_FIRST_GID + index)
    minute = index % 60
    return {
        "gid": gid,
        "resource_type": "webhook",
        "active": index % 7 != 0,
        "resource": {
            "gid": str(1_203_000_000_000_000 + index),
            "resource_type": "project",
            "name": f"Launch plan Q{index % 4 + 1} — équipe {index}",
        },
        "target": f"https://hooks.example.com/asana/receive/{gid}?team=core",
        "created_at": f"2024-03-{index % 28 + 1:02d}T09:{minute:02d}:58.147Z",
        "last_failure_at": f"2024-05-02T11:{minute:02d}:00.512Z",
        "last_failure_content": "500 Internal Server Error\n\nThe receiver timed out",
        "last_success_at": f"2024-05-03T12:{minute:02d}:31.009Z",
        "delivery_retry_count": index % 3,
        "next_attempt_after": f"2024-05-03T12:{minute:02d}:41.000Z",
        "failure_deletion_timestamp": f"2024-05-04T12:{minute:02d}:31.000Z",
        "filters": [
            {
                "resource_type": "task",
                "resource_subtype": "milestone",
                "action": "changed",
                "fields": ["due_at", "due_on", "dependencies"],
            },
            {"resource_type": "story", "resource_subtype": None, "action": "added", "fields": None},
        ],
    }


def page(total: int, limit: int, start: int) -> dict[str, Any]:
    """One page of a listing of ``total`` webhooks, from ``start``, with ``next_page``."""
    end = min(total, start + limit)
    next_page = None
    if end < total:
        token = f"eyJvZmZzZXQiOj{end:08d}"
        next_page = {
            "offset": token,
            "path": f"/webhooks?limit={limit}&offset={token}",
            "uri": f"https://app.asana.com/api/1.0/webhooks?limit={limit}&offset={token}",
        }
    return {"data": [webhook(i) for i in range(start, end)], "next_page": next_page}


def _offset_start(token: str) -> int:
    return int(token[-8:])


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "canned-asana/1"
    cache: dict[str, bytes] = {}
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: logging every request would cost the server more than answering it."""

    def do_GET(self) -> None:
        raw = self.cache.get(self.path)
        if raw is None:
            raw = self._build(self.path)
            with self.lock:
                self.cache[self.path] = raw
        # One write: status, headers and body together (no Nagle/delayed-ACK stalls).
        self.wfile.write(raw)

    def _build(self, target: str) -> bytes:
        parts = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(parts.query))
        status, payload = 404, {"errors": [{"message": "Not Found"}]}
        path = parts.path
        if path.startswith(BASE + "/webhooks/"):
            index = int(path.rsplit("/", 1)[1]) % 1000
            status, payload = 200, {"data": webhook(index)}
        elif path == BASE + "/webhooks" and "workspace" in query:
            total = int(query["workspace"])
            limit = int(query.get("limit", "100"))
            start = _offset_start(query["offset"]) if "offset" in query else 0
            status, payload = 200, page(total, limit, start)
        body = json.dumps(payload, separators=(",", ":")).encode()
        reason = "OK" if status == 200 else "Not Found"
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "X-Asana-Request-Id: 0f8c2a5e-1b7d-4c1e-9a55-3c0d7b1e2f44\r\n"
            "X-Robots-Tag: none\r\n"
            "Server: canned-asana/1\r\n"
            "\r\n"
        )
        return head.encode("ascii") + body


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    server = _Server(("127.0.0.1", args.port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    # Stop when the parent goes away (stdin reaches EOF) or after the time limit.
    stopper = threading.Thread(target=sys.stdin.read, daemon=True)
    stopper.start()
    stopper.join(args.max_seconds)
    server.shutdown()


if __name__ == "__main__":
    main()
