"""Authentication: plain tokens, token providers, OAuth refresh and per-user views, over
MockTransport (the same behaviour against FakeAsana is in test_auth_fake.py)."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from asana_webhooks import (
    ApiClient,
    ApiConnectionError,
    AuthenticationError,
    Configuration,
    Credential,
    MockTransport,
    OAuthToken,
    Request,
    Response,
    RetryPolicy,
    Timeout,
    TokenRefreshError,
    TokenSet,
    UnauthorizedError,
    WebhooksApi,
)
from tests._client_helpers import asana_error, json_response, webhook_json

TOKEN_URL = "https://app.asana.com/-/oauth_token"
CLIENT_ID = "1201234567890"
CLIENT_SECRET = "client-secret-9f8e7d6c5b4a"
REFRESH_TOKEN = "1/refresh-token-0a1b2c3d4e5f"
OLD = "1/access-old-aaaaaaaaaaaa"
NEW = "1/access-new-bbbbbbbbbbbb"
EXPIRED_MESSAGE = (
    "The bearer token has expired. If you have a refresh token, please use it to "
    "request a new bearer token, otherwise allow the user to re-authenticate."
)
SECRETS = (OLD, NEW, REFRESH_TOKEN, CLIENT_SECRET)


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeAsanaApi:
    """A scripted Asana: the token endpoint issues ``NEW``; the API accepts ``valid`` tokens.

    ``token_answers`` scripts the token endpoint (default: a good answer each time);
    ``api_answers`` scripts the API before the token check (default: 200 for valid tokens,
    401 ``Not Authorized`` otherwise, or ``EXPIRED_MESSAGE`` for tokens in ``expired``).
    """

    def __init__(self) -> None:
        self.valid: set[str] = {OLD}
        self.expired: set[str] = set()
        self.token_answers: list[Callable[[Request], Response]] = []
        self.api_answers: list[Response] = []
        self.token_requests: list[dict[str, str]] = []
        self.api_tokens: list[str] = []
        self.transport = MockTransport(self.handle)

    def handle(self, request: Request) -> Response:
        if request.url == TOKEN_URL:
            form = dict(urllib.parse.parse_qsl((request.body or b"").decode()))
            self.token_requests.append(form)
            if self.token_answers:
                return self.token_answers.pop(0)(request)
            self.valid.add(NEW)
            return json_response(
                200, {"access_token": NEW, "token_type": "bearer", "expires_in": 3600}
            )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.api_tokens.append(token)
        if self.api_answers:
            return self.api_answers.pop(0)
        if token in self.expired:
            return asana_error(401, EXPIRED_MESSAGE)
        if token not in self.valid:
            return asana_error(401, "Not Authorized")
        return json_response(200, {"data": webhook_json()})


@pytest.fixture
def asana() -> FakeAsanaApi:
    return FakeAsanaApi()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_credential(clock: Clock, **options: Any) -> OAuthToken:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "expires_at": clock() + 3600,
        "clock": clock,
    }
    settings.update(options)
    return OAuthToken(OLD, REFRESH_TOKEN, **settings)


def api_for(asana: FakeAsanaApi, **config: Any) -> WebhooksApi:
    configuration = Configuration(retry=RetryPolicy.off(), **config)
    return WebhooksApi(ApiClient(configuration, transport=asana.transport))


def assert_no_secrets(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"secrets leaked into {text!r}: {leaked}"


# --- a plain token and token providers -----------------------------------------------------


def test_a_plain_access_token_is_sent_and_a_401_is_final(asana: FakeAsanaApi) -> None:
    api = api_for(asana, access_token="0/someone-else")
    with pytest.raises(UnauthorizedError):
        api.get_webhook("43214")
    assert asana.api_tokens == ["0/someone-else"], "a plain token's 401 must not be resent"
    assert asana.token_requests == [], "a plain token never refreshes"


def test_a_token_provider_is_asked_before_every_request(asana: FakeAsanaApi) -> None:
    handed_out: list[str] = []

    def current_token() -> str:
        handed_out.append(OLD)
        return OLD

    api = api_for(asana, token_provider=current_token, access_token="ignored")
    api.get_webhook("1")
    api.get_webhook("2")
    assert handed_out == [OLD, OLD], "the provider must be asked once per request"
    assert asana.api_tokens == [OLD, OLD], "the provider's token, not access_token, is sent"


def test_a_token_provider_that_moved_on_gets_one_resend_after_a_401(
    asana: FakeAsanaApi,
) -> None:
    tokens = iter(["1/stale", NEW, NEW, NEW])
    asana.valid.add(NEW)
    api = api_for(asana, token_provider=lambda: next(tokens))
    api.get_webhook("1")
    assert asana.api_tokens == ["1/stale", NEW], "after a 401 the provider's new token is tried"


def test_a_token_provider_with_the_same_token_after_a_401_is_not_resent(
    asana: FakeAsanaApi,
) -> None:
    api = api_for(asana, token_provider=lambda: "1/unknown")
    with pytest.raises(UnauthorizedError):
        api.get_webhook("1")
    assert asana.api_tokens == ["1/unknown"], "resending the same rejected token is pointless"


@pytest.mark.parametrize("returned", [None, "", 42])
def test_a_token_provider_returning_no_token_is_an_authentication_error(
    asana: FakeAsanaApi, returned: Any
) -> None:
    api = api_for(asana, token_provider=lambda: returned)
    with pytest.raises(AuthenticationError, match="returned no token"):
        api.get_webhook("1")
    assert asana.api_tokens == [], "nothing may be sent without a token"


def test_a_failing_token_provider_is_an_authentication_error_chained_to_the_cause(
    asana: FakeAsanaApi,
) -> None:
    def broken_cache() -> str:
        raise KeyError("user 7 has no token")

    api = api_for(asana, token_provider=broken_cache)
    with pytest.raises(AuthenticationError, match="broken_cache raised KeyError") as info:
        api.get_webhook("1")
    assert isinstance(info.value.__cause__, KeyError), "the provider's error must be chained"


def test_token_provider_rejects_what_is_not_a_token_source() -> None:
    with pytest.raises(TypeError, match="Credential"):
        Configuration(token_provider=42)  # type: ignore[arg-type]


# --- OAuth refresh -------------------------------------------------------------------------


def test_a_token_about_to_expire_is_refreshed_before_the_request(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    saved: list[TokenSet] = []
    credential = make_credential(clock, on_refresh=saved.append, redirect_uri="https://a/cb")
    api = api_for(asana, token_provider=credential)
    clock.now += 3600 - 30  # inside the 60 s refresh margin

    api.get_webhook("1")

    assert asana.token_requests == [
        {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "redirect_uri": "https://a/cb",
        }
    ], "one refresh_token grant with the client's credentials"
    assert asana.api_tokens == [NEW], "the request must go out with the refreshed token"
    assert saved == [TokenSet(NEW, REFRESH_TOKEN, clock.now + 3600)], (
        "on_refresh gets the new access token, the kept refresh token and the new expiry"
    )
    assert credential.tokens == saved[0]


def test_a_token_far_from_expiry_is_not_refreshed(asana: FakeAsanaApi, clock: Clock) -> None:
    api = api_for(asana, token_provider=make_credential(clock))
    clock.now += 3000
    api.get_webhook("1")
    assert asana.token_requests == [], "no refresh before the margin"


def test_an_expired_401_refreshes_once_and_resends_once(asana: FakeAsanaApi, clock: Clock) -> None:
    asana.expired.add(OLD)
    api = api_for(asana, token_provider=make_credential(clock, expires_at=None))
    response = api.get_webhook("1")
    assert response.data is not None
    assert asana.api_tokens == [OLD, NEW], "the 401'd request must be resent with the new token"
    assert len(asana.token_requests) == 1


def test_a_second_401_after_the_refresh_is_raised_not_looped(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    asana.expired.add(OLD)
    asana.api_answers = [asana_error(401, EXPIRED_MESSAGE), asana_error(401, EXPIRED_MESSAGE)]
    api = api_for(asana, token_provider=make_credential(clock))
    with pytest.raises(UnauthorizedError, match="expired"):
        api.get_webhook("1")
    assert len(asana.api_tokens) == 2, "one resend per request, never more"
    assert len(asana.token_requests) == 1, "one refresh per request, never more"


def test_the_401_resend_is_once_per_request_even_with_retries(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    asana.api_answers = [
        asana_error(401, EXPIRED_MESSAGE),
        asana_error(503, "Service Unavailable"),
        asana_error(401, EXPIRED_MESSAGE),
    ]
    credential = make_credential(clock)
    client = ApiClient(
        Configuration(token_provider=credential, retry=RetryPolicy(sleep=lambda _: None)),
        transport=asana.transport,
    )
    with pytest.raises(UnauthorizedError):
        WebhooksApi(client).get_webhook("1")
    assert len(asana.api_tokens) == 3, "401, resend (503), retry (401): then stop"
    assert len(asana.token_requests) == 1, "a request refreshes at most once"


def test_a_plain_401_refreshes_once_but_not_again_for_the_fresh_token(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    asana.valid.clear()  # say the app was removed from the workspace: every token is refused
    asana.token_answers = [lambda _: json_response(200, {"access_token": NEW, "expires_in": 3600})]
    api = api_for(asana, token_provider=make_credential(clock))
    with pytest.raises(UnauthorizedError, match="Not Authorized"):
        api.get_webhook("1")
    with pytest.raises(UnauthorizedError, match="Not Authorized"):
        api.get_webhook("2")
    assert asana.api_tokens == [OLD, NEW, NEW], "the fresh token's plain 401 is final"
    assert len(asana.token_requests) == 1, "a refused fresh token must not refresh again"


def test_a_refused_refresh_token_is_a_permanent_error_and_not_retried(
    asana: FakeAsanaApi, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    asana.expired.add(OLD)
    asana.token_answers = [
        lambda _: json_response(
            400,
            {
                "error": "invalid_grant",
                "error_description": f"Refresh token {REFRESH_TOKEN} is invalid or expired",
            },
        )
    ]
    api = api_for(asana, token_provider=make_credential(clock))
    with caplog.at_level(logging.DEBUG, logger="asana_webhooks"):
        with pytest.raises(TokenRefreshError) as first:
            api.get_webhook("1")
        with pytest.raises(TokenRefreshError) as second:
            api.get_webhook("2")
    assert first.value.permanent, "invalid_grant means the user must authorize again"
    assert (first.value.status, first.value.error) == (400, "invalid_grant")
    assert "invalid_grant" in str(first.value) and "authorize the app again" in str(first.value)
    assert second.value.permanent and second.value is not first.value
    assert len(asana.token_requests) == 1, "a refused refresh token must not be tried again"
    assert asana.api_tokens == [OLD, OLD], "each request is sent once; none is resent"
    assert_no_secrets(str(first.value) + repr(first.value) + caplog.text)


def test_a_transient_refresh_failure_waits_before_trying_again(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    asana.token_answers = [lambda _: asana_error(503, "Service Unavailable")]
    credential = make_credential(clock, retry_after_failure=30.0)
    api = api_for(asana, token_provider=credential)
    clock.now += 3600  # expired

    with pytest.raises(TokenRefreshError, match="503") as first:
        api.get_webhook("1")
    assert not first.value.permanent, "a 503 from the token endpoint is transient"
    with pytest.raises(TokenRefreshError, match="not retried yet"):
        api.get_webhook("2")
    assert len(asana.token_requests) == 1, "no second refresh within retry_after_failure"
    assert asana.api_tokens == [], "an expired token must not be sent"

    clock.now += 31
    api.get_webhook("3")
    assert len(asana.token_requests) == 2, "after retry_after_failure the refresh is tried again"
    assert asana.api_tokens == [NEW]


def test_a_failed_early_refresh_still_uses_the_token_while_it_is_valid(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    asana.token_answers = [lambda _: asana_error(502, "Bad Gateway")]
    api = api_for(asana, token_provider=make_credential(clock))
    clock.now += 3600 - 30  # due for refresh, still valid for 30 s
    api.get_webhook("1")
    assert asana.api_tokens == [OLD], "a failed early refresh must not fail the request"
    assert len(asana.token_requests) == 1


def test_an_unreachable_token_endpoint_is_a_token_refresh_error(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    seen: list[Request] = []

    def refuse(request: Request) -> Response:
        seen.append(request)
        raise ApiConnectionError("could not connect on POST /-/oauth_token", request_sent=False)

    asana.token_answers = [refuse]
    api = api_for(asana, token_provider=make_credential(clock, timeout=(2, 5)))
    clock.now += 3600
    with pytest.raises(TokenRefreshError, match="could not be reached") as info:
        api.get_webhook("1")
    assert isinstance(info.value.__cause__, ApiConnectionError)
    assert seen[0].timeout == Timeout(connect=2, read=5), "the refresh has its finite timeout"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"token_type": "bearer"}', "no access_token"),
        (200, b"<html>oops</html>", "200"),
        (200, b'{"access_token": "x", "expires_in": "soon"}', "not an OAuth token response"),
        (401, b'{"error": "invalid_client"}', "invalid_client"),
        (502, b"<html>Bad Gateway</html>", "502"),
    ],
)
def test_a_bad_token_endpoint_answer_is_a_token_refresh_error(
    asana: FakeAsanaApi, clock: Clock, status: int, body: bytes, expected: str
) -> None:
    asana.token_answers = [lambda _: Response(status, {}, body)]
    api = api_for(asana, token_provider=make_credential(clock))
    clock.now += 3600
    with pytest.raises(TokenRefreshError, match=expected):
        api.get_webhook("1")


def test_on_refresh_failing_is_logged_and_the_new_token_still_used(
    asana: FakeAsanaApi, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def save(tokens: TokenSet) -> None:
        raise RuntimeError("database is down")

    api = api_for(asana, token_provider=make_credential(clock, on_refresh=save))
    clock.now += 3600
    with caplog.at_level(logging.ERROR, logger="asana_webhooks"):
        api.get_webhook("1")
    assert asana.api_tokens == [NEW]
    assert "on_refresh failed" in caplog.text


def test_update_replaces_the_tokens_and_forgets_a_refused_refresh(
    asana: FakeAsanaApi, clock: Clock
) -> None:
    asana.token_answers = [lambda _: json_response(400, {"error": "invalid_grant"})]
    credential = make_credential(clock)
    api = api_for(asana, token_provider=credential)
    clock.now += 3600
    with pytest.raises(TokenRefreshError):
        api.get_webhook("1")
    asana.valid.add("1/re-authorized")
    credential.update(TokenSet("1/re-authorized", "1/new-refresh", clock.now + 3600))
    api.get_webhook("2")
    assert asana.api_tokens == ["1/re-authorized"]


def test_tokens_round_trip_through_as_dict_and_from_dict(clock: Clock) -> None:
    credential = OAuthToken.from_dict(
        {"access_token": OLD, "refresh_token": REFRESH_TOKEN, "expires_in": 3600},
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        clock=clock,
    )
    assert credential.tokens == TokenSet(OLD, REFRESH_TOKEN, clock.now + 3600)
    saved = json.loads(json.dumps(credential.tokens.as_dict()))
    assert TokenSet.from_dict(saved) == credential.tokens


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"token_url": "http://app.asana.com/-/oauth_token"}, ValueError),
        ({"token_url": "ftp://127.0.0.1/-/oauth_token"}, ValueError),
        ({"client_secret": ""}, ValueError),
        ({"refresh_margin": -1}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"on_refresh": "save"}, TypeError),
    ],
)
def test_oauth_token_rejects_bad_settings(
    clock: Clock, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make_credential(clock, **options)


def test_plain_http_token_url_is_allowed_on_loopback_only(clock: Clock) -> None:
    credential = make_credential(clock, token_url="http://127.0.0.1:8080/-/oauth_token")
    assert credential.token_url == "http://127.0.0.1:8080/-/oauth_token"


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_appears_in_reprs(clock: Clock) -> None:
    credential = make_credential(clock)
    config = Configuration(access_token=OLD, token_provider=credential)
    client = ApiClient(config, transport=MockTransport(lambda r: Response(200)))
    texts = [
        repr(credential),
        str(credential),
        repr(credential.tokens),
        repr(config),
        repr(client),
        repr(client.with_token(credential)),
        repr(client.with_token(NEW)),
        repr(Configuration(token_provider=lambda: OLD)),
    ]
    for text in texts:
        assert_no_secrets(text)
    assert CLIENT_ID in repr(credential), "the client id is not secret and helps debugging"


def test_no_secret_appears_in_logs_of_a_refresh(
    asana: FakeAsanaApi, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    asana.expired.add(OLD)
    api = api_for(asana, token_provider=make_credential(clock))
    with caplog.at_level(logging.DEBUG):
        api.get_webhook("1")
    assert "refreshed" in caplog.text, "a refresh is logged"
    assert_no_secrets(caplog.text)


# --- many users on one client ----------------------------------------------------------------


@pytest.fixture
def shared_client(asana: FakeAsanaApi) -> Iterator[ApiClient]:
    with ApiClient(
        Configuration(access_token="0/owner-pat", retry=RetryPolicy.off()),
        transport=asana.transport,
    ) as client:
        yield client


def test_with_token_views_authenticate_as_their_users_over_one_transport(
    asana: FakeAsanaApi, shared_client: ApiClient, clock: Clock
) -> None:
    asana.valid |= {"0/owner-pat", "1/bob"}
    alice = make_credential(clock)
    alice_api = WebhooksApi(shared_client.with_token(alice))
    bob_api = WebhooksApi(shared_client.with_token("1/bob"))
    owner_api = WebhooksApi(shared_client)

    alice_api.get_webhook("1")
    bob_api.get_webhook("2")
    owner_api.get_webhook("3")

    assert asana.api_tokens == [OLD, "1/bob", "0/owner-pat"], "each view sends its own token"
    assert alice_api.api_client.transport is shared_client.transport, "one pool for all users"
    assert alice_api.api_client.configuration is shared_client.configuration


def test_a_view_refreshes_its_own_credential_only(
    asana: FakeAsanaApi, shared_client: ApiClient, clock: Clock
) -> None:
    asana.expired.add(OLD)
    asana.valid.add("1/bob")
    alice = make_credential(clock)
    WebhooksApi(shared_client.with_token(alice)).get_webhook("1")
    WebhooksApi(shared_client.with_token("1/bob")).get_webhook("2")
    assert alice.tokens.access_token == NEW
    assert asana.api_tokens == [OLD, NEW, "1/bob"]


def test_closing_a_view_leaves_the_shared_pool_open() -> None:
    closed: list[bool] = []

    class Transport(MockTransport):
        def close(self) -> None:
            closed.append(True)

    client = ApiClient(
        Configuration(access_token="0/pat"), transport=Transport(lambda r: Response(200))
    )
    client._owns_transport = True  # as if the client had made it
    with client.with_token("1/bob"):
        pass
    assert closed == [], "a view must not close the pool its parent shares"
    client.close()
    assert closed == [True]


def test_with_token_rejects_what_is_not_a_token(shared_client: ApiClient) -> None:
    with pytest.raises(TypeError, match="token string"):
        shared_client.with_token(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        shared_client.with_token("")


def test_an_app_can_write_its_own_credential(asana: FakeAsanaApi, shared_client: ApiClient) -> None:
    class Rotating:
        def __init__(self) -> None:
            self.current = "1/first"

        def token(self, transport: Any) -> str:
            return self.current

        def reauthorize(self, rejected: str, error: Any, transport: Any) -> bool:
            self.current = NEW
            return True

    rotating = Rotating()
    assert isinstance(rotating, Credential)
    asana.valid.add(NEW)
    WebhooksApi(shared_client.with_token(rotating)).get_webhook("1")
    assert asana.api_tokens == ["1/first", NEW]
