"""OAuth end to end: the real client against FakeAsana's token endpoint and expiring tokens,
over HTTP on 127.0.0.1 (``asana_fake`` comes from the package's pytest plugin)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from asana_webhooks import (
    ApiClient,
    Configuration,
    OAuthToken,
    RetryPolicy,
    Timeout,
    TokenRefreshError,
    TokenSet,
    UnauthorizedError,
    WebhooksApi,
)
from asana_webhooks.testing import FakeAsana

TOKEN_PATH = "/-/oauth_token"
THREADS = 16


def credential_for(fake: FakeAsana, tokens: dict[str, Any], **options: Any) -> OAuthToken:
    return OAuthToken.from_dict(
        tokens,
        client_id=fake.oauth.client_id,
        client_secret=fake.oauth.client_secret,
        token_url=fake.oauth.token_url,
        timeout=Timeout(connect=2, read=5),
        **options,
    )


def client_for(fake: FakeAsana, **config: Any) -> ApiClient:
    settings: dict[str, Any] = {"host": fake.url, "timeout": Timeout(2, 5)}
    settings.update(config)
    return ApiClient(Configuration(**settings))


def token_requests(fake: FakeAsana) -> int:
    return sum(1 for request in fake.requests if request.raw_path == TOKEN_PATH)


def bearer_of(fake: FakeAsana) -> list[str]:
    """The token each API request carried, in order."""
    return [
        request.headers.get("Authorization", "").removeprefix("Bearer ")
        for request in fake.requests
        if request.raw_path != TOKEN_PATH
    ]


@pytest.fixture
def webhook_gid(asana_fake: FakeAsana) -> str:
    resource = asana_fake.add_resource(name="Bugs")
    return str(asana_fake.add_webhook(resource, "http://127.0.0.1:9/hook")["gid"])


def test_a_token_about_to_expire_is_refreshed_before_the_request(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    tokens = asana_fake.oauth.issue(expires_in=30)  # inside the 60 s refresh margin
    saved: list[TokenSet] = []
    credential = credential_for(asana_fake, tokens, on_refresh=saved.append)

    with client_for(asana_fake, token_provider=credential) as client:
        webhook = WebhooksApi(client).get_webhook(webhook_gid).data

    assert webhook is not None and webhook.gid == webhook_gid
    assert asana_fake.oauth.refreshes == 1, "one refresh before the request"
    assert len(saved) == 1 and saved[0].access_token != tokens["access_token"]
    assert saved[0].refresh_token == tokens["refresh_token"], "Asana keeps the refresh token"
    assert bearer_of(asana_fake) == [saved[0].access_token], "only the new token is sent"


def test_a_token_asana_calls_expired_is_refreshed_after_the_401_and_resent(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    tokens = asana_fake.oauth.issue()
    credential = credential_for(asana_fake, tokens)
    asana_fake.oauth.expire()  # Asana says expired; our clock does not know yet

    with client_for(asana_fake, token_provider=credential) as client:
        WebhooksApi(client).get_webhook(webhook_gid)

    statuses = [(r.raw_path.split("?")[0], r.status) for r in asana_fake.requests]
    assert statuses == [
        (f"/api/1.0/webhooks/{webhook_gid}", 401),
        (TOKEN_PATH, 200),
        (f"/api/1.0/webhooks/{webhook_gid}", 200),
    ], "401, one refresh, one resend"
    assert bearer_of(asana_fake) == [tokens["access_token"], credential.tokens.access_token]


def test_a_revoked_refresh_token_is_a_typed_error_and_is_not_retried(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    tokens = asana_fake.oauth.issue()
    asana_fake.oauth.revoke(tokens["refresh_token"])
    asana_fake.oauth.expire()
    credential = credential_for(asana_fake, tokens)

    with client_for(asana_fake, token_provider=credential) as client:
        api = WebhooksApi(client)
        with pytest.raises(TokenRefreshError, match="invalid_grant") as first:
            api.get_webhook(webhook_gid)
        with pytest.raises(TokenRefreshError, match="invalid_grant"):
            api.get_webhook(webhook_gid)

    assert first.value.permanent
    assert asana_fake.oauth.refreshes == 1, "a refused refresh token is asked for once"
    assert len(bearer_of(asana_fake)) == 2, "each call sent its request once, no loop"
    for secret in (tokens["access_token"], tokens["refresh_token"], asana_fake.oauth.client_secret):
        assert secret not in str(first.value), "the error must not show a secret"


def test_a_token_endpoint_outage_is_a_typed_error_and_is_not_retried_at_once(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    tokens = asana_fake.oauth.issue(expires_in=0)
    asana_fake.fail_next(503, count=5, path=TOKEN_PATH)
    credential = credential_for(asana_fake, tokens)

    with client_for(asana_fake, token_provider=credential) as client:
        api = WebhooksApi(client)
        for _ in range(3):
            with pytest.raises(TokenRefreshError, match="503") as info:
                api.get_webhook(webhook_gid)
            assert not info.value.permanent

    assert token_requests(asana_fake) == 1, "no second refresh within retry_after_failure"
    assert bearer_of(asana_fake) == [], "an expired token is never sent"


def test_the_api_retry_policy_does_not_repeat_a_failed_refresh(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    tokens = asana_fake.oauth.issue(expires_in=0)
    asana_fake.fail_next(500, path=TOKEN_PATH)
    credential = credential_for(asana_fake, tokens)
    retry = RetryPolicy(max_attempts=5, sleep=lambda _: None)

    client = client_for(asana_fake, token_provider=credential, retry=retry)
    with client, pytest.raises(TokenRefreshError):
        WebhooksApi(client).get_webhook(webhook_gid)

    assert token_requests(asana_fake) == 1, "a refresh failure is not an API retry"


@pytest.mark.parametrize("expired_by", ["our clock", "Asana's 401"])
def test_sixteen_threads_on_an_expired_token_cause_exactly_one_refresh(
    asana_fake: FakeAsana, webhook_gid: str, expired_by: str
) -> None:
    if expired_by == "our clock":
        tokens = asana_fake.oauth.issue(expires_in=0)
    else:
        tokens = asana_fake.oauth.issue()
        asana_fake.oauth.expire()
    asana_fake.delay_next(0.2, path=TOKEN_PATH)  # keep the refresh in flight while all arrive
    credential = credential_for(asana_fake, tokens)
    start = threading.Barrier(THREADS, timeout=10)

    with client_for(asana_fake, token_provider=credential, retry=RetryPolicy.off()) as client:
        api = WebhooksApi(client)

        def call(_: int) -> str:
            start.wait()
            webhook = api.get_webhook(webhook_gid).data
            assert webhook is not None
            return webhook.gid

        with ThreadPoolExecutor(THREADS) as pool:
            gids = list(pool.map(call, range(THREADS), timeout=30))

    assert gids == [webhook_gid] * THREADS, "every thread's call must succeed"
    assert asana_fake.oauth.refreshes == 1, (
        f"{THREADS} threads on a token expired by {expired_by} must share one refresh, "
        f"saw {asana_fake.oauth.refreshes}"
    )


def test_two_users_through_one_client_each_with_their_own_token(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    alice_tokens = asana_fake.oauth.issue()
    bob_tokens = asana_fake.oauth.issue()
    alice = credential_for(asana_fake, alice_tokens)
    bob = credential_for(asana_fake, bob_tokens)
    asana_fake.oauth.expire(alice_tokens["access_token"])  # only Alice's token expired

    with client_for(asana_fake, access_token=asana_fake.access_token) as client:
        as_alice = WebhooksApi(client.with_token(alice))
        as_bob = WebhooksApi(client.with_token(bob))
        as_owner = WebhooksApi(client)
        as_alice.get_webhook(webhook_gid)
        as_bob.get_webhook(webhook_gid)
        as_owner.get_webhook(webhook_gid)
        assert as_alice.api_client.transport is client.transport is as_bob.api_client.transport

    assert asana_fake.oauth.refreshes == 1, "only Alice's token needed a refresh"
    assert bob.tokens.access_token == bob_tokens["access_token"]
    assert bearer_of(asana_fake) == [
        alice_tokens["access_token"],
        alice.tokens.access_token,
        bob_tokens["access_token"],
        asana_fake.access_token,
    ], "each view authenticates as its own user"


def test_a_plain_401_for_an_unknown_token_is_raised_after_at_most_one_refresh(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    tokens = asana_fake.oauth.issue()
    stale = dict(tokens, access_token="2/restored-from-an-old-backup")
    credential = credential_for(asana_fake, stale)

    with client_for(asana_fake, token_provider=credential) as client:
        WebhooksApi(client).get_webhook(webhook_gid)

    assert asana_fake.oauth.refreshes == 1, "an unknown token is fixed by one refresh"
    assert bearer_of(asana_fake)[-1] == credential.tokens.access_token


def test_a_plain_token_against_the_fake_never_touches_the_token_endpoint(
    asana_fake: FakeAsana, webhook_gid: str
) -> None:
    client = client_for(asana_fake, access_token="0/wrong")
    with client, pytest.raises(UnauthorizedError):
        WebhooksApi(client).get_webhook(webhook_gid)
    assert token_requests(asana_fake) == 0
