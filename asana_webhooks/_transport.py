"""Transports: the one object that moves bytes to Asana and back.

A transport sends a plain ``Request`` and returns a plain ``Response``; authentication,
retries, errors and JSON stay in the client. Backend exceptions are mapped to ours in one
place per backend, and each mapping records whether the request provably never left.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import select
import socket
import ssl
import sys
import threading
import time
import types
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import attrs
import certifi
import requests
import requests.adapters
import urllib3
import urllib3._version
import urllib3.connection
from requests.structures import CaseInsensitiveDict
from urllib3._collections import HTTPHeaderDict

from asana_webhooks._deadline import LIMITS, DeadlinePassed, DeadlineResponse, bound, remaining
from asana_webhooks._errors import ApiConnectionError, ApiTimeoutError, InvalidRequestError


@attrs.frozen(slots=True)
class Timeout:
    """Seconds to wait: for a connection, for each read of the answer, and for the whole
    attempt. Never unbounded.

    The read default is long because ``create_webhook`` does not answer until Asana's
    handshake with your server has finished. ``total`` bounds one attempt from connect to
    the last byte of the answer, however the server paces its bytes (a server dripping one
    byte a second never trips a read timeout); ``None`` means ``connect + read``. The retry
    budget (``RetryPolicy.max_time``) bounds the whole call on top of it.
    """

    connect: float = 10.0
    read: float = 60.0
    total: Optional[float] = None

    def __attrs_post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is None and name == "total":
                continue
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) and 0 < value < float("inf")
            ):
                raise ValueError(f"Timeout.{name} must be a finite number of seconds > 0")

    @property
    def attempt(self) -> float:
        """Seconds one attempt may take in all: ``total``, or ``connect + read``."""
        return self.total if self.total is not None else self.connect + self.read


def to_timeout(value: Any) -> Timeout:
    """Accept a ``Timeout``, one number for both, or a ``(connect, read)`` pair."""
    if isinstance(value, Timeout):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Timeout(connect=float(value), read=float(value))
    if isinstance(value, tuple) and len(value) == 2:
        return Timeout(connect=float(value[0]), read=float(value[1]))
    raise TypeError("timeout must be a Timeout, a number of seconds, or a (connect, read) pair")


@attrs.define(slots=True)
class Request:
    """What the client asks a transport to send."""

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # holds the token
    body: Optional[bytes] = attrs.field(default=None, repr=False)
    timeout: Timeout = attrs.field(factory=Timeout)
    #: When the whole call must be over (``time.monotonic()`` seconds), e.g. the end of the
    #: retry budget; an attempt gives up by then even if its own timeout is longer.
    deadline: Optional[float] = None


def attempt_deadline(request: Request) -> float:
    """When this attempt must be over: its own ``Timeout.attempt`` from now, or the
    request's ``deadline`` if that is sooner. Raises ``ApiTimeoutError`` (nothing sent) when
    no time is left at all."""
    deadline = time.monotonic() + request.timeout.attempt
    if request.deadline is not None and request.deadline < deadline:
        deadline = request.deadline
        if deadline <= time.monotonic():
            raise ApiTimeoutError(
                f"no time left for {_describe(request)}: the call's time budget is spent",
                request_sent=False,
            )
    return deadline


def _headers(value: Any) -> Mapping[str, str]:
    # Header names are case-insensitive; the backends' own mappings already are.
    if isinstance(value, (CaseInsensitiveDict, HTTPHeaderDict)):
        return value
    return CaseInsensitiveDict(value or {})


@attrs.define(slots=True)
class Response:
    """What a transport hands back: status, case-insensitive headers, the body bytes."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers, repr=False)
    body: bytes = attrs.field(default=b"", repr=False)
    reason: str = ""


