"""A failed call shows the user's line and ours, not a wall of retry machinery.

A real server on 127.0.0.1 answers 503 every time, a real transport carries the calls, and
the traceback is formatted as Python prints it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from asana_webhooks import (
    ApiClient,
    ApiConnectionError,
    Configuration,
    HTTPClientTransport,
    RequestsTransport,
    RetryPolicy,
    ServerError,
    Timeout,
    Transport,
    Urllib3Transport,
    WebhooksApi,
)

MACHINERY = ("/tenacity/", "/concurrent/futures/", "\\tenacity\\", "\\concurrent\\futures\\")


class Unavailable(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"errors": [{"message": "Server Error", "phrase": "6 sad squid snuggle softly"}]}'
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def unavailable() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/1.0"
    server.shutdown()
    server.server_close()


def frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def users_call(api: WebhooksApi) -> None:
    api.get_webhook("12345")  # the user's line


@pytest.mark.parametrize("kind", [RequestsTransport, Urllib3Transport, HTTPClientTransport])
def test_a_retried_failure_carries_no_tenacity_or_futures_frames(
    kind: type[Transport], unavailable: str
) -> None:
    policy = RetryPolicy(max_attempts=3, sleep=lambda seconds: None)
    configuration = Configuration(host=unavailable, access_token="t", retry=policy)
    client = ApiClient(configuration, transport=kind())  # type: ignore[call-arg]
    with client, pytest.raises(ServerError) as caught:
        users_call(WebhooksApi(client))
    error = caught.value
    printed = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    machinery = [
        line
        for line in printed.splitlines()
        if line.lstrip().startswith("File ") and any(m in line for m in MACHINERY)
    ]
    assert machinery == [], f"the traceback shows the retry machinery:\n{printed}"
    stack = frames(error)
    assert any(f.name == "users_call" for f in stack), printed
    ours = [f for f in stack if "asana_webhooks" in f.filename]
    assert len(ours) <= 4, f"{len(ours)} of our frames:\n{printed}"
    assert "3 attempts" in str(error) and str(error).count("503") >= 3, str(error)


def test_a_single_attempt_failure_is_short_too(unavailable: str) -> None:
    configuration = Configuration(host=unavailable, access_token="t", retry=RetryPolicy.off())
    client = ApiClient(configuration, transport=HTTPClientTransport())
    with client, pytest.raises(ServerError) as caught:
        users_call(WebhooksApi(client))
    stack = frames(caught.value)
    assert len([f for f in stack if "asana_webhooks" in f.filename]) <= 4
    assert caught.value.retry_history is None and "attempts" not in str(caught.value)


def test_a_connection_error_keeps_its_cause_after_retries() -> None:
    """The backend's exception stays reachable as __cause__ (what failed on the wire)."""
    configuration = Configuration(
        host="http://127.0.0.1:9/api/1.0",  # discard port: nothing listens
        access_token="t",
        timeout=Timeout(2, 2),
        retry=RetryPolicy(max_attempts=2, sleep=lambda seconds: None),
    )
    client = ApiClient(configuration, transport=HTTPClientTransport())
    with client, pytest.raises(ApiConnectionError) as caught:
        users_call(WebhooksApi(client))
    assert isinstance(caught.value.__cause__, OSError), repr(caught.value.__cause__)
    assert "2 attempts" in str(caught.value) and "not sent" in str(caught.value)


def test_a_users_script_prints_its_own_line_and_ours(unavailable: str, tmp_path: Path) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
        from asana_webhooks import ApiClient, Configuration, RetryPolicy, WebhooksApi
        policy = RetryPolicy(max_attempts=3, backoff_initial=0.01)
        configuration = Configuration(host={unavailable!r}, access_token="t", retry=policy)
        api = WebhooksApi(ApiClient(configuration))
        api.get_webhook("12345")  # THE USER'S LINE
        """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    printed = done.stderr
    assert "THE USER'S LINE" in printed, printed
    assert not any(m in printed for m in MACHINERY), printed
    assert "user_script.py" in printed
    assert printed.count('File "') <= 5, printed
    assert printed.strip().splitlines()[-1].startswith("asana_webhooks._errors.ServerError: 503")
