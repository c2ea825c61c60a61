"""Authentication: a plain token, a token provider, or an OAuth token that refreshes itself.

A *credential* hands ``ApiClient`` the bearer token for each attempt (``token``) and says,
after a 401, whether the request is worth sending once more (``reauthorize``). Three kinds:

- a plain string (``Configuration.access_token``, a personal access token): sent as is;
- a token provider, any ``Callable[[], str]``: asked before every attempt, so an application
  can hand over its own token cache; after a 401 it is asked again and the request is sent
  once more only if it now returns a different token;
- ``OAuthToken``: refreshes against Asana's token endpoint shortly before expiry, and after a
  401, then hands the new tokens to ``on_refresh`` so the application can persist them.

What a 401 does with an ``OAuthToken`` (at most one refresh and one resend per request):

- If another thread refreshed while this request was in flight, resend with the new token.
- If Asana says the token *expired*, refresh and resend.
- A plain 401 (an unknown or revoked token: say, stale tokens restored from a database)
  refreshes too, since a refresh is what fixes that. But a token that came from such a
  refresh is not refreshed again on a plain 401: when Asana refuses a brand-new token (the
  app was removed from the workspace, say) another refresh would not help, and refreshing
  on every request would double the traffic. That 401 is raised as ``UnauthorizedError``.

Refreshes are single-flight: threads that find the token due wait (boundedly) for the one
thread that refreshes. A failed refresh raises ``TokenRefreshError`` and is not retried in a
loop: a refused refresh token (``invalid_grant``) is never retried until ``update()`` gives
new tokens, and a transient failure only after ``retry_after_failure`` seconds. While the
current token has not actually expired, a failed early refresh is logged and the current
token is still used.

The OAuth protocol (the refresh body, RFC 6749 error responses) is oauthlib's; the HTTP goes
through the client's own transport, so refreshes share its pool, timeouts and tests.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Callable, Optional, Protocol, Union, runtime_checkable

import attrs

from asana_webhooks._errors import ApiException, AsanaError
from asana_webhooks._transport import Request, Timeout, Transport, to_timeout
from asana_webhooks._version import __version__

logger = logging.getLogger("asana_webhooks")

#: Asana's OAuth token endpoint (token exchange and refresh).
ASANA_TOKEN_URL = "https://app.asana.com/-/oauth_token"  # noqa: S105 - a URL, not a secret

_USER_AGENT = f"asana-webhooks/{__version__}"

#: RFC 6749 error codes after which the same refresh token will never work.
_PERMANENT_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"}
)

_MAX_DESCRIPTION = 200

#: Each refresh request's connect and read timeouts.
_REFRESH_TIMEOUT = Timeout(connect=10.0, read=30.0)


def _oauthlib() -> tuple[Any, Any]:
    """oauthlib's ``oauth2`` and its errors module, imported on first use (the oauth extra)."""
    try:
        from oauthlib import oauth2  # type: ignore[import-untyped,unused-ignore]
        from oauthlib.oauth2.rfc6749 import errors  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ImportError("OAuthToken needs oauthlib: pip install 'asana-webhooks[oauth]'") from exc
    return oauth2, errors


class AuthenticationError(AsanaError):
    """No usable token: a token provider failed, or an OAuth refresh did."""


