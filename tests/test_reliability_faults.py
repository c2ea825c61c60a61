"""Faults met over real sockets, on both transports: what the caller gets, how many attempts
reached the stand-in, how long was waited, and that no webhook was created twice.

Waits are recorded instead of slept (``RetryPolicy(sleep=...)``) except in the one test where
real timing is the point; every real wait stays near a second.
"""

from __future__ import annotations

import email.utils
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    BadRequestError,
    Configuration,
    CreateWebhookRequest,
    HTTPClientTransport,
    InvalidResponseError,
    PaginationError,
    RateLimitError,
    RequestsTransport,
    RetryPolicy,
    ServerError,
    Timeout,
    Transport,
    Urllib3Transport,
    WebhookRequest,
    WebhooksApi,
)
from asana_webhooks.testing import FakeAsana, RecordingTarget

pytestmark = pytest.mark.timeout(60)

RESOURCE = "1209000000000001"
PROXY_PAGE = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
MAX_ATTEMPTS = 5


class Harness:
    """The stand-in, a target for handshakes, and a client whose waits are recorded."""

    def __init__(self, fake: FakeAsana, target: RecordingTarget, kind: type[Transport]) -> None:
        self.fake = fake
        self.target = target
        self.sleeps: list[float] = []
        self.transport = kind()
        self.config = Configuration(
            host=fake.url,
            access_token=fake.access_token,
            timeout=Timeout(connect=2.0, read=5.0),
            retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, sleep=self.sleeps.append),
        )
        self.api = WebhooksApi(ApiClient(self.config, transport=self.transport))
        self.webhook = fake.add_webhook(RESOURCE, target.url + "/seeded")

    def attempts(self, method: str, path: str) -> int:
        return sum(1 for r in self.fake.requests if r.method == method and r.path == path)

    def wait_for_attempts(self, method: str, path: str, count: int) -> int:
        # A request held by delay_next is recorded only when the stand-in gets to it.
        deadline = time.monotonic() + 3.0
        while self.attempts(method, path) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.attempts(method, path)

    def create(self, path: str = "/new") -> Any:
        return self.api.create_webhook(
            CreateWebhookRequest(
                data=WebhookRequest(resource=RESOURCE, target=self.target.url + path)
            )
        )

    def webhooks_to(self, path: str) -> list[dict[str, Any]]:
        return [w for w in self.fake.webhooks if w["target"] == self.target.url + path]


@pytest.fixture(
    params=[RequestsTransport, Urllib3Transport, HTTPClientTransport],
    ids=["requests", "urllib3", "http.client"],
)
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with FakeAsana() as fake, RecordingTarget() as target:
        harness = Harness(fake, target, request.param)
        yield harness
        harness.transport.close()


def get_path(h: Harness) -> str:
    return f"/webhooks/{h.webhook['gid']}"


def get(h: Harness) -> Any:
    return h.api.get_webhook(h.webhook["gid"])


# --- a connection reset, and a response cut mid-way ---------------------------------------


def test_a_reset_once_is_retried_for_a_read(h: Harness) -> None:
    h.fake.drop_next(reset=True, method="GET")
    assert get(h).data.gid == h.webhook["gid"]
    assert h.attempts("GET", get_path(h)) == 2
    assert len(h.sleeps) == 1 and 0.25 <= h.sleeps[0] <= 0.5, h.sleeps


