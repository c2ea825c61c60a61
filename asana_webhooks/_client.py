"""ApiClient: one connection pool, authentication, retries and error mapping for every call."""

from __future__ import annotations

import http
import json
import logging
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterable, Mapping
from typing import Callable, Generic, Optional, TypeVar

import attrs
import tenacity

from asana_webhooks._auth import Credential, TokenSource, as_credential
from asana_webhooks._configuration import Configuration
from asana_webhooks._converter import describe_body, structure
from asana_webhooks._errors import (
    ApiConnectionError,
    ApiException,
    AsanaError,
    Error,
    RateLimitError,
    UnauthorizedError,
    error_class_for,
)
from asana_webhooks._retry import RetryPolicy, call_with_retries, make_retrying, parse_retry_after
from asana_webhooks._transport import (
    Request,
    RequestsTransport,
    Response,
    Timeout,
    Transport,
)

logger = logging.getLogger("asana_webhooks")

Query = Iterable[tuple[str, str]]

T = TypeVar("T")


@attrs.define(slots=True)
class ApiResponse(Generic[T]):
    """What a ``*_with_http_info`` call returns, as Asana's generated clients do: the typed
    ``data``, the HTTP ``status_code``, the response ``headers`` (case-insensitive; rate-limit
    information, ``Asana-Change``) and the body as received (``raw_data``).

    The headers and the raw body stay out of the repr: a create's body carries the webhook's
    ``X-Hook-Secret``.
    """

    status_code: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    data: T
    raw_data: bytes = attrs.field(repr=False)


class AsanaChangeWarning(UserWarning):
    """Asana announced an API change (``Asana-Change`` header) that may affect your calls.

    Opt in or out with ``Configuration.default_headers`` ``Asana-Enable`` / ``Asana-Disable``.
    """


