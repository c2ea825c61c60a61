"""Create without duplicates: when ``POST /webhooks`` ends ambiguously, nothing is guessed.

Everything runs over real sockets: FakeAsana on 127.0.0.1, a ``WebhookReceiver`` served by
``ReceiverServer`` as the target, and the library's client on each transport. Each test says
what the caller gets, how many creates reached the stand-in, and that at most one webhook
exists afterwards - and that its deliveries verify, i.e. the stored secret is Asana's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import pytest

from asana_webhooks import (
    AmbiguousCreateError,
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    BadRequestError,
    Configuration,
    Event,
    ForbiddenError,
    HTTPClientTransport,
    InvalidResponseError,
    MemorySecretStore,
    RateLimitError,
    RequestsTransport,
    RetryPolicy,
    ServerError,
    Timeout,
    Transport,
    Urllib3Transport,
    WebhookReceiver,
    WebhooksApi,
    establish_webhook,
)
from asana_webhooks._wsgi import ReceiverServer
from asana_webhooks.testing import FakeAsana, make_event

pytestmark = pytest.mark.timeout(60)

RESOURCE = "1209000000000001"


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, events: Sequence[Event], target: str) -> None:
        self.events.extend(events)


class Site:
    """A receiver on a real socket, its store, and a client for the fake."""

    def __init__(self, fake: FakeAsana, api: WebhooksApi) -> None:
        self.fake = fake
        self.api = api
        self.store = MemorySecretStore()
        self.on_events = Recorder()
        self.receiver = WebhookReceiver(self.store, self.on_events)
        self.server = ReceiverServer.for_receiver(self.receiver)

    @property
    def target(self) -> str:
        return f"{self.server.url}/asana/hooks/1?team=a"

    def creates(self) -> int:
        return sum(1 for r in self.fake.requests if r.method == "POST" and r.path == "/webhooks")

    def count(self, method: str) -> int:
        return sum(1 for r in self.fake.requests if r.method == method)

    def webhooks_for_target(self) -> list[dict[str, Any]]:
        return [w for w in self.fake.webhooks if w["target"] == self.target]

    def assert_one_webhook_that_delivers(self, gid: str) -> None:
        found = self.webhooks_for_target()
        assert [w["gid"] for w in found] == [gid], (
            f"expected exactly webhook {gid} for the target, the stand-in has {found}"
        )
        before = len(self.on_events.events)
        status = self.fake.deliver(gid, [make_event()])
        assert status == 200, (
            f"a delivery signed with Asana's secret got {status}: the stored secret is wrong"
        )
        assert len(self.on_events.events) == before + 1


@pytest.fixture(
    params=[RequestsTransport, Urllib3Transport, HTTPClientTransport],
    ids=["requests", "urllib3", "http.client"],
)
def transport_kind(request: pytest.FixtureRequest) -> type[Transport]:
    kind: type[Transport] = request.param
    return kind


@pytest.fixture
def site(transport_kind: Callable[[], Transport]) -> Iterator[Site]:
    with FakeAsana() as fake:
        config = Configuration(
            host=fake.url,
            access_token=fake.access_token,
            timeout=Timeout(connect=2.0, read=5.0),
            retry=RetryPolicy(sleep=lambda seconds: None),
        )
        transport = transport_kind()
        site = Site(fake, WebhooksApi(ApiClient(config, transport=transport)))
        with site.server:
            yield site
        transport.close()


def establish(site: Site, *, workspace: bool) -> Any:
    return establish_webhook(
        site.api,
        site.receiver,
        RESOURCE,
        site.target,
        workspace=site.fake.workspace_gid if workspace else None,
    )


# --- the plain path still works -------------------------------------------------------------


def test_a_clean_create_sends_one_post_and_verifies(site: Site) -> None:
    webhook = establish(site, workspace=True)
    assert site.creates() == 1
    assert site.count("GET") == 0, "a clean create must not list anything"
    site.assert_one_webhook_that_delivers(webhook.gid)


# --- a 5xx after Asana created the webhook -------------------------------------------------


def test_a_5xx_after_creating_without_workspace_raises_and_says_how_to_check(site: Site) -> None:
    site.fake.fail_next(500, method="POST", path="/webhooks", after_handling=True)
    with pytest.raises(AmbiguousCreateError) as caught:
        establish(site, workspace=False)
    error = caught.value
    assert error.resource == RESOURCE and error.target == site.target
    assert isinstance(error.__cause__, ServerError), "the 500 must be chained as the cause"
    text = str(error)
    assert "may exist" in text
    assert f"asana-webhooks list --workspace W --resource {RESOURCE}" in text
    assert "iter_webhooks" in text
    assert site.creates() == 1, "an ambiguous create must not be retried blindly"
    assert len(site.webhooks_for_target()) == 1, "Asana did create it"
    # The handshake happened: its secret is kept, so the webhook can still be verified.
    assert site.store.get(site.target) == site.fake.secret_for(site.webhooks_for_target()[0]["gid"])


def test_a_5xx_after_creating_with_workspace_finds_the_webhook(site: Site) -> None:
    site.fake.fail_next(500, method="POST", path="/webhooks", after_handling=True)
    webhook = establish(site, workspace=True)
    assert site.creates() == 1, "found by the lookup: no second create"
    listings = [r for r in site.fake.requests if r.method == "GET"]
    assert listings and listings[0].query.get("resource") == RESOURCE
    assert listings[0].query.get("workspace") == site.fake.workspace_gid
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_5xx_before_creating_with_workspace_creates_once_more(site: Site) -> None:
    site.fake.fail_next(503, method="POST", path="/webhooks")
    webhook = establish(site, workspace=True)
    assert site.creates() == 2, "not found by the lookup: exactly one more create"
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_proxy_502_page_after_creating_is_ambiguous_too(site: Site) -> None:
    site.fake.fail_next(
        502,
        body="<html><body><h1>502 Bad Gateway</h1></body></html>",
        method="POST",
        path="/webhooks",
        after_handling=True,
    )
    with pytest.raises(AmbiguousCreateError) as caught:
        establish(site, workspace=False)
    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.__cause__.status == 502
    webhook = establish(site, workspace=True)  # now a 403 duplicate, then the lookup
    assert site.creates() == 2
    site.assert_one_webhook_that_delivers(webhook.gid)


# --- the connection lost after the request was sent -----------------------------------------


def test_a_dropped_connection_after_creating_finds_the_webhook(site: Site) -> None:
    site.fake.drop_next(method="POST", path="/webhooks", after_handling=True)
    webhook = establish(site, workspace=True)
    assert site.creates() == 1
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_reset_connection_without_workspace_raises(site: Site) -> None:
    site.fake.drop_next(method="POST", path="/webhooks", after_handling=True, reset=True)
    with pytest.raises(AmbiguousCreateError) as caught:
        establish(site, workspace=False)
    cause = caught.value.__cause__
    assert isinstance(cause, ApiConnectionError) and cause.request_sent
    assert site.creates() == 1 and len(site.webhooks_for_target()) == 1


def test_a_truncated_201_finds_the_webhook(site: Site) -> None:
    site.fake.truncate_next(method="POST", path="/webhooks", keep_bytes=20)
    webhook = establish(site, workspace=True)
    assert site.creates() == 1
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_an_unreadable_2xx_finds_the_webhook(site: Site) -> None:
    site.fake.fail_next(
        201,
        body='{"unexpected": true}',
        content_type="application/json",
        method="POST",
        path="/webhooks",
        after_handling=True,
    )
    with pytest.raises(AmbiguousCreateError) as caught:
        establish(site, workspace=False)
    assert isinstance(caught.value.__cause__, InvalidResponseError)
    webhook = establish(site, workspace=True)
    assert site.creates() == 2
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_read_timeout_lets_no_late_handshake_in_and_creates_once_more(
    site: Site,
) -> None:
    # The create is held past the client's read timeout; when the stand-in gets to it, the
    # announcement is over, so its handshake is refused and it creates nothing.
    site.api.api_client.configuration.timeout = Timeout(connect=2.0, read=0.3)
    site.fake.delay_next(1.0, method="POST", path="/webhooks")
    started = time.monotonic()
    with pytest.raises(AmbiguousCreateError) as caught:
        establish(site, workspace=False)
    assert isinstance(caught.value.__cause__, ApiTimeoutError)
    assert time.monotonic() - started < 0.9, "the read timeout was not applied"
    deadline = time.monotonic() + 3.0
    while site.creates() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the held create is recorded once the stand-in answers it
    assert site.creates() == 1
    assert site.webhooks_for_target() == [], "a handshake after the timeout must be refused"
    assert site.store.get(site.target) is None, "no secret may be planted by a late handshake"
    site.api.api_client.configuration.timeout = Timeout(connect=2.0, read=5.0)
    webhook = establish(site, workspace=True)
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_read_timeout_with_workspace_looks_then_creates(site: Site) -> None:
    site.api.api_client.configuration.timeout = Timeout(connect=2.0, read=0.3)
    site.fake.delay_next(1.0, method="POST", path="/webhooks")
    webhook = establish(site, workspace=True)
    assert site.count("GET") >= 1, "the lookup must run before creating again"
    deadline = time.monotonic() + 3.0
    while site.creates() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The held create reached the stand-in after ours: it is refused as a duplicate.
    assert site.creates() == 2
    site.assert_one_webhook_that_delivers(webhook.gid)


# --- 403 "Duplicated webhook" ---------------------------------------------------------------


def test_establishing_twice_with_workspace_returns_the_same_webhook(site: Site) -> None:
    first = establish(site, workspace=True)
    second = establish(site, workspace=True)
    assert second.gid == first.gid
    assert site.creates() == 2, "the second create got Asana's 403 and no third followed"
    site.assert_one_webhook_that_delivers(first.gid)


def test_a_duplicate_without_workspace_is_ambiguous(site: Site) -> None:
    establish(site, workspace=True)
    with pytest.raises(AmbiguousCreateError, match="duplicate") as caught:
        establish(site, workspace=False)
    cause = caught.value.__cause__
    assert isinstance(cause, ForbiddenError) and cause.is_duplicate_webhook


def test_a_webhook_whose_secret_is_unknown_is_replaced(site: Site) -> None:
    # Someone created it elsewhere (or the store was lost): deliveries could never verify.
    stale = site.fake.add_webhook(RESOURCE, site.target)
    webhook = establish(site, workspace=True)
    assert webhook.gid != stale["gid"]
    assert site.fake.get_webhook(stale["gid"]) is None, "the unverifiable webhook is deleted"
    assert site.count("DELETE") == 1
    assert site.creates() == 2
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_lookup_that_fails_too_is_ambiguous_and_says_so(site: Site) -> None:
    site.fake.fail_next(500, method="POST", path="/webhooks", after_handling=True)
    site.fake.fail_next(500, count=50, method="GET", path="/webhooks")
    with pytest.raises(AmbiguousCreateError, match="listing webhooks to check failed") as caught:
        establish(site, workspace=True)
    assert caught.value.workspace == site.fake.workspace_gid
    assert isinstance(caught.value.__cause__, ServerError)
    assert site.creates() == 1 and len(site.webhooks_for_target()) == 1


def test_twice_unsettled_gives_up_after_two_creates(site: Site) -> None:
    site.fake.fail_next(500, count=5, method="POST", path="/webhooks")
    with pytest.raises(AmbiguousCreateError, match="after 2 creates"):
        establish(site, workspace=True)
    assert site.creates() == 2, "establish_webhook must bound its creates"
    assert site.webhooks_for_target() == []


# --- failures that are not ambiguous propagate unchanged ----------------------------------


def test_a_refused_create_is_not_looked_up(site: Site) -> None:
    site.fake.fail_next(400, message="resource: Not a recognized ID", method="POST")
    with pytest.raises(BadRequestError):
        establish(site, workspace=True)
    assert site.creates() == 1 and site.count("GET") == 0


def test_a_rate_limited_create_is_retried_by_the_client_not_duplicated(site: Site) -> None:
    site.fake.fail_next(429, retry_after=1, method="POST", path="/webhooks")
    webhook = establish(site, workspace=False)
    assert site.creates() == 2, "429 means Asana did nothing: the client retries it"
    site.assert_one_webhook_that_delivers(webhook.gid)


def test_a_rate_limit_beyond_the_cap_surfaces_without_lookup(site: Site) -> None:
    site.fake.fail_next(429, retry_after=3600, method="POST", path="/webhooks")
    with pytest.raises(RateLimitError) as caught:
        establish(site, workspace=True)
    assert caught.value.retry_after == 3600.0
    assert site.creates() == 1 and site.count("GET") == 0


def test_a_stranger_who_wins_the_handshake_race_plants_nothing(site: Site) -> None:
    # A stranger's handshake takes the announcement; Asana's own is then refused, so Asana
    # refuses the create. The stranger's secret must not stay to verify forged deliveries.
    original = site.receiver.handle

    def stranger_first(target: str, headers: Any, body: bytes) -> Any:
        if "X-Hook-Secret" in headers:
            original(target, {"X-Hook-Secret": "planted-by-a-stranger"}, b"")
        return original(target, headers, body)

    site.receiver.handle = stranger_first  # type: ignore[method-assign]
    with pytest.raises(BadRequestError, match="handshake"):
        establish(site, workspace=True)
    assert site.webhooks_for_target() == []
    assert site.store.get(site.target) is None, "the stranger's secret was kept"
    assert site.count("GET") == 0, "a refused create is not ambiguous: no lookup"