def test_resets_that_persist_surface_after_max_attempts(h: Harness) -> None:
    h.fake.drop_next(20, reset=True, method="GET")
    with pytest.raises(ApiConnectionError) as caught:
        get(h)
    assert caught.value.request_sent is True
    assert h.attempts("GET", get_path(h)) == MAX_ATTEMPTS
    assert len(h.sleeps) == MAX_ATTEMPTS - 1
    for attempt, slept in enumerate(h.sleeps, start=1):
        ceiling = min(16.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= slept <= ceiling, f"backoff {attempt} out of range: {h.sleeps}"


def test_a_reset_create_is_not_retried_and_creates_once(h: Harness) -> None:
    h.fake.drop_next(reset=True, method="POST", after_handling=True)
    with pytest.raises(ApiConnectionError) as caught:
        h.create()
    assert caught.value.request_sent is True, "the request was sent: a retry could duplicate"
    assert h.attempts("POST", "/webhooks") == 1
    assert len(h.webhooks_to("/new")) == 1, "Asana created it once; nobody created it again"
    assert h.sleeps == []


def test_a_body_cut_mid_way_is_retried_for_a_read(h: Harness) -> None:
    h.fake.truncate_next(method="GET", keep_bytes=30)
    assert get(h).data.gid == h.webhook["gid"]
    assert h.attempts("GET", get_path(h)) == 2


def test_a_truncated_create_answer_is_a_connection_error_and_creates_once(h: Harness) -> None:
    h.fake.truncate_next(method="POST", keep_bytes=30)
    with pytest.raises(ApiConnectionError) as caught:
        h.create()
    assert caught.value.request_sent is True
    assert h.attempts("POST", "/webhooks") == 1
    assert len(h.webhooks_to("/new")) == 1


# --- a read timeout ------------------------------------------------------------------------


def test_a_read_timeout_is_retried_for_a_read(h: Harness) -> None:
    h.config.timeout = Timeout(connect=2.0, read=0.25)
    h.fake.delay_next(0.8, method="GET")
    started = time.monotonic()
    assert get(h).data.gid == h.webhook["gid"]
    elapsed = time.monotonic() - started
    assert elapsed < 0.75, f"the read timeout was not applied ({elapsed:.2f}s)"
    assert h.wait_for_attempts("GET", get_path(h), 2) == 2


def test_a_read_timeout_on_create_is_not_retried_and_creates_once(h: Harness) -> None:
    h.config.timeout = Timeout(connect=2.0, read=0.25)
    h.fake.delay_next(0.6, method="POST")
    with pytest.raises(ApiTimeoutError) as caught:
        h.create()
    assert caught.value.request_sent is True
    assert h.sleeps == []
    # The held create goes through later (a bare create has no announcement to miss).
    assert h.wait_for_attempts("POST", "/webhooks", 1) == 1
    deadline = time.monotonic() + 3.0
    while not h.webhooks_to("/new") and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    assert len(h.webhooks_to("/new")) == 1
    assert h.attempts("POST", "/webhooks") == 1, "the client must not have sent it again"


# --- a proxy's 502 HTML page ------------------------------------------------------------------


def test_a_proxy_502_page_once_is_retried(h: Harness) -> None:
    h.fake.fail_next(502, body=PROXY_PAGE, method="GET")
    assert get(h).data.gid == h.webhook["gid"]
    assert h.attempts("GET", get_path(h)) == 2


def test_proxy_502_pages_that_persist_are_a_server_error_that_says_html(h: Harness) -> None:
    h.fake.fail_next(502, count=20, body=PROXY_PAGE, method="GET")
    with pytest.raises(ServerError) as caught:
        get(h)
    error = caught.value
    assert error.status == 502 and error.errors == []
    assert "HTML page" in str(error), f"the message should say a proxy answered: {error}"
    assert error.body is not None and b"nginx" in error.body
    assert h.attempts("GET", get_path(h)) == MAX_ATTEMPTS
    assert len(h.sleeps) == MAX_ATTEMPTS - 1


def test_a_proxy_502_on_create_is_not_retried(h: Harness) -> None:
    h.fake.fail_next(502, body=PROXY_PAGE, method="POST")
    with pytest.raises(ServerError):
        h.create()
    assert h.attempts("POST", "/webhooks") == 1
    assert h.webhooks_to("/new") == []


# --- JSON without data --------------------------------------------------------------------------


def test_a_listing_without_data_is_an_invalid_response_not_an_empty_list(h: Harness) -> None:
    h.fake.fail_next(200, body='{"unexpected": 1}', content_type="application/json", method="GET")
    with pytest.raises(InvalidResponseError) as caught:
        list(h.api.iter_webhooks(h.fake.workspace_gid))
    assert caught.value.status == 200 and caught.value.path == "/webhooks"
    assert h.attempts("GET", "/webhooks") == 1, "a malformed 200 is not retried"


def test_a_single_webhook_without_data_is_none_as_its_type_says(h: Harness) -> None:
    # get_webhook's data is Optional: the caller sees None rather than an error.
    h.fake.fail_next(200, body='{"unexpected": 1}', content_type="application/json", method="GET")
    assert get(h).data is None
    assert h.attempts("GET", get_path(h)) == 1


def test_a_create_answer_without_data_creates_once(h: Harness) -> None:
    h.fake.fail_next(
        201, body="{}", content_type="application/json", method="POST", after_handling=True
    )
    created = h.create()
    assert created.data is None
    assert h.attempts("POST", "/webhooks") == 1 and len(h.webhooks_to("/new")) == 1


# --- 429 storms ---------------------------------------------------------------------------------


def test_a_429_storm_without_retry_after_backs_off_exponentially(h: Harness) -> None:
    h.fake.fail_next(429, count=3, method="GET")
    assert get(h).data is not None
    assert h.attempts("GET", get_path(h)) == 4
    assert len(h.sleeps) == 3
    for index, (low, high) in enumerate([(0.25, 0.5), (0.5, 1.0), (1.0, 2.0)]):
        assert low <= h.sleeps[index] <= high, f"backoff {index} out of range: {h.sleeps}"


def test_a_429_storm_with_retry_after_seconds_waits_exactly_that(h: Harness) -> None:
    h.fake.fail_next(429, count=3, retry_after=7, method="GET")
    assert get(h).data is not None
    assert h.attempts("GET", get_path(h)) == 4
    assert h.sleeps == [7.0, 7.0, 7.0]


def test_a_429_storm_with_retry_after_as_http_date(h: Harness) -> None:
    when = email.utils.formatdate(time.time() + 12, usegmt=True)
    h.fake.fail_next(429, count=2, retry_after=when, method="GET")
    assert get(h).data is not None
    assert h.attempts("GET", get_path(h)) == 3
    assert len(h.sleeps) == 2 and all(9.0 <= s <= 12.5 for s in h.sleeps), h.sleeps


def test_a_429_storm_that_never_ends_surfaces_a_rate_limit_error(h: Harness) -> None:
    h.fake.rate_limit(2, retry_after=3)
    get(h)
    get(h)
    with pytest.raises(RateLimitError) as caught:
        get(h)
    assert caught.value.retry_after == 3.0
    assert h.attempts("GET", get_path(h)) == 2 + MAX_ATTEMPTS
    assert h.sleeps == [3.0] * (MAX_ATTEMPTS - 1)


def test_a_429_storm_on_create_creates_once(h: Harness) -> None:
    h.fake.fail_next(429, count=2, retry_after=1, method="POST")
    created = h.create()
    assert created.data is not None
    assert h.attempts("POST", "/webhooks") == 3, "a 429 is safe to retry: Asana did nothing"
    assert len(h.webhooks_to("/new")) == 1


@pytest.mark.parametrize("retry_after", ["3600", "http-date"])
def test_a_retry_after_beyond_the_cap_surfaces_at_once(h: Harness, retry_after: str) -> None:
    value = (
        email.utils.formatdate(time.time() + 3600, usegmt=True)
        if retry_after == "http-date"
        else retry_after
    )
    h.fake.fail_next(429, retry_after=value, method="GET")
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        get(h)
    assert caught.value.retry_after is not None and caught.value.retry_after > 3500
    assert h.sleeps == [], "must not wait for an hour"
    assert h.attempts("GET", get_path(h)) == 1
    assert time.monotonic() - started < 1.0


def test_a_real_rate_limit_is_waited_out_in_real_time(h: Harness) -> None:
    # The one test that really sleeps: the stand-in allows 3 requests a second and says
    # Retry-After: 1; the fourth call waits about a second, then succeeds.
    sleeps: list[float] = []

    def really_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    h.config.retry = RetryPolicy(max_attempts=MAX_ATTEMPTS, sleep=really_sleep)
    h.fake.rate_limit(3, window=1.0)
    started = time.monotonic()
    for _ in range(4):
        assert get(h).data is not None
    elapsed = time.monotonic() - started
    assert sleeps == [1.0], f"expected one Retry-After wait of 1 s, got {sleeps}"
    assert 0.9 <= elapsed < 2.5, f"4 calls took {elapsed:.2f}s"
    assert h.attempts("GET", get_path(h)) == 5


# --- an offset that expires in the middle of iter_webhooks ---------------------------------


def seed(h: Harness, count: int) -> list[str]:
    return [h.webhook["gid"]] + [
        h.fake.add_webhook(RESOURCE, f"{h.target.url}/w{i}")["gid"] for i in range(count - 1)
    ]


def test_an_offset_that_expires_mid_listing_says_where_it_stopped(h: Harness) -> None:
    gids = seed(h, 7)
    listing = h.api.iter_webhooks(h.fake.workspace_gid, page_size=3)
    seen = [next(listing).gid for _ in range(3)]
    h.fake.expire_offsets()
    with pytest.raises(PaginationError) as caught:
        next(listing)
    error = caught.value
    assert isinstance(error, BadRequestError)
    assert error.items_seen == 3 and seen == gids[:3]
    assert error.offset, "the refused offset must be reported"
    assert "stopped after 3 webhooks" in str(error) and "expire" in str(error)
    assert h.attempts("GET", "/webhooks") == 2, "a refused offset is not retried"


def test_a_listing_resumes_from_an_offset(h: Harness) -> None:
    gids = seed(h, 7)
    first = h.api.get_webhooks(h.fake.workspace_gid, limit=3)
    assert first.next_page is not None and first.next_page.offset
    rest = [
        w.gid
        for w in h.api.iter_webhooks(
            h.fake.workspace_gid, page_size=3, offset=first.next_page.offset
        )
    ]
    assert [w.gid for w in first.data] + rest == gids, "resuming must neither skip nor repeat"


def test_an_expired_offset_to_resume_from_is_a_pagination_error(h: Harness) -> None:
    seed(h, 5)
    first = h.api.get_webhooks(h.fake.workspace_gid, limit=2)
    assert first.next_page is not None
    h.fake.expire_offsets()
    with pytest.raises(PaginationError) as caught:
        list(h.api.iter_webhooks(h.fake.workspace_gid, page_size=2, offset=first.next_page.offset))
    assert caught.value.items_seen == 0 and caught.value.offset == first.next_page.offset


# --- a reset in the middle of the body ----------------------------------------------------------


class ResetMidBody:
    """A raw server: answers every request with headers and part of a body, then a TCP reset.

    FakeAsana cuts bodies with a clean close (``truncate_next``); this is the rude version.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # closing a socket does not wake accept(): poll
        self.stopping = threading.Event()
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/1.0"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                self.requests.append(request.split(b"\r\n", 1)[0])
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 200\r\n\r\n{"data": {"gid": "1", "tar'
                )
                time.sleep(0.02)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize(
    "kind",
    [RequestsTransport, Urllib3Transport, HTTPClientTransport],
    ids=["requests", "urllib3", "http.client"],
)
def test_a_reset_mid_body_is_a_connection_error_retried_only_for_reads(
    kind: type[Transport],
) -> None:
    server = ResetMidBody()
    sleeps: list[float] = []
    transport = kind()
    config = Configuration(
        host=server.url,
        access_token="t",
        timeout=Timeout(connect=2.0, read=2.0),
        retry=RetryPolicy(max_attempts=3, sleep=sleeps.append),
    )
    api = WebhooksApi(ApiClient(config, transport=transport))
    try:
        with pytest.raises(ApiConnectionError) as caught:
            api.get_webhook("1")
        assert caught.value.request_sent is True
        assert len(server.requests) == 3 and len(sleeps) == 2, (server.requests, sleeps)
        server.requests.clear()
        with pytest.raises(ApiConnectionError):
            api.create_webhook(
                CreateWebhookRequest(data=WebhookRequest(resource=RESOURCE, target="http://x/y"))
            )
        assert len(server.requests) == 1, "a create cut mid-answer must not be sent again"
    finally:
        transport.close()
        server.close()
