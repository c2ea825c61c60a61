"""A ``redis-server`` of the test's own, on a free port, that the test can stop and restart.

For tests of what happens when Redis goes away: the shared server on 6379 is never touched.
``persist=False`` keeps nothing (a restart comes back empty, as a broker that loses its
queue); ``persist=True`` writes every command to an append-only file and stops gracefully,
so a restart comes back with what it had.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port``, its files in ``directory``."""

    def __init__(self, directory: Path, *, persist: bool = False) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            message = "redis-server is not installed (apt-get install redis-server)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.executable = executable
        self.directory = directory
        self.persist = persist
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        durability = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *(durability if self.persist else ["--appendonly", "no"]),
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"redis-server did not start on port {self.port} within 30 s")

    def stop(self) -> None:
        """Persisting: a graceful stop (after waking it, if frozen). Else SIGKILL: all lost."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if self.persist:
            process.send_signal(signal.SIGCONT)
            process.terminate()
        else:
            process.kill()
        process.wait(30)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
