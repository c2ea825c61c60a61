"""The webhook payloads, named as in Asana's generated client.

Every field but ``gid`` may be missing or null in real responses, so every other field
is ``Optional`` with a ``None`` default. Keys a response carries that a model does not
declare (Asana adds fields, ``is_workspace_webhook`` for one) are kept in the model's
``additional_properties``, the name Asana's generated clients use, as a read-only mapping.
Classes are slotted and mutable (``attrs.define``):
immutability buys nothing here and frozen ``__init__`` is measurably slower on the hot path.
Annotations use ``typing.Optional`` because cattrs resolves them at run time on Python 3.9.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Optional

import attrs

from asana_webhooks._display import Displayable
from asana_webhooks._errors import Error, ErrorResponse

NO_UNKNOWN_KEYS: Mapping[str, Any] = MappingProxyType({})


class KeepsUnknownKeys:
    """A response model: keys Asana sent that it does not declare are kept aside.

    Not an attrs field, on purpose: msgspec then never touches it (a field every body lacks
    made its decoding half again as slow), and ``==`` compares what the models declare, so a
    filter Asana returns with a new key still equals the one you declared.
    """

    __slots__ = ("_unknown_keys",)
    _unknown_keys: dict[str, Any]  # set only when there are some; read through the proxy

    @property
    def additional_properties(self) -> Mapping[str, Any]:
        """The keys of the response this model does not declare, with their JSON values.

        Read-only and empty when there were none. Asana's generated clients use the same
        name; requests never send these keys back.
        """
        try:
            return MappingProxyType(self._unknown_keys)
        except AttributeError:  # the slot is only set when there are unknown keys
            return NO_UNKNOWN_KEYS


def keep_unknown_keys(
    model: KeepsUnknownKeys, value: dict[str, Any], known: frozenset[str]
) -> None:
    """Keep the keys of ``value`` (the JSON object ``model`` was read from) not in ``known``."""
    unknown = {key: item for key, item in value.items() if key not in known}
    if unknown:
        model._unknown_keys = unknown


@attrs.define(slots=True)
class AsanaNamedResource(KeepsUnknownKeys):
    """A compact Asana object: the resource a webhook watches."""

    gid: str
    resource_type: Optional[str] = None
    name: Optional[str] = None


@attrs.define(slots=True)
class WebhookFilter(Displayable, KeepsUnknownKeys):
    """One entry of a webhook's whitelist; an event passing any filter is delivered.

    ``fields`` is only valid with ``action="changed"``, and not on workspace, team or
    portfolio webhooks.
    """

    resource_type: Optional[str] = None
    resource_subtype: Optional[str] = None
    action: Optional[str] = None
    fields: Optional[list[str]] = None


@attrs.define(slots=True)
class WebhookResponse(Displayable, KeepsUnknownKeys):
    """A webhook as Asana returns it (the compact form in listings carries fewer fields)."""

    gid: str
    resource_type: Optional[str] = None
    active: Optional[bool] = None
    resource: Optional[AsanaNamedResource] = None
    target: Optional[str] = None
    created_at: Optional[_dt.datetime] = None
    last_failure_at: Optional[_dt.datetime] = None
    last_failure_content: Optional[str] = None
    last_success_at: Optional[_dt.datetime] = None
    delivery_retry_count: Optional[int] = None
    next_attempt_after: Optional[_dt.datetime] = None
    failure_deletion_timestamp: Optional[_dt.datetime] = None
    filters: Optional[list[WebhookFilter]] = None


@attrs.define(slots=True)
class NextPage(KeepsUnknownKeys):
    """Where the next page starts; ``None`` in a response when there are no more pages."""

    offset: Optional[str] = None
    path: Optional[str] = None
    uri: Optional[str] = None


@attrs.define(slots=True)
class WebhookRequest:
    """What ``create_webhook`` sends: the gid to watch, the URL to deliver to, filters."""

    resource: str
    target: str
    filters: Optional[list[WebhookFilter]] = None


@attrs.define(slots=True)
class WebhookUpdateRequest:
    """What ``update_webhook`` sends: the new filters, which replace the old ones whole."""

    filters: Optional[list[WebhookFilter]] = None


@attrs.define(slots=True)
class CreateWebhookRequest:
    """The body of ``create_webhook``: ``{"data": WebhookRequest}``."""

    data: Optional[WebhookRequest] = None


@attrs.define(slots=True)
class UpdateWebhookRequest:
    """The body of ``update_webhook``: ``{"data": WebhookUpdateRequest}``."""

    data: Optional[WebhookUpdateRequest] = None


@attrs.define(slots=True)
class CreateWebhook201Response(Displayable, KeepsUnknownKeys):
    """The answer to ``create_webhook``.

    ``x_hook_secret`` is the body's top-level ``X-Hook-Secret``: the secret Asana signs every
    delivery with. Asana's own SDKs drop it; compare it with the handshake's before trusting it.
    """

    data: Optional[WebhookResponse] = None
    x_hook_secret: Optional[str] = attrs.field(default=None, repr=False)


@attrs.define(slots=True)
class GetWebhook200Response(Displayable, KeepsUnknownKeys):
    """The answer to ``get_webhook`` and ``update_webhook``: ``{"data": WebhookResponse}``."""

    data: Optional[WebhookResponse] = None


@attrs.define(slots=True)
class GetWebhooks200Response(Displayable, KeepsUnknownKeys):
    """One page of ``get_webhooks``; ``next_page`` is ``None`` on the last page."""

    data: list[WebhookResponse] = attrs.field(factory=list)
    next_page: Optional[NextPage] = None


@attrs.define(slots=True)
class EmptyResponse(KeepsUnknownKeys):
    """The answer to ``delete_webhook``: ``{"data": {}}``.

    The generated client calls this ``DeleteAllocation200Response``; both names work.
    """

    data: dict[str, Any] = attrs.field(factory=dict)


DeleteAllocation200Response = EmptyResponse

__all__ = [
    "AsanaNamedResource",
    "CreateWebhook201Response",
    "CreateWebhookRequest",
    "DeleteAllocation200Response",
    "EmptyResponse",
    "Error",
    "ErrorResponse",
    "GetWebhook200Response",
    "GetWebhooks200Response",
    "NextPage",
    "UpdateWebhookRequest",
    "WebhookFilter",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookUpdateRequest",
]