class TokenRefreshError(AuthenticationError):
    """Asana's token endpoint did not give a new access token.

    ``permanent`` is True when the refresh token itself was refused (``invalid_grant``,
    ``invalid_client``, ...): the user has to authorize the app again, and this credential
    will not try again until ``OAuthToken.update()``. ``status`` is the token endpoint's HTTP
    status (None when it was not reached), ``error`` and ``description`` its OAuth error.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        error: Optional[str] = None,
        description: Optional[str] = None,
        permanent: bool = False,
    ) -> None:
        self.status = status
        self.error = error
        self.description = description
        self.permanent = permanent
        super().__init__(message)

    def _again(self, note: str) -> TokenRefreshError:
        """A fresh copy for another caller (one exception object is never raised twice)."""
        return TokenRefreshError(
            f"{self.args[0]} ({note})",
            status=self.status,
            error=self.error,
            description=self.description,
            permanent=self.permanent,
        )


@runtime_checkable
class Credential(Protocol):
    """What ``ApiClient`` asks for a token. ``OAuthToken`` is one; write your own if needed.

    ``token`` returns the bearer token for the next attempt. ``reauthorize`` is called once
    per request after a 401 for ``rejected``; it returns True when resending the request with
    a new ``token()`` may succeed. ``transport`` is the client's, for any HTTP it needs.
    Both may be called from many threads at once.
    """

    def token(self, transport: Transport) -> str: ...

    def reauthorize(self, rejected: str, error: ApiException, transport: Transport) -> bool: ...


#: What ``Configuration.token_provider`` and ``ApiClient.with_token`` accept.
TokenSource = Union[str, Callable[[], str], Credential]


class StaticToken:
    """One fixed token (a personal access token); a 401 is final."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("a token must be a non-empty string")
        self._token = token

    def token(self, transport: Transport) -> str:
        return self._token

    def reauthorize(self, rejected: str, error: ApiException, transport: Transport) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticToken('***')"


class TokenProvider:
    """Adapts a ``Callable[[], str]`` (the application's token cache) to a ``Credential``."""

    __slots__ = ("_provider",)

    def __init__(self, provider: Callable[[], str]) -> None:
        if not callable(provider):
            raise TypeError("a token provider must be callable")
        self._provider = provider

    def token(self, transport: Transport) -> str:
        try:
            value = self._provider()
        except AsanaError:
            raise
        except Exception as exc:
            raise AuthenticationError(
                f"the token provider {self._name()} raised {type(exc).__name__}"
            ) from exc
        if not isinstance(value, str) or not value.strip():
            raise AuthenticationError(
                f"the token provider {self._name()} returned no token "
                f"(a {type(value).__name__}, expected a non-empty str)"
            )
        return value

    def reauthorize(self, rejected: str, error: ApiException, transport: Transport) -> bool:
        # The provider's cache may have moved on meanwhile: resend only for a new token.
        return self.token(transport) != rejected

    def _name(self) -> str:
        # Never the provider's repr: a functools.partial would show its arguments.
        return getattr(self._provider, "__qualname__", None) or type(self._provider).__name__

    def __repr__(self) -> str:
        return f"TokenProvider({self._name()})"


def as_credential(value: TokenSource) -> Credential:
    """A ``Credential`` for a token string, a token provider, or a credential."""
    if isinstance(value, str):
        return StaticToken(value)
    if isinstance(value, Credential):
        return value
    if callable(value):
        return TokenProvider(value)
    raise TypeError(
        "expected a token string, a callable returning one, or a Credential such as "
        f"OAuthToken, not {type(value).__name__}"
    )


def optional_credential(value: Optional[TokenSource]) -> Optional[Credential]:
    """``as_credential`` that lets None through (for ``Configuration.token_provider``)."""
    return None if value is None else as_credential(value)


def says_expired(error: ApiException) -> bool:
    """Whether a 401 says the token expired (lenient: any mention, in body or header)."""
    if any("expired" in (e.message or "").lower() for e in error.errors):
        return True
    if error.body and b"expired" in error.body.lower():
        return True
    return "expired" in error.headers.get("WWW-Authenticate", "").lower()


def _hidden(value: object) -> str:
    return "None" if value is None else "'***'"


