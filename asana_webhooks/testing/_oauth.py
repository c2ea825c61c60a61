"""FakeAsana's OAuth side: the token endpoint (``POST /-/oauth_token``) and access tokens that
expire, so clients can be tested on refresh before expiry, after a 401, and on failure.

Asana's answers as documented (developers.asana.com/docs/oauth): a refresh is a form POST
with ``grant_type=refresh_token``, ``client_id``, ``client_secret`` and ``refresh_token``; the
answer is ``{"access_token", "token_type": "bearer", "expires_in": 3600, "data": user}``
without a new refresh token (Asana's refresh tokens do not rotate); errors are RFC 6749's
``{"error", "error_description"}``. The expired-token 401 message's first sentence is
Asana's; the rest of it and the error descriptions are GUESSES.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from asana_webhooks.testing._ids import new_gid
from asana_webhooks.testing._records import Headers
from asana_webhooks.testing._responses import ApiError, Response, json_response

#: Where Asana serves the token exchange, relative to the host (not under ``/api/1.0``).
TOKEN_PATH = "/-/oauth_token"  # noqa: S105 - a path, not a secret

EXPIRED_MESSAGE = (
    "The bearer token has expired. If you have a refresh token, please use it to request a "
    "new bearer token, otherwise allow the user to re-authenticate."
)

#: Asana's access tokens live an hour.
DEFAULT_LIFETIME = 3600.0


@attrs.define
class _Grant:
    """One user's authorization: a refresh token and the user it acts for."""

    user_gid: str
    revoked: bool = False


class OAuthServer:
    """Issues expiring access tokens and refreshes them; ``FakeAsana.oauth``.

    ::

        tokens = fake.oauth.issue()                  # a user authorized the app
        credential = OAuthToken.from_dict(tokens, client_id=fake.oauth.client_id,
                                          client_secret=fake.oauth.client_secret,
                                          token_url=fake.oauth.token_url)
        fake.oauth.expire()                          # every access token is now expired

    An issued access token is accepted by the API until it expires; then the API answers 401
    with Asana's "The bearer token has expired" message. ``revoke(refresh_token)`` makes its
    refreshes fail with ``invalid_grant``. The fake's faults apply to the token endpoint
    too: ``fake.fail_next(503, path="/-/oauth_token")``. Thread-safe; starts nothing.
    """

    def __init__(
        self,
        base_url: Callable[[], str],
        *,
        clock: Callable[[], float] = time.time,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        self._base_url = base_url
        self.clock = clock
        #: Seconds an access token lives (``expires_in`` of every answer).
        self.lifetime = lifetime
        self.client_id = new_gid()
        self.client_secret = secrets.token_urlsafe(24)
        self._lock = threading.Lock()
        self._grants: dict[str, _Grant] = {}  # refresh token -> grant
        self._access: dict[str, float] = {}  # access token -> expires_at
        self._refreshes = 0

    @property
    def token_url(self) -> str:
        """``http://127.0.0.1:PORT/-/oauth_token`` (Asana's is ``https://app.asana.com/...``)."""
        parts = urlsplit(self._base_url())
        if not parts.netloc:
            raise RuntimeError("FakeAsana is not running: start it to get its token_url")
        return f"{parts.scheme}://{parts.netloc}{TOKEN_PATH}"

    @property
    def refreshes(self) -> int:
        """How many ``refresh_token`` grants the token endpoint received (any outcome)."""
        with self._lock:
            return self._refreshes

    def issue(self, *, expires_in: Optional[float] = None) -> dict[str, Any]:
        """A new user's tokens, as Asana's token exchange answers (plus ``expires_at``)."""
        lifetime = self.lifetime if expires_in is None else expires_in
        refresh_token = f"1/{new_gid()}:{secrets.token_hex(16)}"
        with self._lock:
            user_gid = new_gid()
            self._grants[refresh_token] = _Grant(user_gid)
            access_token, expires_at = self._new_access(lifetime)
        return {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": lifetime,
            "expires_at": expires_at,
            "data": self._user(user_gid),
        }

    def expire(self, access_token: Optional[str] = None) -> None:
        """Expire one access token now, or every one issued so far."""
        with self._lock:
            now = self.clock()
            for token in [access_token] if access_token is not None else list(self._access):
                if token in self._access:
                    self._access[token] = min(self._access[token], now)

    def revoke(self, refresh_token: str) -> None:
        """Refuse this refresh token from now on (``invalid_grant``), as after deauthorizing."""
        with self._lock:
            grant = self._grants.get(refresh_token)
            if grant is None:
                raise KeyError("not a refresh token this fake issued")
            grant.revoked = True

    # --- hooks for the app and the server ----------------------------------------------------

    def authenticate(self, token: str) -> bool:
        """True for a live access token this fake issued; 401 (expired) for an expired one;
        False for any other token (the app then checks its static token)."""
        with self._lock:
            expires_at = self._access.get(token)
            now = self.clock()
        if expires_at is None:
            return False
        if now >= expires_at:
            raise ApiError(401, EXPIRED_MESSAGE)
        return True

    def token_endpoint(self, method: str, headers: Headers, body: bytes) -> Response:
        """Answer ``POST /-/oauth_token``."""
        if method != "POST":
            return _oauth_error(400, "invalid_request", "The token endpoint only accepts POST.")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = _basic_auth(headers) or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        grant_type = form.get("grant_type", "")
        with self._lock:
            if grant_type == "refresh_token":
                self._refreshes += 1
            if not (
                hmac.compare_digest(client_id.encode(), self.client_id.encode())
                and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
            ):
                return _oauth_error(401, "invalid_client", "The client credentials are invalid.")
            if grant_type != "refresh_token":
                return _oauth_error(
                    400, "unsupported_grant_type", "This fake only refreshes tokens."
                )
            grant = self._grants.get(form.get("refresh_token", ""))
            if grant is None or grant.revoked:
                return _oauth_error(
                    400, "invalid_grant", "The refresh token is invalid or has been revoked."
                )
            access_token, _ = self._new_access(self.lifetime)
            user_gid = grant.user_gid
        return json_response(
            200,
            {
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": self.lifetime,
                "data": self._user(user_gid),
            },
        )

    # --- internals ---------------------------------------------------------------------------

    def _new_access(self, lifetime: float) -> tuple[str, float]:
        """A new access token (call with the lock held)."""
        token = f"2/{new_gid()}:{secrets.token_hex(16)}"
        expires_at = self.clock() + lifetime
        self._access[token] = expires_at
        return token, expires_at

    @staticmethod
    def _user(user_gid: str) -> dict[str, str]:
        return {
            "id": user_gid,
            "gid": user_gid,
            "name": f"User {user_gid}",
            "email": f"user{user_gid}@example.com",
        }

    def __repr__(self) -> str:
        return f"<OAuthServer client_id={self.client_id} {len(self._grants)} grants>"


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response(status, {"error": error, "error_description": description})


def _basic_auth(headers: Headers) -> Optional[tuple[str, str]]:
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, _, client_secret = decoded.partition(":")
    return unquote(client_id), unquote(client_secret)
