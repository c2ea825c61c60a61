"""Configuration: where Asana is, how to authenticate, how long to wait, how to retry."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any, Optional

import attrs

from asana_webhooks._auth import Credential, as_credential, optional_credential
from asana_webhooks._retry import RetryPolicy
from asana_webhooks._transport import Timeout, to_timeout
from asana_webhooks._version import __version__

DEFAULT_HOST = "https://app.asana.com/api/1.0"
DEFAULT_USER_AGENT = f"asana-webhooks/{__version__} (python {platform.python_version()})"


def _hidden(value: Any) -> str:
    return "None" if value is None else "'***'"


def _host(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"host must be a URL string, not {type(value).__name__}")
    return value.rstrip("/")


def _access_token(value: Any) -> Optional[str | Credential]:
    """A token string as is; a callable (or a ``Credential``) becomes a token provider that
    is asked before every request. Anything else is refused: it must never be sent as text
    (``Bearer <function <lambda> at 0x...>``)."""
    if value is None or isinstance(value, str):
        return value
    if callable(value) or isinstance(value, Credential):
        return as_credential(value)
    raise TypeError(
        "access_token must be a token string, or a callable returning one, "
        f"not {type(value).__name__}"
    )


def _default_headers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError('default_headers must be a dict of strings, like {"Asana-Enable": "x"}')
    return dict(value)


def _bool(name: str) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {value!r}")

    return check


@attrs.define(slots=True, kw_only=False)
class Configuration:
    """Settings shared by every call of an ``ApiClient``.

    Mirrors the generated client: ``Configuration(host=...)`` then
    ``configuration.access_token = "..."`` works. The token never appears in a repr.

    - ``timeout``: a ``Timeout(connect, read)``, one number, or a pair; always finite. The
      read timeout covers ``create_webhook``, which waits for Asana's handshake with you.
    - ``retry``: a ``RetryPolicy``; ``RetryPolicy.off()`` turns retrying off.
    - ``default_headers``: sent on every request, e.g. ``{"Asana-Enable": "new_goal_memberships"}``.
    - ``verify_ssl`` / ``ssl_ca_cert`` / ``cert``: TLS settings. Turning verification off warns.
    - ``proxy``: a proxy URL; by default proxies come from the environment.
    - ``pool_maxsize``: connections kept per host, sized for threaded servers.
    - ``fast_json``: decode with msgspec when the ``speed`` extra is installed.
    - ``access_token``: a token string, or a callable returning one (a token provider,
      asked before every request; what it returns must be a non-empty ``str``).
    - ``token_provider`` (keyword only): instead of a fixed ``access_token``, a callable
      returning the current token (asked before every attempt) or a ``Credential`` such as
      ``OAuthToken``, which refreshes itself. When set, ``access_token`` is not used.
    """

    host: str = attrs.field(default=DEFAULT_HOST, converter=_host)
    access_token: Optional[str | Credential] = attrs.field(
        default=None, converter=_access_token, repr=_hidden
    )
    timeout: Timeout = attrs.field(factory=Timeout, converter=to_timeout)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    default_headers: dict[str, str] = attrs.field(factory=dict, converter=_default_headers)
    user_agent: str = DEFAULT_USER_AGENT
    verify_ssl: bool = attrs.field(default=True, validator=_bool("verify_ssl"))
    ssl_ca_cert: Optional[str] = None
    cert: Optional[str | tuple[str, str]] = None
    proxy: Optional[str] = None
    trust_env: bool = attrs.field(default=True, validator=_bool("trust_env"))
    pool_maxsize: int = 32
    fast_json: bool = attrs.field(default=True, validator=_bool("fast_json"))
    token_provider: Optional[Credential] = attrs.field(
        default=None, converter=optional_credential, repr=_hidden, kw_only=True
    )

    def __attrs_post_init__(self) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise ValueError(f"host must be an http(s) URL, not {self.host!r}")