@attrs.frozen(slots=True)
class TokenSet:
    """One OAuth grant's tokens, as handed to ``on_refresh`` for the application to persist.

    ``expires_at`` is in seconds since the epoch (``time.time()``), None when unknown.
    ``as_dict()`` and ``from_dict()`` round-trip through JSON; ``from_dict`` also reads
    Asana's token response (``expires_in``).
    """

    access_token: str = attrs.field(repr=_hidden)
    refresh_token: str = attrs.field(repr=_hidden)
    expires_at: Optional[float] = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "token_type": "bearer",
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        refresh_token: Optional[str] = None,
        clock: Callable[[], float] = time.time,
    ) -> TokenSet:
        """Read ``access_token``, ``refresh_token`` and ``expires_at`` or ``expires_in``.

        ``refresh_token`` is used when ``data`` has none (Asana's refresh answers keep it).
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a mapping of token fields, not {type(data).__name__}")
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token data has no access_token string")
        refresh = data.get("refresh_token") or refresh_token
        if not isinstance(refresh, str) or not refresh:
            raise ValueError("the token data has no refresh_token string")
        return cls(access, refresh, _expires_at(data, clock))


def _expires_at(data: Mapping[str, Any], clock: Callable[[], float]) -> Optional[float]:
    for key in ("expires_at", "expires_in"):
        value = data.get(key)
        if value is None:
            continue
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number of seconds") from None
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            raise ValueError(f"{key} must be a finite number of seconds")
        return seconds if key == "expires_at" else clock() + seconds
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_token_url(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError("token_url must be a string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url  # a local stand-in such as FakeAsana
    raise ValueError(
        "token_url must be an https URL (plain http only on a loopback address); "
        "the refresh sends the client secret"
    )


@attrs.define(slots=True)
class _Failure:
    tokens: TokenSet
    error: TokenRefreshError
    at: float


class OAuthToken:
    """An OAuth access token that refreshes itself; a ``Credential``.

    ::

        credential = OAuthToken.from_dict(
            saved_tokens, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            on_refresh=lambda tokens: save(user, tokens.as_dict()),
        )
        api = WebhooksApi(api_client.with_token(credential))

    - Refreshes ``refresh_margin`` seconds before ``expires_at`` (when known), and after a
      401 (see the module's notes), against ``token_url`` with ``grant_type=refresh_token``.
    - ``on_refresh(TokenSet)`` runs after each refresh, under the refresh lock, so saved
      tokens never go back in time; an exception from it is logged, not raised.
    - ``timeout`` bounds each refresh request; a thread waits at most
      ``timeout.connect + timeout.read + 10`` seconds for another thread's refresh.
    - ``transport``: for the refresh only; by default the calling client's.
    - ``clock``: seconds since the epoch; tests pass their own.

    Safe to share between threads and clients. Its repr shows no secret.
    """

    def __init__(
        self,
        access_token: str,
        refresh_token: str,
        *,
        client_id: str,
        client_secret: str,
        expires_at: Optional[float] = None,
        redirect_uri: Optional[str] = None,
        token_url: str = ASANA_TOKEN_URL,
        on_refresh: Optional[Callable[[TokenSet], None]] = None,
        refresh_margin: float = 60.0,
        retry_after_failure: float = 30.0,
        timeout: Union[Timeout, float, tuple[float, float]] = _REFRESH_TIMEOUT,
        transport: Optional[Transport] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        for name, number in (
            ("refresh_margin", refresh_margin),
            ("retry_after_failure", retry_after_failure),
        ):
            if not isinstance(number, (int, float)) or not 0 <= number < float("inf"):
                raise ValueError(f"{name} must be a finite number of seconds >= 0")
        _oauthlib()  # fail here, not at the first refresh, when the extra is missing
        if on_refresh is not None and not callable(on_refresh):
            raise TypeError("on_refresh must be callable")
        self._tokens = TokenSet.from_dict(
            {"access_token": access_token, "refresh_token": refresh_token, "expires_at": expires_at}
        )
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.token_url = _check_token_url(token_url)
        self.on_refresh = on_refresh
        self.refresh_margin = float(refresh_margin)
        self.retry_after_failure = float(retry_after_failure)
        self.timeout = to_timeout(timeout)
        self.transport = transport
        self._clock = clock
        self._wait = self.timeout.connect + self.timeout.read + 10.0
        self._lock = threading.Lock()
        self._failure: Optional[_Failure] = None
        # The access token that a refresh after a plain 401 produced (see the module notes).
        self._from_plain_401: Optional[str] = None

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        client_id: str,
        client_secret: str,
        **options: Any,
    ) -> OAuthToken:
        """From saved tokens (``TokenSet.as_dict()``) or Asana's token exchange answer."""
        clock: Callable[[], float] = options.get("clock", time.time)
        tokens = TokenSet.from_dict(data, clock=clock)
        return cls(
            tokens.access_token,
            tokens.refresh_token,
            client_id=client_id,
            client_secret=client_secret,
            expires_at=tokens.expires_at,
            **options,
        )

    @property
    def tokens(self) -> TokenSet:
        """The current tokens."""
        return self._tokens

    def update(self, tokens: TokenSet) -> None:
        """Replace the tokens (after the user authorized again, say); forgets past failures."""
        if not isinstance(tokens, TokenSet):
            raise TypeError("update() takes a TokenSet")
        with self._locked():
            self._tokens = tokens
            self._failure = None
            self._from_plain_401 = None

    def __repr__(self) -> str:
        return (
            f"OAuthToken(client_id={self.client_id!r}, expires_at={self._tokens.expires_at!r}, "
            f"token_url={self.token_url!r}, access_token='***', refresh_token='***', "
            "client_secret='***')"
        )

    # -- Credential --------------------------------------------------------------------

    def token(self, transport: Transport) -> str:
        tokens = self._tokens
        expires_at = tokens.expires_at
        if expires_at is None or self._clock() < expires_at - self.refresh_margin:
            return tokens.access_token
        return self._token_when_due(transport)

    def reauthorize(self, rejected: str, error: ApiException, transport: Transport) -> bool:
        expired = says_expired(error)
        with self._locked():
            tokens = self._tokens
            if tokens.access_token != rejected:
                return True  # refreshed meanwhile (by another thread, or update())
            if not expired and rejected == self._from_plain_401:
                logger.info(
                    "asana_webhooks: Asana refused a freshly refreshed OAuth token for client "
                    "%s (401); not refreshing again",
                    self.client_id,
                )
                return False
            fresh = self._refresh(tokens, transport, "expired" if expired else "was refused")
            self._from_plain_401 = None if expired else fresh.access_token
            return True

    # -- refreshing --------------------------------------------------------------------

    def _token_when_due(self, transport: Transport) -> str:
        with self._locked():
            tokens = self._tokens
            expires_at = tokens.expires_at
            now = self._clock()
            if expires_at is None or now < expires_at - self.refresh_margin:
                return tokens.access_token  # another thread refreshed while we waited
            try:
                why = "has expired" if now >= expires_at else "is about to expire"
                return self._refresh(tokens, transport, why).access_token
            except TokenRefreshError:
                if now < expires_at:
                    return tokens.access_token  # still valid for a little while: use it
                raise

    def _locked(self) -> _Held:
        return _Held(self._lock, self._wait)

    def _refresh(self, tokens: TokenSet, transport: Transport, why: str) -> TokenSet:
        """Exchange the refresh token; call with the lock held. Never loops."""
        failure = self._failure
        if failure is not None and failure.tokens is tokens:
            ago = self._clock() - failure.at
            if failure.error.permanent:
                raise failure.error._again("not retried: the refresh token was refused")
            if ago < self.retry_after_failure:
                raise failure.error._again(f"not retried yet: failed {ago:.0f}s ago")
        try:
            fresh = self._exchange(tokens, self.transport or transport)
        except TokenRefreshError as exc:
            self._failure = _Failure(tokens, exc, self._clock())
            logger.warning(
                "asana_webhooks: OAuth token for client %s %s; refresh failed: %s",
                self.client_id,
                why,
                exc,
            )
            raise
        self._tokens = fresh
        self._failure = None
        lifetime = (
            "" if fresh.expires_at is None else f", valid {fresh.expires_at - self._clock():.0f}s"
        )
        logger.info(
            "asana_webhooks: OAuth token for client %s %s; refreshed%s",
            self.client_id,
            why,
            lifetime,
        )
        if self.on_refresh is not None:
            try:
                self.on_refresh(fresh)
            except Exception:
                logger.exception(
                    "asana_webhooks: on_refresh failed; the new token is used but not saved"
                )
        return fresh

    def _exchange(self, tokens: TokenSet, transport: Transport) -> TokenSet:
        oauth2, _ = _oauthlib()
        extra = {"redirect_uri": self.redirect_uri} if self.redirect_uri else {}
        body: str = oauth2.WebApplicationClient(self.client_id).prepare_refresh_body(
            refresh_token=tokens.refresh_token,
            client_id=self.client_id,
            client_secret=self._client_secret,
            **extra,
        )
        request = Request(
            "POST",
            self.token_url,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            },
            body.encode("utf-8"),
            self.timeout,
        )
        try:
            response = transport.handle_request(request)
        except Exception as exc:
            raise TokenRefreshError(
                f"OAuth token refresh failed: the token endpoint could not be reached "
                f"({self._scrub(str(exc)) or type(exc).__name__})"
            ) from exc
        return self._parse(response.status, response.body, tokens)

    def _parse(self, status: int, body: bytes, tokens: TokenSet) -> TokenSet:
        oauth2, errors = _oauthlib()
        text = body.decode("utf-8", "replace")
        try:
            params = oauth2.WebApplicationClient(self.client_id).parse_request_body_response(text)
        except errors.OAuth2Error as exc:
            if exc.error == "missing_token":  # oauthlib's own code: no access_token in the answer
                raise self._failed(
                    status, None, None if status >= 400 else "no access_token"
                ) from None
            description = self._scrub(str(exc.description or ""))[:_MAX_DESCRIPTION] or None
            raise self._failed(status, str(exc.error), description) from None
        except Exception:
            raise self._failed(status, None, "the answer is not an OAuth token response") from None
        if status >= 400:
            raise self._failed(status, None, None)
        # Only the answer's own fields: oauthlib adds an expires_at from its own clock.
        answer = {key: params.get(key) for key in ("access_token", "refresh_token", "expires_in")}
        try:
            return TokenSet.from_dict(answer, refresh_token=tokens.refresh_token, clock=self._clock)
        except (TypeError, ValueError) as exc:
            raise self._failed(status, None, f"malformed token response: {exc}") from None

    def _failed(
        self, status: int, code: Optional[str], description: Optional[str]
    ) -> TokenRefreshError:
        permanent = code in _PERMANENT_ERRORS if code else status in (400, 401, 403)
        message = f"OAuth token refresh failed: {status}"
        if code:
            message += f" {code}"
        if description:
            message += f": {description}"
        if permanent:
            message += " (the refresh token was refused: the user must authorize the app again)"
        return TokenRefreshError(
            message, status=status, error=code, description=description, permanent=permanent
        )

    def _scrub(self, text: str) -> str:
        tokens = self._tokens
        for secret in (tokens.access_token, tokens.refresh_token, self._client_secret):
            text = text.replace(secret, "***")
        return text


class _Held:
    """``with`` for a lock, waiting at most ``wait`` seconds (never forever)."""

    __slots__ = ("_lock", "_wait")

    def __init__(self, lock: threading.Lock, wait: float) -> None:
        self._lock = lock
        self._wait = wait

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self._wait):
            raise TokenRefreshError(
                f"gave up after {self._wait:.0f}s waiting for another thread's token refresh"
            )

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()
