"""HTTPClientTransport over real sockets on 127.0.0.1: keep-alive pooling, stale connections,
TLS verification, proxies, and what each failure is mapped to.

Round trip, refused, read timeout, truncated body and hang-up are also run for every
transport in ``test_transports.py``; 16 threads through ``ApiClient`` in
``test_concurrency.py``; faults and ambiguous creates in ``test_reliability_*.py``.
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
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import pytest

from asana_webhooks import (
    ApiConnectionError,
    HTTPClientTransport,
    InsecureTransportWarning,
    InvalidRequestError,
    Request,
    Timeout,
    Transport,
    Urllib3Transport,
    _transport,
)

pytestmark = pytest.mark.timeout(60)

QUICK = Timeout(connect=2.0, read=2.0)
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


class Seen:
    """One request as the server saw it."""

    def __init__(self, port: int, method: str, path: str, headers: dict[str, str]) -> None:
        self.port, self.method, self.path, self.headers = port, method, path, headers


class Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]
    finished: list[int]  # client ports whose connection the server saw end


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.finished.append(self.client_address[1])

    def _record(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.seen.append(Seen(self.client_address[1], self.command, self.path, headers))

    def do_GET(self) -> None:
        self._record()
        if self.path.endswith("/hangup"):
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Asana-Change", "name=a;info=one")
        self.send_header("asana-change", "name=b;info=two")
        self.send_header("X-Note", "café")  # sent as ISO-8859-1, as HTTP allows
        self.send_header("Content-Length", str(len(body)))
        if self.path.endswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self._record()
        # Read the request, then hang up without a byte of answer.
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


class IdleClosingHandler(Handler):
    timeout = 0.2  # the server closes a keep-alive connection idle for this long


@contextlib.contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler] = Handler,
    wrap: Optional[Callable[[socket.socket], socket.socket]] = None,
) -> Iterator[Server]:
    server = Server(("127.0.0.1", 0), handler)
    server.seen, server.finished = [], []
    if wrap is not None:
        server.socket = wrap(server.socket)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def base(server: Server, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


def get(transport: Transport, url: str, **headers: str) -> Any:
    return transport.handle_request(Request("GET", url, headers, timeout=QUICK))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


# --- keep-alive, headers ------------------------------------------------------------------


def test_keep_alive_reuses_one_connection_and_headers_read_like_urllib3s() -> None:
    with serving() as server, HTTPClientTransport() as transport:
        first = get(transport, f"{base(server)}/api/1.0/webhooks/1")
        second = get(transport, f"{base(server)}/api/1.0/webhooks/2")
        assert (first.status, first.body) == (200, b"/api/1.0/webhooks/1")
        assert second.body == b"/api/1.0/webhooks/2"
        assert first.headers["ASANA-CHANGE"] == "name=a;info=one, name=b;info=two", (
            "repeated headers are joined with ', ' and looked up case-insensitively"
        )
        assert first.headers["content-type"] == "application/json"
        assert first.headers["x-note"] == "café", "a Latin-1 header reads as getheaders() would"
        ports = [seen.port for seen in server.seen]
        assert ports[0] == ports[1], f"keep-alive not reused: connections {ports}"


def test_responses_are_never_compressed_whatever_the_caller_asks() -> None:
    with serving() as server, HTTPClientTransport() as transport:
        get(transport, f"{base(server)}/x", **{"Accept-Encoding": "gzip, deflate"})
        assert server.seen[0].headers["accept-encoding"] == "identity", (
            "http.client does not decompress: the server must be told to send plain bytes"
        )


def test_a_connection_close_answer_is_not_pooled() -> None:
    with serving() as server, HTTPClientTransport() as transport:
        for _ in range(3):
            assert get(transport, f"{base(server)}/close").status == 200
        ports = [seen.port for seen in server.seen]
        assert len(set(ports)) == 3, f"a 'Connection: close' socket was reused: {ports}"


def test_a_pooled_connection_the_server_closed_while_idle_is_replaced_transparently() -> None:
    with serving(IdleClosingHandler) as server, HTTPClientTransport() as transport:
        assert get(transport, f"{base(server)}/first").status == 200
        first_port = server.seen[0].port
        assert wait_until(lambda: first_port in server.finished), "the server kept it open"
        # No retry policy here: only the check before reuse can make this succeed.
        assert get(transport, f"{base(server)}/second").body == b"/second"
        ports = [seen.port for seen in server.seen]
        assert len(ports) == 2 and ports[0] != ports[1], ports


def test_a_reused_connection_hung_up_before_any_answer_may_have_been_received() -> None:
    with serving() as server, HTTPClientTransport() as transport:
        get(transport, f"{base(server)}/warm")
        with pytest.raises(ApiConnectionError) as caught:
            transport.handle_request(
                Request("POST", f"{base(server)}/webhooks", {}, b"{}", timeout=QUICK)
            )
        assert [seen.method for seen in server.seen] == ["GET", "POST"]
        assert server.seen[0].port == server.seen[1].port, "the POST was not on the reused one"
        assert caught.value.request_sent is True, (
            "the server read the POST before hanging up: a retry could create twice"
        )
        # The broken connection was closed, not pooled: the next call gets a fresh one.
        assert get(transport, f"{base(server)}/after").status == 200
        assert server.seen[-1].port != server.seen[0].port


def test_errors_name_method_and_path_never_headers() -> None:
    token = "Bearer 0/sekrit-token-value"
    with serving() as server, HTTPClientTransport() as transport:
        for url in (f"{base(server)}/hangup", f"http://127.0.0.1:{closed_port()}/webhooks"):
            with pytest.raises(ApiConnectionError) as caught:
                get(transport, url, Authorization=token)
            text = f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
            assert "sekrit" not in text, text
            assert "GET /" in str(caught.value), str(caught.value)


def test_close_closes_pooled_connections_and_the_transport_still_works_after() -> None:
    with serving() as server:
        transport = HTTPClientTransport()
        get(transport, f"{base(server)}/a")
        port = server.seen[0].port
        transport.close()
        assert wait_until(lambda: port in server.finished), "close() left the socket open"
        assert get(transport, f"{base(server)}/b").status == 200
        transport.close()


def test_constructing_opens_nothing_and_starts_no_thread() -> None:
    threads = threading.active_count()
    transport = HTTPClientTransport(verify="/nonexistent/bundle.pem")  # read only when needed
    assert threading.active_count() == threads
    assert transport._routes == {} and transport._context is None
    transport.close()


def test_sixteen_threads_share_one_transport_with_a_small_pool() -> None:
    problems: list[str] = []
    with serving() as server, HTTPClientTransport(pool_maxsize=4) as transport:
        barrier = threading.Barrier(16)

        def worker(index: int) -> None:
            barrier.wait(10)
            for call in range(50):
                path = f"/echo/{index}/{call}"
                try:
                    answer = get(transport, base(server) + path)
                except Exception as exc:
                    problems.append(f"thread {index}: {exc!r}")
                    return
                if answer.body != path.encode():
                    problems.append(f"thread {index} asked {path}, got {answer.body!r}")

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads), "a worker hung"
        assert problems == [], problems[:3]
        assert len(server.seen) == 16 * 50
        idle = [len(route.idle._idle) for route in transport._routes.values()]
        assert idle and all(count <= 4 for count in idle), f"pool beyond pool_maxsize: {idle}"


# --- proxies ----------------------------------------------------------------------------------


def test_plain_http_through_a_proxy_sends_the_absolute_url_and_credentials() -> None:
    with serving() as proxy:
        port = proxy.server_address[1]
        proxies = {"http": f"http://ada:p%40ss@127.0.0.1:{port}"}
        with HTTPClientTransport(proxies=proxies) as transport:
            answer = get(transport, "http://asana.invalid/api/1.0/webhooks?limit=1")
    assert answer.status == 200
    seen = proxy.seen[0]
    assert seen.path == "http://asana.invalid/api/1.0/webhooks?limit=1", seen.path
    assert seen.headers["host"] == "asana.invalid"
    expected = "Basic " + base64.b64encode(b"ada:p@ss").decode()
    assert seen.headers["proxy-authorization"] == expected


def test_proxies_from_the_environment_are_read_once_per_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    original = urllib.request.getproxies_environment

    def counting() -> dict[str, str]:
        calls.append(1)
        return original()

    with serving() as proxy:
        monkeypatch.setenv("HTTP_PROXY", base(proxy))
        monkeypatch.setattr(urllib.request, "getproxies_environment", counting)
        with HTTPClientTransport() as transport:
            get(transport, "http://asana.invalid/one")
            after_first = len(calls)
            for n in range(4):
                get(transport, f"http://asana.invalid/again/{n}")
            assert after_first >= 1 and len(calls) == after_first, (
                f"environment read {len(calls) - after_first} more times for the same origin"
            )
            get(transport, "http://other.invalid/x")
            assert len(calls) > after_first, "a new origin must resolve its own proxy"
    assert proxy.seen[0].path == "http://asana.invalid/one", proxy.seen[0].path


@pytest.mark.parametrize("kind", [HTTPClientTransport, Urllib3Transport])
def test_no_proxy_bypasses_the_environment_proxy(
    monkeypatch: pytest.MonkeyPatch, kind: type[Any]
) -> None:
    # Both transports resolve proxies through one helper; the proxy here refuses connections.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with serving() as server, kind() as transport:
        assert get(transport, f"{base(server)}/direct").body == b"/direct"


def test_trust_env_false_ignores_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    with serving() as server, HTTPClientTransport(trust_env=False) as transport:
        assert get(transport, f"{base(server)}/direct").body == b"/direct"


def test_a_proxy_it_cannot_speak_is_refused_before_sending() -> None:
    transport = HTTPClientTransport(proxies={"https": "socks5://127.0.0.1:1"})
    with pytest.raises(InvalidRequestError, match="socks5"):
        get(transport, "https://app.asana.com/api/1.0/users/me")


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (no CA signed it): (cert path, key path).

    ``cryptography`` is not in the test environment, so ``openssl req`` makes it.
    """
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither cryptography nor openssl is available to make a certificate")
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"openssl could not make a certificate: {exc}")
    return str(cert), str(key)


