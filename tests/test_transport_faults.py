"""Every transport against real misbehaving servers on 127.0.0.1.

- A TLS server that completes the handshake, reads the whole request, then answers with a
  corrupted TLS record: the request was sent, so a create must not be sent again.
- A server that drips its answer one byte at a time, never letting a read time out: the
  call must still end within its total timeout, and within the retry budget.
- A proxy that records the headers it is sent: credentials in the proxy URL must arrive as
  ``Proxy-Authorization``.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

import pytest

from asana_webhooks import (
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    Configuration,
    CreateWebhookRequest,
    HTTPClientTransport,
    InvalidRequestError,
    Request,
    RequestsTransport,
    RetryPolicy,
    Timeout,
    Transport,
    Urllib3Transport,
    WebhookRequest,
    WebhooksApi,
)

TRANSPORTS = [RequestsTransport, Urllib3Transport, HTTPClientTransport]
CREATED = b'{"data": {"gid": "1", "resource_type": "webhook"}, "X-Hook-Secret": "s"}'


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "")


def read_request(recv: Callable[[], bytes]) -> bytes:
    """One whole HTTP request (head and Content-Length body) from ``recv``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = recv()
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = recv()
        if not chunk:
            break
        body += chunk
    return data


class TCPServer:
    """Accepts connections on 127.0.0.1 and hands each to ``serve`` in a thread of its own."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError, EOFError, ssl.SSLError):
            client.settimeout(10)
            self.serve(client)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@contextlib.contextmanager
def running(serve: Callable[[socket.socket], None]) -> Iterator[TCPServer]:
    server = TCPServer(serve)
    try:
        yield server
    finally:
        server.close()


def client_for(
    transport: Transport, host: str, *, timeout: Timeout, retry: Optional[RetryPolicy] = None
) -> WebhooksApi:
    configuration = Configuration(
        host=host,
        access_token="0/faults-token",
        timeout=timeout,
        retry=retry or RetryPolicy(sleep=lambda seconds: None),
    )
    return WebhooksApi(ApiClient(configuration, transport=transport))


def new_webhook() -> CreateWebhookRequest:
    return CreateWebhookRequest(
        data=WebhookRequest(resource="8675309", target="https://example.com/hook")
    )


# --- TLS: a corrupted record after the request was read ---------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    folder: Path = tmp_path_factory.mktemp("tls-faults")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip(
            "the openssl command is needed to make a test certificate (apt install openssl)"
        )
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


class CorruptingTLS:
    """Completes the TLS handshake and reads one whole request, then sends a valid-looking
    answer whose last TLS record has one ciphertext byte flipped."""

    def __init__(self, certificate: tuple[str, str]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*certificate)
        self.requests: list[bytes] = []
        self.handshakes = 0

    def __call__(self, conn: socket.socket) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)

        def flush() -> None:
            data = outgoing.read()
            if data:
                conn.sendall(data)

        def feed() -> None:
            flush()
            data = conn.recv(65536)
            if not data:
                raise EOFError
            incoming.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                feed()
        self.handshakes += 1
        flush()

        def recv() -> bytes:
            while True:
                try:
                    return tls.read(65536)
                except ssl.SSLWantReadError:
                    feed()

        self.requests.append(read_request(recv))
        tls.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(CREATED)}\r\n\r\n".encode()
            + CREATED
        )
        records = bytearray(outgoing.read())
        records[-5] ^= 0xFF  # inside the last record's ciphertext: its MAC no longer checks
        conn.sendall(bytes(records))
        time.sleep(0.5)  # let the client read it before the connection closes


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_tls_record_corrupted_after_the_request_was_read_is_ambiguous_and_no_create_is_resent(
    kind: type[Transport], certificate: tuple[str, str]
) -> None:
    server = CorruptingTLS(certificate)
    with running(server) as tcp, kind(verify=certificate[0]) as transport:  # type: ignore[call-arg]
        api = client_for(transport, f"https://127.0.0.1:{tcp.port}/api/1.0", timeout=Timeout(5, 5))
        with pytest.raises(ApiConnectionError) as caught:
            api.create_webhook(new_webhook())
    posts = [r for r in server.requests if r.startswith(b"POST /api/1.0/webhooks")]
    assert len(posts) == 1, (
        f"{kind.__name__} sent POST /webhooks {len(posts)} times after a TLS error in the "
        "answer: the create reached the server, so retrying it may make a second webhook"
    )
    assert caught.value.request_sent is True, (
        f"{kind.__name__} called a TLS error while reading the answer 'never sent': {caught.value}"
    )


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_tls_record_corrupted_in_the_answer_to_a_get_is_retried(
    kind: type[Transport], certificate: tuple[str, str]
) -> None:
    """The other side of the same rule: a GET may be repeated after an ambiguous failure."""
    server = CorruptingTLS(certificate)
    with running(server) as tcp, kind(verify=certificate[0]) as transport:  # type: ignore[call-arg]
        api = client_for(
            transport,
            f"https://127.0.0.1:{tcp.port}/api/1.0",
            timeout=Timeout(5, 5),
            retry=RetryPolicy(max_attempts=3, sleep=lambda seconds: None),
        )
        with pytest.raises(ApiConnectionError):
            api.get_webhook("1")
    assert len(server.requests) == 3, f"{kind.__name__}: {len(server.requests)} GETs, wanted 3"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_refused_certificate_still_means_never_sent(
    kind: type[Transport], certificate: tuple[str, str]
) -> None:
    """A TLS failure during the handshake proves nothing left, so a create may be retried."""
    server = CorruptingTLS(certificate)
    with running(server) as tcp, kind() as transport:  # type: ignore[call-arg]
        api = client_for(
            transport,
            f"https://127.0.0.1:{tcp.port}/api/1.0",
            timeout=Timeout(5, 5),
            retry=RetryPolicy(max_attempts=2, sleep=lambda seconds: None),
        )
        with pytest.raises(ApiConnectionError) as caught:
            api.create_webhook(new_webhook())
    assert caught.value.request_sent is False, str(caught.value)
    assert server.requests == [], "a request reached a server whose certificate was refused"


# --- a server that drips its answer -------------------------------------------------------


def dripping(
    phase: str, interval: float = 0.1, limit: float = 20.0
) -> Callable[[socket.socket], None]:
    """Reads the request, then sends the answer one byte per ``interval`` (for at most
    ``limit`` seconds): in the head (``"head"``) or after a complete head (``"body"``)."""

    def serve(conn: socket.socket) -> None:
        read_request(lambda: conn.recv(65536))
        if phase == "body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        stop = time.monotonic() + limit
        while time.monotonic() < stop:
            conn.sendall(b"a")
            time.sleep(interval)

    return serve


@pytest.mark.parametrize("phase", ["head", "body"])
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_dripping_server_cannot_hold_an_attempt_past_its_total_timeout(
    kind: type[Transport], phase: str
) -> None:
    with running(dripping(phase)) as tcp, kind() as transport:  # type: ignore[call-arg]
        api = client_for(
            transport,
            f"http://127.0.0.1:{tcp.port}/api/1.0",
            timeout=Timeout(connect=2.0, read=1.0, total=1.5),
            retry=RetryPolicy.off(),
        )
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as caught:
            api.get_webhook("1")
        took = time.monotonic() - started
    assert took < 1.5 + 1.5, (
        f"{kind.__name__}: a server dripping its {phase} held a call with total=1.5s for "
        f"{took:.1f}s"
    )
    assert caught.value.request_sent is True
    assert "total" in str(caught.value), str(caught.value)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_the_retry_budget_bounds_the_whole_call_including_the_last_attempt(
    kind: type[Transport],
) -> None:
    """Timeout(read=1) and max_time=2.5: no attempt's own limit (11 s) may outlast the budget."""
    with running(dripping("head")) as tcp, kind() as transport:  # type: ignore[call-arg]
        api = client_for(
            transport,
            f"http://127.0.0.1:{tcp.port}/api/1.0",
            timeout=Timeout(connect=10.0, read=1.0),
            retry=RetryPolicy(max_time=2.5),
        )
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError):
            api.get_webhook("1")
        took = time.monotonic() - started
    assert took < 2.5 + 1.5, f"{kind.__name__}: RetryPolicy(max_time=2.5) held the call {took:.1f}s"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_an_honest_slow_answer_within_the_total_still_succeeds(kind: type[Transport]) -> None:
    """The deadline must not cut answers that arrive in time, nor break keep-alive."""

    def serve(conn: socket.socket) -> None:
        for _ in range(2):
            read_request(lambda: conn.recv(65536))
            body = b'{"data": {"gid": "1"}}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            for byte in body:
                conn.sendall(bytes([byte]))
                time.sleep(0.01)

    with running(serve) as tcp, kind() as transport:  # type: ignore[call-arg]
        api = client_for(
            transport, f"http://127.0.0.1:{tcp.port}/api/1.0", timeout=Timeout(2, 2, total=5)
        )
        assert api.get_webhook("1").data.gid == "1"
        assert api.get_webhook("1").data.gid == "1"