class ApiClient:
    """Holds the configuration and the transport; share one per process.

    Safe to share between threads: the transports' pools are thread-safe and per-call state
    lives on the stack. Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        configuration: Optional[Configuration] = None,
        transport: Optional[Transport] = None,
        header_name: Optional[str] = None,
        header_value: Optional[str] = None,
    ) -> None:
        self.configuration = configuration if configuration is not None else Configuration()
        config = self.configuration
        # verify_ssl=False warns from the transport built below (transports warn themselves).
        self._owns_transport = transport is None
        if transport is None:
            verify: bool | str = (config.ssl_ca_cert or True) if config.verify_ssl else False
            proxies = {"http": config.proxy, "https": config.proxy} if config.proxy else None
            transport = RequestsTransport(
                verify=verify,
                cert=config.cert,
                proxies=proxies,
                trust_env=config.trust_env,
                pool_maxsize=config.pool_maxsize,
            )
        self.transport: Transport = transport
        #: Extra headers for every request of this client (the generated client's attribute).
        self.default_headers: dict[str, str] = {}
        if header_name is not None and header_value is not None:
            self.default_headers[header_name] = header_value
        self._retrying: dict[tuple[int, str], tuple[RetryPolicy, tenacity.Retrying]] = {}
        self._warned_changes: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    # -- generated-client compatibility -------------------------------------------------

    def set_default_header(self, header_name: str, header_value: str) -> None:
        self.default_headers[header_name] = header_value

    @property
    def user_agent(self) -> str:
        return self.configuration.user_agent

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Release pooled connections (only of a transport this client created)."""
        if not self._closed:
            self._closed = True
            if self._owns_transport:
                self.transport.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        transport = type(self.transport).__name__
        return f"ApiClient(host={self.configuration.host!r}, transport={transport})"

    # -- the one request path -----------------------------------------------------------

    #: Set on the views ``with_token`` makes; otherwise ``configuration`` decides.
    _credential: Optional[Credential] = None

    def with_token(self, token: TokenSource) -> ApiClient:
        """A view of this client that authenticates as someone else.

        ``token`` is a token string, a callable returning one, or a ``Credential`` such as
        ``OAuthToken``. The view shares the configuration, headers and connection pool (one
        pool for all of a web app's users), costs about a microsecond, and closing it leaves
        the pool open. ``WebhooksApi(api_client.with_token(user_token))`` works.
        """
        credential = as_credential(token)
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._credential = credential
        view._owns_transport = False
        return view

    def access_token(self) -> Optional[str]:
        """The token for the next request: the view's or the configuration's credential if
        there is one (it may refresh), else the plain ``configuration.access_token``."""
        credential = self._credential
        if credential is None:
            config = self.configuration
            credential = config.token_provider
            if credential is None:
                token = config.access_token
                if token is None or isinstance(token, str):
                    return token  # the plain-token path: a few attribute reads
                credential = token  # a token provider given as access_token
        return credential.token(self.transport)

    def _reauthorize(self, rejected: str, error: ApiException) -> bool:
        """After a 401: True when the credential has a token worth one more try."""
        credential = self._credential
        if credential is None:
            credential = self.configuration.token_provider
        if credential is None and not isinstance(
            self.configuration.access_token, (str, type(None))
        ):
            credential = self.configuration.access_token
        return credential is not None and credential.reauthorize(rejected, error, self.transport)

    def _headers(self, has_body: bool) -> dict[str, str]:
        config = self.configuration
        headers = {"Accept": "application/json", "User-Agent": config.user_agent}
        if has_body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if config.default_headers:
            headers.update(config.default_headers)
        if self.default_headers:
            headers.update(self.default_headers)
        return headers

    def _retrying_for(self, policy: RetryPolicy, method: str) -> Optional[tenacity.Retrying]:
        if not policy.enabled:
            return None
        key = (id(policy), method)
        found = self._retrying.get(key)
        if found is None or found[0] is not policy:
            # The policy is kept beside its Retrying so its id cannot be reused meanwhile.
            found = (policy, make_retrying(policy, method))
            with self._lock:
                self._retrying[key] = found
        return found[1]

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Query] = None,
        body: Optional[bytes] = None,
        timeout: Optional[Timeout] = None,
        authorize: Optional[Callable[[dict[str, str]], None]] = None,
        gone_after_retry_is_done: bool = False,
    ) -> Response:
        """Send one API request with retries; return the 2xx response or raise our error.

        ``path`` is relative to ``configuration.host`` (``/webhooks/123``); ``query`` is a
        sequence of already-formatted ``(name, value)`` pairs.

        ``gone_after_retry_is_done`` (a DELETE): a 404 on a retry, after an attempt that may
        have reached Asana (its answer was lost, or it was a 5xx), means that attempt did the
        work; the 404 response is returned instead of raised.

        A failure raises our error with a short traceback (the caller's frames and this
        one, not the retry machinery's); after retries, the error's message says how many
        attempts were made and how each ended.
        """
        try:
            return self._request(
                method, path, query, body, timeout, authorize, gone_after_retry_is_done
            )
        except AsanaError as error:
            # The same error, raised afresh: the frames below (the retry machinery's, the
            # transport's) would bury the caller's line; the backend's cause stays attached.
            raise error.with_traceback(None)  # noqa: B904

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Query],
        body: Optional[bytes],
        timeout: Optional[Timeout],
        authorize: Optional[Callable[[dict[str, str]], None]],
        gone_after_retry_is_done: bool,
    ) -> Response:
        config = self.configuration
        url = config.host + path
        if query:
            url = f"{url}?{urllib.parse.urlencode(list(query))}"
        headers = self._headers(body is not None)
        policy = config.retry
        # The retry budget bounds the whole call, the last attempt included.
        deadline = time.monotonic() + policy.max_time
        request = Request(method, url, headers, body, timeout or config.timeout, deadline)
        transport = self.transport
        reauthorized = False
        maybe_done = False  # an earlier attempt may have reached Asana

        def attempt() -> Response:
            nonlocal reauthorized, maybe_done
            # The token is read per attempt, so a refreshed token is used on the retry.
            token = self.access_token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            if authorize is not None:
                authorize(headers)
            try:
                response = transport.handle_request(request)
            except ApiConnectionError as exc:
                maybe_done = maybe_done or exc.request_sent
                raise
            if response.status >= 400:
                if response.status == 404 and maybe_done and gone_after_retry_is_done:
                    logger.info(
                        "asana_webhooks: %s %s: 404 on the retry after an answer was lost; "
                        "the earlier attempt did it",
                        method,
                        path,
                    )
                    return response
                maybe_done = maybe_done or response.status >= 500
                error = self._error(response, method, path)
                if (
                    isinstance(error, UnauthorizedError)
                    and token
                    and not reauthorized
                    and self._reauthorize(token, error)
                ):
                    reauthorized = True  # once per request, however many attempts
                    return attempt()
                raise error
            return response

        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug("asana_webhooks: %s %s", method, path)
        response = call_with_retries(self._retrying_for(policy, method), attempt)
        if debug:
            logger.debug("asana_webhooks: %s %s -> %d", method, path, response.status)
        changes = response.headers.get("Asana-Change")
        if changes:
            self._warn_changes(changes)
        return response

    def _error(self, response: Response, method: str, path: str) -> ApiException:
        status = response.status
        cls = error_class_for(status)
        errors, note = _parse_errors(response.body)
        reason = response.reason or _phrase(status)
        exc = cls(
            status,
            reason,
            headers=response.headers,
            body=response.body,
            errors=errors,
            method=method,
            path=path,
            note=note,
        )
        if isinstance(exc, RateLimitError):
            exc.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return exc

    def _warn_changes(self, header: str) -> None:
        config_headers = {k.lower(): v for k, v in self.configuration.default_headers.items()}
        config_headers.update({k.lower(): v for k, v in self.default_headers.items()})
        decided = {
            name.strip()
            for key in ("asana-enable", "asana-disable")
            for name in config_headers.get(key, "").split(",")
        }
        for change in _parse_changes(header):
            name = change.get("name")
            if not name or name in decided:
                continue
            with self._lock:
                if name in self._warned_changes:
                    continue
                self._warned_changes.add(name)
            affected = " and affects this request" if change.get("affected") == "true" else ""
            info = change.get("info")
            warnings.warn(
                f"Asana announced API change {name!r}{affected}"
                + (f"; see {info}" if info else "")
                + ". Opt in or out with the Asana-Enable / Asana-Disable header.",
                AsanaChangeWarning,
                stacklevel=4,
            )


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _parse_errors(body: bytes) -> tuple[list[Error], Optional[str]]:
    """Asana's ``{"errors": [...]}``, or a note saying what the body was instead."""
    if not body:
        return [], "empty body"
    try:
        data = json.loads(body)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested too deeply
        return [], f"the body is not JSON ({describe_body(body)})"
    raw = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        return [], "the body is JSON without Asana's 'errors' list"
    try:
        return structure(raw, list[Error]), None
    except Exception:
        return [], "the 'errors' list is malformed"


def _parse_changes(header: str) -> list[dict[str, str]]:
    changes: list[dict[str, str]] = []
    for item in header.split(","):
        fields: dict[str, str] = {}
        for part in item.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if fields:
            changes.append(fields)
    return changes
