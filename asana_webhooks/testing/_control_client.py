"""``FakeAsanaControl``: drive a stand-in running in another process (``asana-webhooks fake``).

Standard library only, so it works wherever the package imports; proxies from the
environment are ignored (the stand-in is on this machine).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit, urlunsplit

from asana_webhooks.testing._control import CONTROL_PATH

DEFAULT_TIMEOUT = 60.0


class FakeControlError(Exception):
    """The stand-in refused a control call, or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message if not status else f"{status}: {message}")
        self.status = status
        self.message = message


def control_url(url: str) -> str:
    """``http://127.0.0.1:8000/api/1.0`` (or the bare server URL) -> ``.../_fake``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http:// URL of a running stand-in: {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, CONTROL_PATH, "", ""))


class FakeAsanaControl:
    """A client for a running stand-in's control endpoint.

    ::

        control = FakeAsanaControl("http://127.0.0.1:8000/api/1.0", token)
        control.deliver()                       # a realistic event for every webhook
        control.take_offline("http://127.0.0.1:8080/hook")
        control.advance(25 * 3600)              # retries, heartbeats, the 24-hour deletion

    ``url`` is the stand-in's API URL (as ``asana-webhooks fake`` prints it) or its server
    URL; ``access_token`` is its token. Each call waits at most ``timeout`` seconds for the
    answer and raises ``FakeControlError`` when refused or unreachable. The methods mirror
    ``FakeAsana``'s and return its JSON answers (``deliveries`` lists what became of each).
    """

    def __init__(self, url: str, access_token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.url = control_url(url)
        self._token = access_token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"<FakeAsanaControl {self.url}>"

    def _call(self, method: str, name: str, body: Optional[dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - the URL was checked to be http(s)
            f"{self.url}/{name}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))["data"]
        except urllib.error.HTTPError as exc:
            raise FakeControlError(exc.code, _message(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            message = f"cannot reach the stand-in at {self.url}: {reason}"
            raise FakeControlError(0, message) from None
        except (ValueError, KeyError):
            raise FakeControlError(0, f"{self.url} did not answer like a stand-in") from None

    def status(self) -> dict[str, Any]:
        """The clock, every webhook (``pending``: events waiting for a retry), offline targets."""
        return dict(self._call("GET", "status"))

    def deliver(
        self,
        webhook: Optional[str] = None,
        *,
        resource: Optional[str] = None,
        count: int = 1,
        seed: Optional[int] = None,
        events: Optional[Sequence[dict[str, Any]]] = None,
    ) -> dict[str, Any]:
        """Make events happen: ``count`` realistic ones (or ``events``) on ``resource``, or
        sent straight to ``webhook``, or by default on the resource of every webhook."""
        body: dict[str, Any] = {"webhook": webhook, "resource": resource, "count": count}
        body["seed"] = seed
        if events is not None:
            body["events"] = [dict(event) for event in events]
        return dict(self._call("POST", "deliver", body))

    def heartbeat(self, webhook: Optional[str] = None) -> list[dict[str, Any]]:
        """Send the empty signed delivery to ``webhook`` (default: every webhook)."""
        return list(self._call("POST", "heartbeat", {"webhook": webhook})["deliveries"])

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the stand-in's clock forward, doing what falls due on the way."""
        return dict(self._call("POST", "advance", {"seconds": seconds}))

    def drop_deliveries(
        self,
        count: Optional[int] = None,
        *,
        fraction: Optional[float] = None,
        seed: Optional[int] = None,
        heartbeats: bool = False,
    ) -> None:
        body = {"count": count, "fraction": fraction, "seed": seed, "heartbeats": heartbeats}
        self._call("POST", "drop", body)

    def take_offline(self, target: str, seconds: Optional[float] = None) -> None:
        self._call("POST", "offline", {"target": target, "seconds": seconds})

    def bring_online(self, target: Optional[str] = None) -> None:
        self._call("POST", "online", {"target": target})

    def reset(self) -> None:
        self._call("POST", "reset", {})


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body.decode("utf-8"))["errors"][0]["message"])
    except (ValueError, KeyError, IndexError, TypeError):
        return body.decode("utf-8", "replace")[:200] or "no message"