@runtime_checkable
class Transport(Protocol):
    """Send one request, return one response; ``close()`` releases connections.

    A transport of your own should give up by ``request.timeout.attempt`` seconds after it
    starts and by ``request.deadline`` (``attempt_deadline(request)`` computes the sooner),
    and raise ``ApiConnectionError(request_sent=False)`` only when the request provably
    never left (the connection could not be made).
    """

    def handle_request(self, request: Request) -> Response: ...

    def close(self) -> None: ...


# Present in urllib.request on every Python we support, missing from typeshed.
_proxy_bypass: Callable[[str], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


def _proxy_for(
    proxies: Mapping[str, str], trust_env: bool, scheme: str, host: str
) -> Optional[str]:
    """The proxy to reach ``host`` over ``scheme``: ``proxies`` first, then (with
    ``trust_env``) ``HTTP(S)_PROXY`` unless ``NO_PROXY`` names the host. None for direct."""
    proxy = proxies.get(scheme)
    if proxy is None and trust_env and not _proxy_bypass(host):
        proxy = urllib.request.getproxies_environment().get(scheme)
    return proxy or None


def _request_target(url: str, cut: int) -> str:
    """What to send on a connection: a pool or connection that knows the origin gets the
    path and query (the URL less its first ``cut`` characters); a proxy (``cut`` 0) gets
    the whole URL."""
    if not cut:
        return url
    target = url[cut:]
    return target if target.startswith("/") else "/" + target


class InsecureTransportWarning(UserWarning):
    """TLS certificate verification is turned off."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _warn_if_unverified(verify: bool | str) -> None:
    """Warn when verification is off, pointing at the caller's line outside this package."""
    if verify is not False:
        return
    level = 1
    frame: Optional[types.FrameType] = sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        "TLS certificate verification is off: anyone on the network path can read "
        "your token and forge Asana's answers",
        InsecureTransportWarning,
        stacklevel=level,
    )


