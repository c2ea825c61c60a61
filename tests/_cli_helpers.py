"""Running the real ``asana-webhooks`` command in a subprocess, and reading what it says."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Optional

#: The installed console script when there is one (what users run), else ``python -m``.
_SCRIPT = Path(sys.executable).with_name("asana-webhooks")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "asana_webhooks"]


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err

    def __repr__(self) -> str:
        return f"<exit {self.status}\nstdout:\n{self.out}\nstderr:\n{self.err}>"


def run_process(
    args: Sequence[str],
    env: dict[str, str],
    timeout: float = 60,
    cwd: Optional[Path] = None,
) -> Result:
    done = subprocess.run(
        [*COMMAND, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def assert_one_clean_line(result: Result) -> None:
    assert "Traceback" not in result.err, f"a traceback leaked: {result!r}"
    assert result.err.count("\n") == 1, f"expected exactly one line on stderr: {result!r}"
    assert result.err.startswith("asana-webhooks: error: "), result


class Process:
    """A long-running ``asana-webhooks`` subprocess whose output lines are read in threads."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str], cwd: Optional[Path] = None
    ) -> None:
        self.popen = subprocess.Popen(
            [*COMMAND, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_seen: list[str] = []
        assert self.popen.stdout is not None and self.popen.stderr is not None
        for stream, lines in ((self.popen.stdout, self.out), (self.popen.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    def line(self, which: str = "out", timeout: float = 15.0) -> str:
        lines = self.out if which == "out" else self.err
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no {which} line within {timeout}s; stderr so far: {self.err_seen}"
            ) from None
        if which == "err":
            self.err_seen.append(line)
        return line

    def wait_for(self, pattern: str, which: str = "err", timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(which, max(0.1, deadline - time.monotonic()))
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
