"""Set-up from Django settings: one ``ASANA_WEBHOOKS`` dict names the inbox, store and handler.

::

    ASANA_WEBHOOKS = {
        "INBOX": "django",                      # or "django:ALIAS", "redis://...", "sqlite:///..."
        "SECRET_STORE": "django",               # the same forms; "django" is DjangoSecretStore
        "HANDLER": "myapp.webhooks:on_events",  # handler(events, target), run by the worker
        "WORKER": {"LEASE": 30, "MAX_ATTEMPTS": 5, "CONCURRENCY": 1},
    }

Every key is optional. Without ``INBOX`` the view calls ``HANDLER`` inside the request, as a
receiver without an inbox does. The view (``asana_webhooks.contrib.django.urls``) and the
management command ``asana_webhooks_worker`` read these settings; so can your own code,
through the functions below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

if TYPE_CHECKING:
    from asana_webhooks._inbox import Inbox
    from asana_webhooks._receiver import WebhookReceiver
    from asana_webhooks._secrets import SecretStore
    from asana_webhooks._worker import Worker

__all__ = [
    "handler_from_settings",
    "inbox_from_settings",
    "receiver_from_settings",
    "secret_store_from_settings",
    "worker_from_settings",
]

SETTING = "ASANA_WEBHOOKS"
_KEYS = frozenset(
    {"INBOX", "SECRET_STORE", "HANDLER", "WORKER", "ACCEPT_UNANNOUNCED_HANDSHAKES", "RECONCILE"}
)
# Worker setting -> Worker keyword.
_WORKER_KEYS = {
    "LEASE": "lease",
    "MAX_ATTEMPTS": "max_attempts",
    "CONCURRENCY": "concurrency",
    "BATCH_SIZE": "batch_size",
    "BACKOFF": "backoff",
    "MAX_BACKOFF": "max_backoff",
    "POLL_INTERVAL": "poll_interval",
}


def _improperly(message: str) -> Exception:
    from django.core.exceptions import ImproperlyConfigured

    return ImproperlyConfigured(f"settings.{SETTING}: {message}")  # type: ignore[no-any-return]


def _settings() -> Mapping[str, Any]:
    from django.conf import settings

    config = getattr(settings, SETTING, {})
    if not isinstance(config, Mapping):
        raise _improperly(f"must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - _KEYS)
    if unknown:
        raise _improperly(f"unknown keys {unknown}; known: {sorted(_KEYS)}")
    return config


def _open(kind: str, url: str) -> Any:
    if not isinstance(url, str) or not url:
        raise _improperly(f"{kind} must be a non-empty string, got {url!r}")
    scheme, _, alias = url.partition(":")
    if scheme == "django" and "/" not in alias:
        if kind == "INBOX":
            from asana_webhooks.contrib.django.inbox import DjangoInbox

            return DjangoInbox(using=alias or None)
        from asana_webhooks.contrib.django.store import DjangoSecretStore

        return DjangoSecretStore(using=alias or None)
    from asana_webhooks._urls import InvalidURLError, open_inbox, open_secret_store

    try:
        return open_inbox(url) if kind == "INBOX" else open_secret_store(url)
    except InvalidURLError as exc:
        raise _improperly(f"{kind}: {exc}") from None


def inbox_from_settings() -> Optional[Inbox]:
    """The inbox ``INBOX`` names, or None when it is not set."""
    url = _settings().get("INBOX")
    return None if url is None else _open("INBOX", url)


def secret_store_from_settings() -> SecretStore:
    """The secret store ``SECRET_STORE`` names (default ``"django"``: DjangoSecretStore)."""
    return _open("SECRET_STORE", _settings().get("SECRET_STORE", "django"))  # type: ignore[no-any-return]


def handler_from_settings() -> Callable[..., Any]:
    """The function ``HANDLER`` names, as ``"module:function"`` (or ``"module.function"``)."""
    spec = _settings().get("HANDLER")
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    if not isinstance(spec, str) or not spec:
        raise _improperly('HANDLER must name your handler, e.g. "myapp.webhooks:on_events"')
    from asana_webhooks._worker import resolve_handler

    try:
        return resolve_handler(spec, dotted=True)
    except ValueError as exc:
        raise _improperly(f"HANDLER: {exc}") from None


def receiver_from_settings() -> WebhookReceiver:
    """A receiver over the settings' secret store, storing into the inbox if there is one.

    Without ``INBOX``, ``HANDLER`` (if set) is called within the request as ``on_events``.
    """
    from asana_webhooks._receiver import WebhookReceiver

    config = _settings()
    inbox = inbox_from_settings()
    on_events = None if inbox is not None or "HANDLER" not in config else handler_from_settings()
    return WebhookReceiver(
        secret_store_from_settings(),
        on_events,
        inbox=inbox,
        accept_unannounced_handshakes=bool(config.get("ACCEPT_UNANNOUNCED_HANDSHAKES", False)),
    )


def worker_from_settings(**overrides: Any) -> Worker:
    """A ``Worker`` for the settings' inbox and handler; ``overrides`` are Worker keywords."""
    from asana_webhooks._worker import Worker

    config = _settings()
    inbox = inbox_from_settings()
    if inbox is None:
        raise _improperly('a worker needs an INBOX, e.g. "django"')
    options = config.get("WORKER", {})
    if not isinstance(options, Mapping):
        raise _improperly("WORKER must be a dict")
    unknown = sorted(set(options) - set(_WORKER_KEYS))
    if unknown:
        raise _improperly(f"unknown WORKER keys {unknown}; known: {sorted(_WORKER_KEYS)}")
    keywords = {_WORKER_KEYS[name]: value for name, value in options.items()}
    keywords.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Worker(inbox, handler_from_settings(), **keywords)
    except ValueError as exc:
        raise _improperly(f"WORKER: {exc}") from None