def _env_ca_bundle() -> Optional[str]:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class RequestsTransport:
    """The default transport, on ``requests``.

    A plain ``Session.request`` re-reads proxy, netrc and certificate settings from the
    environment on every call; here they are resolved once per origin and the adapter is
    called directly, which is both faster and predictable in a long-lived process.
    ``pool_maxsize`` is sized for threaded servers sharing one client.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        cert: Optional[str | tuple[str, str]] = None,
        proxies: Optional[Mapping[str, str]] = None,
        trust_env: bool = True,
        pool_connections: int = 4,
        pool_maxsize: int = 32,
        session: Optional[requests.Session] = None,
    ) -> None:
        _warn_if_unverified(verify)
        self._session = session or requests.Session()
        self._session.trust_env = trust_env
        adapter = _Adapter(
            pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._verify = verify
        self._cert = cert
        self._proxies = dict(proxies or {})
        self._per_origin: dict[str, tuple[requests.adapters.BaseAdapter, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _for_origin(self, url: str) -> tuple[requests.adapters.BaseAdapter, dict[str, Any]]:
        scheme, netloc = urllib.parse.urlsplit(url)[:2]
        origin = f"{scheme}://{netloc}"
        cached = self._per_origin.get(origin)
        if cached is not None:
            return cached
        # stream=True: handle_request reads the body itself, in one piece (_read_body).
        settings = self._session.merge_environment_settings(
            origin, self._proxies, True, self._verify, self._cert
        )
        if self._verify is True and self._session.trust_env and _env_ca_bundle():
            settings["verify"] = _env_ca_bundle()
        found = (self._session.get_adapter(origin), dict(settings))
        with self._lock:
            self._per_origin[origin] = found
        return found

    def handle_request(self, request: Request) -> Response:
        try:
            adapter, settings = self._for_origin(request.url)
        except requests.exceptions.RequestException as exc:  # InvalidSchema: nothing sent
            raise InvalidRequestError(
                f"RequestsTransport cannot send {_describe(request)}: {exc}"
            ) from None
        # PreparedRequest.prepare() in its order, less the cookie jar it would build and
        # consult on every call (a third of its cost): a transport sends no cookies.
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method)
        prepared.prepare_url(request.url, None)
        prepared.prepare_headers(request.headers)
        prepared.prepare_body(request.body, None)
        prepared.prepare_auth(None, request.url)
        prepared.prepare_hooks(None)
        timeout = request.timeout
        limits = LIMITS.set((attempt_deadline(request), timeout.read))
        try:
            with _mapped_requests_errors(request):
                raw = adapter.send(prepared, timeout=(timeout.connect, timeout.read), **settings)
                body = _read_body(raw)
        finally:
            LIMITS.reset(limits)
        return Response(status=raw.status_code, headers=raw.headers, body=body, reason=raw.reason)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RequestsTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_body(response: requests.Response) -> bytes:
    """The whole body in one read, raising what ``response.content`` would.

    ``.content`` reads in 10 KB pieces, each through urllib3's streaming machinery: on a
    100-webhook page that is a third of the transport's CPU.
    """
    try:
        return response.raw.read(decode_content=True) or b""
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


#: Set on an exception raised while a connection was being made (TCP connect, proxy
#: CONNECT, TLS handshake): the request cannot have left then.
_NEVER_SENT = "_asana_webhooks_never_sent"


def _mark_never_sent(exc: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # every exception has a __dict__
        setattr(exc, _NEVER_SENT, True)


def _never_sent(exc: BaseException) -> bool:
    """True when a backend error proves the request never reached the server.

    Only a failure while connecting proves that: the connection classes below mark what
    ``connect()`` raised. An ``SSLError`` is *not* proof by itself: a TLS record corrupted
    while the answer is read comes after the request was written.
    """
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, _NEVER_SENT, False) or isinstance(
            current,
            (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
                requests.exceptions.ConnectTimeout,
            ),
        ):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        current = nested or current.__cause__ or current.__context__
    return False


def _deadline_passed(exc: BaseException) -> bool:
    """True when the attempt's total deadline (not a single read) is what ran out."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DeadlinePassed):
            return True
        args = getattr(current, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            nested = nested or reason
        current = nested or current.__cause__ or current.__context__
    return False


def _timeout_error(exc: BaseException, request: Request, sent: bool) -> ApiTimeoutError:
    """The one wording of a timeout, whichever backend raised it."""
    where = _describe(request)
    if _deadline_passed(exc):
        if request.deadline is not None and time.monotonic() >= request.deadline - 0.01:
            message = f"gave up on {where}: the call's time budget (RetryPolicy.max_time) ran out"
        else:
            limit = request.timeout.attempt
            message = f"gave up on {where}: the attempt's total timeout ({limit}s) ran out"
    elif sent:
        message = f"read timeout after {request.timeout.read}s on {where}"
    else:
        message = f"connect timeout after {request.timeout.connect}s on {where}"
    return ApiTimeoutError(message, request_sent=sent)


def _connect_within_deadline(connection: Any, connect: Callable[[], None]) -> None:
    """``connect()`` within the current attempt's deadline; what it raises is marked as
    "never sent" (nothing goes out before the connection is up)."""
    try:
        limits = LIMITS.get()
        if limits is not None:
            own = connection.timeout
            limit = own if isinstance(own, (int, float)) else limits[1]
            connection.timeout = remaining(limits[0], limit)
        connect()
    except BaseException as exc:
        _mark_never_sent(exc)
        raise


#: urllib3 2 gives a reused socket ``connection.timeout`` itself before sending; 1.26 does not.
_URLLIB3_SETS_SEND_TIMEOUT = not urllib3._version.__version__.startswith("1.")


def _send_within_deadline(connection: Any) -> None:
    """Before a request goes out on a connection: wait at most what is left to send it (a
    reused socket still has the timeout of its last read). Too late means nothing left."""
    limits = LIMITS.get()
    if limits is None:
        return
    own = connection.timeout
    try:
        limit = remaining(limits[0], own if isinstance(own, (int, float)) else limits[1])
    except DeadlinePassed as exc:
        _mark_never_sent(exc)
        raise
    connection.timeout = limit
    if connection.sock is not None and not _URLLIB3_SETS_SEND_TIMEOUT:
        bound(connection.sock, limits[0], limit)


class _Urllib3HTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's connection, connecting, sending and reading within the deadline."""

    response_class = DeadlineResponse

    def connect(self) -> None:
        _connect_within_deadline(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _send_within_deadline(self)
        super().request(*args, **kwargs)


class _Urllib3HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = DeadlineResponse

    def connect(self) -> None:
        _connect_within_deadline(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _send_within_deadline(self)
        super().request(*args, **kwargs)


class _Urllib3HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Urllib3HTTPConnection


class _Urllib3HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _Urllib3HTTPSConnection


#: What our pool managers (and requests' adapter) build pools from.
_POOL_CLASSES: dict[str, type[urllib3.HTTPConnectionPool]] = {
    "http": _Urllib3HTTPPool,
    "https": _Urllib3HTTPSPool,
}


def _use_our_pools(manager: Any) -> Any:
    """Give a urllib3 ``PoolManager``/``ProxyManager`` our pool classes (not a SOCKS one:
    its pools have connection classes of their own)."""
    if type(manager) in (urllib3.PoolManager, urllib3.ProxyManager):
        manager.pool_classes_by_scheme = _POOL_CLASSES
    return manager


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, building its pools from our classes."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _use_our_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        fresh = proxy not in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if fresh:
            _use_our_pools(manager)
        return manager


def _proxy_authorization(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` for a proxy URL's ``user:password@``, else nothing."""
    via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if via.username is None:
        return {}
    user = urllib.parse.unquote(via.username)
    password = urllib.parse.unquote(via.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Proxy-Authorization": f"Basic {token}"}


def _describe(request: Request) -> str:
    # Method and path only: the query may be long, and nothing secret travels in the URL,
    # but a short message reads better in logs.
    return f"{request.method} {urllib.parse.urlsplit(request.url).path}"


@contextlib.contextmanager
def _mapped_requests_errors(request: Request) -> Iterator[None]:
    try:
        yield
    except requests.exceptions.Timeout as exc:  # ConnectTimeout and ReadTimeout
        raise _timeout_error(exc, request, sent=not _never_sent(exc)) from exc
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as exc:
        # Refused before anything was sent: a proxy scheme requests cannot speak (socks
        # without PySocks), a malformed proxy URL.
        raise InvalidRequestError(
            f"RequestsTransport cannot send {_describe(request)}: {exc}"
        ) from None
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as exc:
        if _deadline_passed(exc):
            raise _timeout_error(exc, request, sent=True) from exc
        raise ApiConnectionError(
            f"connection broke while reading the response to {_describe(request)}",
            request_sent=True,
        ) from exc
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _connection_error(exc, request) from exc


def _connection_error(exc: BaseException, request: Request) -> ApiConnectionError:
    """A urllib3 or requests failure other than a plain timeout, classified by whether the
    connection was up (only then may the request have left)."""
    sent = not _never_sent(exc)
    if _deadline_passed(exc):
        return _timeout_error(exc, request, sent)
    what = "connection failed" if sent else "could not connect"
    return ApiConnectionError(
        f"{what} on {_describe(request)}: {type(exc).__name__}", request_sent=sent
    )


class Urllib3Transport:
    """urllib3 directly, without requests' session machinery (requests brings urllib3 along,
    so no new dependency). ``HTTPClientTransport`` is faster still; this one is for code
    that already tunes urllib3.

    Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) and are resolved
    once per origin.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        cert: Optional[str | tuple[str, str]] = None,
        proxies: Optional[Mapping[str, str]] = None,
        trust_env: bool = True,
        pool_connections: int = 4,
        pool_maxsize: int = 32,
    ) -> None:
        _warn_if_unverified(verify)
        pool_kwargs: dict[str, Any] = {
            "num_pools": pool_connections,
            "maxsize": pool_maxsize,
            "block": False,
            "retries": False,
        }
        ca_bundle = verify if isinstance(verify, str) else (_env_ca_bundle() if trust_env else None)
        if verify is False:
            pool_kwargs["cert_reqs"] = "CERT_NONE"
        else:
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            if ca_bundle:
                pool_kwargs["ca_certs"] = ca_bundle
        if isinstance(cert, tuple):
            pool_kwargs["cert_file"], pool_kwargs["key_file"] = cert
        elif cert:
            pool_kwargs["cert_file"] = cert
        self._pool_kwargs = pool_kwargs
        self._proxies = dict(proxies or {})
        self._trust_env = trust_env
        # origin -> what sends there: a connection pool of our own when no proxy is in the
        # way (a PoolManager would parse the URL and look the pool up again on every call,
        # a quarter of the client CPU of a small request), else a ProxyManager.
        self._routes: dict[str, tuple[Any, int]] = {}
        self._timeouts: dict[Timeout, urllib3.Timeout] = {}
        self._lock = threading.Lock()

    def _route(self, url: str) -> tuple[Any, int]:
        """``(sender, cut)`` for the URL's origin, resolved once per origin.

        ``cut`` is how much of the URL to drop: the origin, when the sender is a pool that
        knows it; nothing for a proxy, which is sent the whole URL.
        """
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        route = self._routes.get(origin)
        if route is None:
            if parts.scheme not in _POOL_CLASSES:
                raise InvalidRequestError(f"Urllib3Transport sends http and https, not {url!r}")
            proxy = _proxy_for(self._proxies, self._trust_env, parts.scheme, parts.hostname or "")
            if proxy:
                # urllib3 takes no credentials from the proxy URL: send them as requests and
                # http.client do.
                try:
                    manager = urllib3.ProxyManager(
                        proxy, proxy_headers=_proxy_authorization(proxy), **self._pool_kwargs
                    )
                except ValueError as exc:  # ProxySchemeUnknown, a malformed proxy URL
                    scheme = urllib.parse.urlsplit(proxy).scheme or "?"
                    raise InvalidRequestError(  # never the proxy URL: it may hold a password
                        f"Urllib3Transport cannot use the {scheme} proxy for {origin} "
                        f"({type(exc).__name__}); it speaks http:// and https:// proxies"
                    ) from None
                route = (_use_our_pools(manager), 0)
            else:
                route = (self._new_pool(origin), len(origin))
            with self._lock:
                route = self._routes.setdefault(origin, route)
        return route

    def _new_pool(self, origin: str) -> urllib3.HTTPConnectionPool:
        # What PoolManager does for a new origin: TLS settings only for https.
        parsed = urllib3.util.parse_url(origin)
        kwargs = dict(self._pool_kwargs)
        del kwargs["num_pools"]
        if parsed.scheme == "http":
            for name in urllib3.poolmanager.SSL_KEYWORDS:
                kwargs.pop(name, None)
        pool_class = _POOL_CLASSES[parsed.scheme or "http"]
        pool: urllib3.HTTPConnectionPool = pool_class(parsed.host or "", parsed.port, **kwargs)
        return pool

    def _timeout(self, timeout: Timeout) -> urllib3.Timeout:
        found = self._timeouts.get(timeout)
        if found is None:
            found = urllib3.Timeout(connect=timeout.connect, read=timeout.read)
            if len(self._timeouts) < 16:  # a handful of distinct timeouts in practice
                self._timeouts[timeout] = found
        return found

    def handle_request(self, request: Request) -> Response:
        sender, cut = self._route(request.url)
        limits = LIMITS.set((attempt_deadline(request), request.timeout.read))
        try:
            raw = sender.urlopen(
                request.method,
                _request_target(request.url, cut),
                body=request.body,
                headers=dict(request.headers),
                timeout=self._timeout(request.timeout),
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=True,
            )
        except urllib3.exceptions.TimeoutError as exc:  # connect and read timeouts
            raise _timeout_error(exc, request, sent=not _never_sent(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _connection_error(exc, request) from exc
        finally:
            LIMITS.reset(limits)
        return Response(
            status=raw.status, headers=raw.headers, body=raw.data, reason=raw.reason or ""
        )

    def close(self) -> None:
        with self._lock:
            senders = [sender for sender, _ in self._routes.values()]
            self._routes.clear()
        for sender in senders:
            if isinstance(sender, urllib3.PoolManager):
                sender.clear()
            else:
                sender.close()

    def __enter__(self) -> Urllib3Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MockTransport:
    """A transport that calls ``handler(request)`` instead of the network.

    Ships in the package so applications can test their own code::

        def handler(request):
            return Response(200, {}, b'{"data": {"gid": "1"}}')

        client = ApiClient(Configuration(access_token="t"), transport=MockTransport(handler))
        api = WebhooksApi(client)

    ``requests`` keeps every request seen, for assertions. A handler may also raise one of
    our errors (``ApiConnectionError``, say) to simulate a network failure.
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def handle_request(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
        return self.handler(request)

    def close(self) -> None:
        """Nothing to release."""


# --- the standard library's http.client ------------------------------------------------------

_logger = logging.getLogger("asana_webhooks")
_HAS_POLL = hasattr(select, "poll")  # select() cannot watch descriptors above 1023


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True when an idle keep-alive connection can no longer be used.

    An idle connection has nothing to read, so a readable socket means the server closed it
    (or sent something nobody asked for): either way it must not carry the next request.
    """
    sock = connection.sock
    if sock is None:
        return True
    try:
        if _HAS_POLL:
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _IdleConnections:
    """Idle keep-alive connections to one origin: last in, first out, bounded, never blocking.

    A caller that finds none opens a new connection; one given back beyond ``maxsize`` is
    closed, with urllib3's warning, so an undersized pool shows in the logs.
    """

    __slots__ = ("_closed", "_idle", "_lock", "_maxsize", "origin")

    def __init__(self, origin: str, maxsize: int) -> None:
        self.origin = origin
        self._maxsize = maxsize
        self._idle: list[http.client.HTTPConnection] = []
        self._closed = False
        self._lock = threading.Lock()

    def take(self) -> Optional[http.client.HTTPConnection]:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if not _dropped(connection):
                return connection
            connection.close()  # the server closed it while it sat idle: try the next one

    def give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._maxsize:
                self._idle.append(connection)
                return
            full = not self._closed
        connection.close()
        if full:
            _logger.warning(
                "Connection pool is full, discarding connection: %s. Connection pool size: %d",
                self.origin,
                self._maxsize,
            )

    def close(self) -> None:
        """Close every idle connection; connections given back later are closed too."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _Route:
    """How requests to one origin travel: straight there, tunnelled, or through a proxy."""

    __slots__ = ("absolute", "cut", "host", "idle", "port", "proxy_headers", "tls", "tunnel")

    def __init__(
        self,
        idle: _IdleConnections,
        host: str,
        port: Optional[int],
        *,
        tls: bool,
        cut: int,
        tunnel: Optional[tuple[str, Optional[int], dict[str, str]]] = None,
        proxy_headers: Optional[dict[str, str]] = None,
    ) -> None:
        self.idle = idle
        self.host = host  # what the socket connects to: the origin, or the proxy
        self.port = port
        self.tls = tls  # TLS on that socket (after the CONNECT, when tunnelled)
        self.cut = cut  # how much of the URL to drop: the origin, or nothing for a proxy
        self.absolute = cut == 0
        self.tunnel = tunnel  # (host, port, CONNECT headers) of an https origin behind a proxy
        self.proxy_headers = proxy_headers or {}  # sent with each request to a plain proxy


def _tls_context(
    verify: bool | str, cert: Optional[str | tuple[str, str]], trust_env: bool
) -> ssl.SSLContext:
    """Verification on unless ``verify=False``; the CA bundle requests would use by default."""
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = verify if isinstance(verify, str) else None
        if bundle is None and trust_env:
            bundle = _env_ca_bundle() or os.environ.get("SSL_CERT_FILE") or None
        bundle = bundle or certifi.where()
        if os.path.isdir(bundle):
            context = ssl.create_default_context(capath=bundle)
        else:
            context = ssl.create_default_context(cafile=bundle)
    context.set_alpn_protocols(["http/1.1"])
    if isinstance(cert, tuple):
        context.load_cert_chain(cert[0], cert[1])
    elif cert:
        context.load_cert_chain(cert)
    return context


def _joined_headers(message: http.client.HTTPMessage) -> HTTPHeaderDict:
    """Case-insensitive; a repeated header (Asana-Change) joined with ", " as urllib3 does.

    ``raw_items()`` gives what ``getheaders()`` would: http.client decodes the head as
    ISO-8859-1, so email's per-header re-sanitising changes nothing; skipping it halves the
    cost (~13 us instead of ~27 us for a handful of headers).
    """
    headers = HTTPHeaderDict()
    for name, value in message.raw_items():
        headers.add(name, value)
    return headers


def _http_client_error(exc: BaseException, request: Request, connected: bool) -> Exception:
    """The one place http.client's exceptions become ours.

    ``connected``: a connection to the server was up, so the request may have reached it.
    Before that (DNS, refused, connect timeout, TLS handshake, a proxy refusing the
    CONNECT) nothing was sent.
    """
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return _timeout_error(exc, request, sent=connected)
    what = "connection failed" if connected else "could not connect"
    return ApiConnectionError(
        f"{what} on {_describe(request)}: {type(exc).__name__}", request_sent=connected
    )


class _HTTPConnection(http.client.HTTPConnection):
    response_class = DeadlineResponse


class _HTTPSConnection(http.client.HTTPSConnection):
    response_class = DeadlineResponse


class HTTPClientTransport:
    """The leanest path: the standard library's ``http.client``, with a pool of our own.

    Same keywords as ``Urllib3Transport``. Keep-alive connections are kept per origin, last
    in first out, at most ``pool_maxsize`` idle; a thread that finds none opens a new one,
    never waits. A pooled connection the server has closed meanwhile is noticed before use
    and dropped. TLS is verified by default against the CA bundle requests uses (certifi,
    or ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` when ``trust_env``). Proxies come from
    ``proxies=`` or the environment, resolved once per origin; an https origin goes through
    an http proxy with ``CONNECT``. Responses are never compressed (``Accept-Encoding:
    identity``). Nothing starts a thread; constructing one opens no socket.
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        cert: Optional[str | tuple[str, str]] = None,
        proxies: Optional[Mapping[str, str]] = None,
        trust_env: bool = True,
        pool_connections: int = 4,
        pool_maxsize: int = 32,
    ) -> None:
        _warn_if_unverified(verify)
        self._verify = verify
        self._cert = cert
        self._proxies = dict(proxies or {})
        self._trust_env = trust_env
        self._pool_connections = max(1, pool_connections)
        self._pool_maxsize = pool_maxsize
        self._routes: dict[str, _Route] = {}
        self._context: Optional[ssl.SSLContext] = None  # made on the first https connection
        self._lock = threading.Lock()

    def _route(self, url: str) -> _Route:
        scheme, netloc = urllib.parse.urlsplit(url)[:2]
        origin = f"{scheme}://{netloc}"
        route = self._routes.get(origin)
        if route is not None:
            return route
        route = self._new_route(origin)
        evicted: list[_Route] = []
        with self._lock:
            route = self._routes.setdefault(origin, route)
            while len(self._routes) > self._pool_connections:  # the oldest origin goes
                evicted.append(self._routes.pop(next(iter(self._routes))))
        for old in evicted:
            old.idle.close()
        return route

    def _new_route(self, origin: str) -> _Route:
        parts = urllib.parse.urlsplit(origin)
        scheme, host, port = parts.scheme, parts.hostname or "", parts.port
        if scheme not in ("http", "https"):
            raise InvalidRequestError(f"HTTPClientTransport sends http and https, not {scheme!r}")
        idle = _IdleConnections(origin, self._pool_maxsize)
        tls = scheme == "https"
        proxy = _proxy_for(self._proxies, self._trust_env, scheme, host)
        if proxy is None:
            return _Route(idle, host, port, tls=tls, cut=len(origin))
        if "://" not in proxy:
            proxy = f"http://{proxy}"
        via = urllib.parse.urlsplit(proxy)
        if via.scheme not in ("http", "https") or (tls and via.scheme == "https"):
            raise InvalidRequestError(
                f"HTTPClientTransport cannot send {scheme} through a {via.scheme} proxy; "
                "use Urllib3Transport or RequestsTransport"
            )
        headers = _proxy_authorization(proxy)
        proxy_port = via.port or (443 if via.scheme == "https" else 80)
        if tls:  # CONNECT through the proxy, then TLS with the origin itself
            return _Route(
                idle,
                via.hostname or "",
                proxy_port,
                tls=True,
                cut=len(origin),
                tunnel=(host, port or 443, headers),
            )
        return _Route(
            idle,
            via.hostname or "",
            proxy_port,
            tls=via.scheme == "https",
            cut=0,
            proxy_headers=headers,
        )

    def _tls(self) -> ssl.SSLContext:
        context = self._context
        if context is None:
            context = _tls_context(self._verify, self._cert, self._trust_env)
            with self._lock:
                if self._context is None:
                    self._context = context
                context = self._context
        return context

    def _connect(self, route: _Route, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if route.tls:
            connection = _HTTPSConnection(
                route.host, route.port, timeout=timeout, context=self._tls()
            )
        else:
            connection = _HTTPConnection(route.host, route.port, timeout=timeout)
        if route.tunnel is not None:
            connection.set_tunnel(*route.tunnel)
        try:
            connection.connect()
        except BaseException:
            connection.close()  # a TLS handshake that failed leaves the plain socket open
            raise
        return connection

    def handle_request(self, request: Request) -> Response:
        route = self._route(request.url)
        target = _request_target(request.url, route.cut)
        # http.client adds "Accept-Encoding: identity" when the caller sets none: it does
        # not decompress, so no caller's gzip may reach the server.
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() != "accept-encoding"
        }
        if route.proxy_headers:
            headers.update(route.proxy_headers)
        timeout = request.timeout
        deadline = attempt_deadline(request)
        connection = route.idle.take()
        connected = connection is not None
        limits = LIMITS.set((deadline, timeout.read))
        try:
            if connection is None:
                # The TLS handshake too: CPython bounds a whole handshake by this timeout.
                connection = self._connect(route, remaining(deadline, timeout.connect))
                connected = True
            bound(connection.sock, deadline, timeout.read)
            connection.request(request.method, target, request.body, headers)
            answer = connection.getresponse()  # reads within the deadline (DeadlineResponse)
            body = answer.read()  # all of it, or IncompleteRead
        except (OSError, http.client.HTTPException) as exc:
            if connection is not None:
                connection.close()
            raise _http_client_error(exc, request, connected) from exc
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        finally:
            LIMITS.reset(limits)
        if answer.will_close:
            connection.close()
        else:
            route.idle.give_back(connection)
        return Response(answer.status, _joined_headers(answer.msg), body, answer.reason)

    def close(self) -> None:
        with self._lock:
            routes = list(self._routes.values())
            self._routes.clear()
        for route in routes:
            route.idle.close()

    def __enter__(self) -> HTTPClientTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
