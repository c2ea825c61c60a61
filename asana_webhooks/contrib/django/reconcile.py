"""The reconciler from Django settings: ``ASANA_WEBHOOKS["RECONCILE"]`` names what to watch.

::

    ASANA_WEBHOOKS = {
        "INBOX": "sqlite:////var/lib/mysite/asana-inbox.sqlite3",  # the receiver's inbox
        "HANDLER": "myapp.webhooks:on_events",
        "RECONCILE": {
            "RESOURCES": ["1200000000000001"],       # tasks, projects or goals to watch
            "INTERVAL": 300,                          # seconds, for the long-running command
            "ACCESS_TOKEN": os.environ["ASANA_ACCESS_TOKEN"],  # or a callable returning one
            "ON_GAP": "myapp.sync:reread_resource",   # optional: on_gap(resource, since)
        },
    }

``manage.py asana_webhooks_reconcile`` runs it (``--once`` for cron or a Celery beat task);
``reconciler_from_settings()`` builds it for your own code, such as a Celery task.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from asana_webhooks.contrib.django.conf import _improperly, _settings, inbox_from_settings

if TYPE_CHECKING:
    from asana_webhooks._reconcile import Reconciler

__all__ = ["reconciler_from_settings"]

_RECONCILE_KEYS = frozenset({"RESOURCES", "INTERVAL", "ACCESS_TOKEN", "HOST", "ON_GAP"})


def reconciler_from_settings(
    *, resources: Optional[Sequence[str]] = None, interval: Optional[float] = None
) -> Reconciler:
    """A ``Reconciler`` over the settings' inbox for ``RECONCILE``'s resources.

    ``resources`` and ``interval`` override the settings. The token is ``ACCESS_TOKEN`` (a
    string or a callable returning one), else the ``ASANA_ACCESS_TOKEN`` environment variable.
    Close ``reconciler.inbox`` and ``reconciler.api.api_client`` when done.
    """
    from asana_webhooks._client import ApiClient
    from asana_webhooks._configuration import DEFAULT_HOST, Configuration
    from asana_webhooks._errors import InvalidRequestError
    from asana_webhooks._reconcile import DEFAULT_INTERVAL, Reconciler

    config = _settings().get("RECONCILE", {})
    if not isinstance(config, Mapping):
        raise _improperly("RECONCILE must be a dict")
    unknown = sorted(set(config) - _RECONCILE_KEYS)
    if unknown:
        raise _improperly(f"unknown RECONCILE keys {unknown}; known: {sorted(_RECONCILE_KEYS)}")
    watched = list(resources) if resources else config.get("RESOURCES")
    if not watched or isinstance(watched, str):
        raise _improperly('RECONCILE["RESOURCES"] must list the gids to watch')
    token: Any = config.get("ACCESS_TOKEN") or os.environ.get("ASANA_ACCESS_TOKEN", "").strip()
    if not token:
        raise _improperly('RECONCILE["ACCESS_TOKEN"] or $ASANA_ACCESS_TOKEN must give a token')
    inbox = inbox_from_settings()
    if inbox is None:
        raise _improperly("the reconciler needs an INBOX, the one the receiver writes to")
    host = config.get("HOST") or os.environ.get("ASANA_HOST") or DEFAULT_HOST
    try:
        configuration = (
            Configuration(host=host, token_provider=token)
            if callable(token)
            else Configuration(host=host, access_token=str(token))
        )
        return Reconciler(
            ApiClient(configuration),
            inbox,
            watched,
            interval=interval or config.get("INTERVAL", DEFAULT_INTERVAL),
            on_gap=_on_gap(config.get("ON_GAP")),
        )
    except (InvalidRequestError, ValueError) as exc:
        inbox.close()
        raise _improperly(f"RECONCILE: {exc}") from None


def _on_gap(spec: Any) -> Optional[Callable[..., Any]]:
    if spec is None or callable(spec):
        return spec  # type: ignore[no-any-return]
    if not isinstance(spec, str):
        raise _improperly(f'RECONCILE["ON_GAP"] must be "module:function", not {spec!r}')
    module_name, colon, attribute = spec.partition(":")
    if not colon:
        module_name, _, attribute = spec.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
    except (ImportError, ValueError) as exc:
        raise _improperly(f"ON_GAP {spec!r}: cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise _improperly(f"ON_GAP {spec!r} is not a function")
    return target  # type: ignore[no-any-return]