@pytest.fixture
def tls_server(certificate: tuple[str, str]) -> Iterator[Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with serving(wrap=lambda sock: context.wrap_socket(sock, server_side=True)) as server:
        yield server


def test_tls_is_verified_by_default_and_an_unknown_certificate_sends_nothing(
    tls_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    with HTTPClientTransport() as transport, pytest.raises(ApiConnectionError) as caught:
        get(transport, f"{base(tls_server, 'https')}/x", Authorization="Bearer sekrit")
    assert caught.value.request_sent is False, "a refused certificate means nothing was sent"
    assert isinstance(caught.value.__cause__, ssl.SSLError), repr(caught.value.__cause__)
    assert tls_server.seen == [], "the request reached a server whose certificate was refused"


def test_tls_with_the_servers_certificate_as_bundle_succeeds_and_pools(
    tls_server: Server, certificate: tuple[str, str]
) -> None:
    with HTTPClientTransport(verify=certificate[0]) as transport:
        for n in range(3):
            assert get(transport, f"{base(tls_server, 'https')}/t/{n}").body == f"/t/{n}".encode()
    assert len({seen.port for seen in tls_server.seen}) == 1, "TLS connection not kept alive"


def test_tls_bundle_from_the_environment_when_trust_env(
    tls_server: Server, certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    with HTTPClientTransport() as transport:
        assert get(transport, f"{base(tls_server, 'https')}/env").status == 200
    with HTTPClientTransport(trust_env=False) as transport, pytest.raises(ApiConnectionError):
        get(transport, f"{base(tls_server, 'https')}/certifi")


def test_verify_false_turns_checking_off(tls_server: Server) -> None:
    with pytest.warns(InsecureTransportWarning):
        transport = HTTPClientTransport(verify=False)
    with transport:
        assert get(transport, f"{base(tls_server, 'https')}/insecure").status == 200


def test_default_context_uses_certifi_and_checks_hostnames() -> None:
    context = _transport._tls_context(True, None, trust_env=False)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 10, "certifi's bundle was not loaded"


class ConnectProxy:
    """A CONNECT-only proxy on 127.0.0.1 that pipes bytes both ways; records request lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            self.lines.append(line)
            host, port = line.split()[1].rsplit(":", 1)
            if host != "127.0.0.1":
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection((host, int(port)), timeout=5) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=self._pipe, args=(upstream, client), daemon=True)
                pump.start()
                self._pipe(client, upstream)
                pump.join(5)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


def test_https_through_an_http_proxy_is_tunnelled_and_still_verified(
    tls_server: Server, certificate: tuple[str, str]
) -> None:
    proxy = ConnectProxy()
    proxies = {"https": f"http://127.0.0.1:{proxy.port}"}
    try:
        with HTTPClientTransport(verify=certificate[0], proxies=proxies) as transport:
            assert get(transport, f"{base(tls_server, 'https')}/tunnelled").status == 200
            assert get(transport, f"{base(tls_server, 'https')}/again").status == 200
        target = f"127.0.0.1:{tls_server.server_address[1]}"
        assert [line.rsplit(" ", 1)[0] for line in proxy.lines] == [f"CONNECT {target}"], (
            f"one tunnel for both requests expected, the proxy saw {proxy.lines}"
        )
        assert [seen.path for seen in tls_server.seen] == ["/tunnelled", "/again"]
        untrusted = HTTPClientTransport(proxies=proxies)  # certifi's bundle: not trusted
        with pytest.raises(ApiConnectionError) as caught:
            get(untrusted, f"{base(tls_server, 'https')}/untrusted")
        untrusted.close()
        assert caught.value.request_sent is False
    finally:
        proxy.close()


def test_a_proxy_refusing_the_connect_means_nothing_was_sent() -> None:
    proxy = ConnectProxy()
    try:
        transport = HTTPClientTransport(proxies={"https": f"http://127.0.0.1:{proxy.port}"})
        with pytest.raises(ApiConnectionError) as caught:
            get(transport, "https://asana.invalid/api/1.0/webhooks")
        transport.close()
        assert caught.value.request_sent is False, "a refused CONNECT carried no request"
        assert [line.rsplit(" ", 1)[0] for line in proxy.lines] == ["CONNECT asana.invalid:443"]
    finally:
        proxy.close()