def test_a_spent_budget_sends_nothing() -> None:
    seen: list[bytes] = []
    with running(lambda conn: seen.append(conn.recv(100))) as tcp:
        request = Request("GET", f"http://127.0.0.1:{tcp.port}/x", deadline=time.monotonic() - 1)
        for kind in TRANSPORTS:
            with kind() as transport, pytest.raises(ApiTimeoutError) as caught:  # type: ignore[call-arg]
                transport.handle_request(request)
            assert caught.value.request_sent is False
    assert seen == []


# --- proxy credentials ------------------------------------------------------------------------


class RecordingProxy:
    """Answers every request itself (a proxy that never forwards); records request heads."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []

    def __call__(self, conn: socket.socket) -> None:
        head = read_request(lambda: conn.recv(65536))
        self.heads.append(head)
        if head.startswith(b"CONNECT "):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        body = b'{"data": {"gid": "1"}}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    def authorization(self) -> list[Optional[str]]:
        found: list[Optional[str]] = []
        for head in self.heads:
            value = None
            for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
                name, _, raw = line.partition(b":")
                if name.strip().lower() == b"proxy-authorization":
                    value = raw.strip().decode()
            found.append(value)
        return found


EXPECTED = "Basic " + base64.b64encode(b"proxy user:p@ss:word").decode()


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_proxy_credentials_in_the_url_are_sent_for_plain_http(kind: type[Transport]) -> None:
    proxy = RecordingProxy()
    with running(proxy) as tcp:
        url = f"http://proxy%20user:p%40ss%3Aword@127.0.0.1:{tcp.port}"
        with kind(proxies={"http": url}) as transport:  # type: ignore[call-arg]
            answer = transport.handle_request(Request("GET", "http://127.0.0.1:9/api/1.0/x"))
    assert answer.status == 200
    assert proxy.heads and proxy.heads[0].startswith(b"GET http://127.0.0.1:9/api/1.0/x ")
    assert proxy.authorization() == [EXPECTED], f"{kind.__name__}: {proxy.authorization()}"


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_proxy_credentials_in_the_url_are_sent_with_the_connect(kind: type[Transport]) -> None:
    proxy = RecordingProxy()
    with running(proxy) as tcp:
        url = f"http://proxy%20user:p%40ss%3Aword@127.0.0.1:{tcp.port}"
        transport = kind(proxies={"https": url})  # type: ignore[call-arg]
        with transport, pytest.raises(ApiConnectionError) as caught:
            transport.handle_request(Request("GET", "https://127.0.0.1:9/api/1.0/x"))
    assert proxy.heads and proxy.heads[0].startswith(b"CONNECT 127.0.0.1:9 ")
    assert proxy.authorization() == [EXPECTED], f"{kind.__name__}: {proxy.authorization()}"
    assert caught.value.request_sent is False, "a refused CONNECT means nothing was sent"


# --- what a transport cannot send is refused, not leaked as a backend exception ---------------


@pytest.mark.parametrize("kind", [RequestsTransport, Urllib3Transport])
def test_an_unusable_proxy_is_an_invalid_request_that_names_no_password(
    kind: type[Transport],
) -> None:
    proxy = "socks5://user:hunter2@127.0.0.1:9"
    transport = kind(proxies={"http": proxy})  # type: ignore[call-arg]
    with transport, pytest.raises(InvalidRequestError) as caught:
        transport.handle_request(Request("GET", "http://127.0.0.1:9/api/1.0/x"))
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_scheme_other_than_http_is_an_invalid_request(kind: type[Transport]) -> None:
    with kind() as transport, pytest.raises(InvalidRequestError):  # type: ignore[call-arg]
        transport.handle_request(Request("GET", "ftp://127.0.0.1:9/x"))
