"""WebhooksApi: Asana's five webhook operations, synchronous and typed, named as in the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Optional, TypeVar, Union

from asana_webhooks import _display
from asana_webhooks import _models as m
from asana_webhooks._client import ApiClient, Query
from asana_webhooks._converter import decode, unstructure
from asana_webhooks._errors import (
    BadRequestError,
    InvalidRequestError,
    InvalidResponseError,
    PaginationError,
)

T = TypeVar("T")

#: ``opt_fields`` as a list of names, a comma-separated string, or the generated client's
#: documented form: a list holding one string that spells a JSON array.
OptFields = Union[str, Sequence[str], None]

_default_client: Optional[ApiClient] = None


def _fields_query(opt_fields: OptFields) -> Optional[str]:
    if opt_fields is None:
        return None
    items: list[str] = []
    for entry in [opt_fields] if isinstance(opt_fields, str) else list(opt_fields):
        if not isinstance(entry, str):
            raise InvalidRequestError(f"opt_fields entries must be strings, got {entry!r}")
        text = entry.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise InvalidRequestError(
                    f"opt_fields entry is not a JSON array: {text!r}"
                ) from exc
            if not isinstance(parsed, list) or not all(isinstance(p, str) for p in parsed):
                raise InvalidRequestError(f"opt_fields entry is not an array of names: {text!r}")
            items.extend(parsed)
        else:
            items.extend(text.split(","))
    names = [name.strip() for name in items if name.strip()]
    return ",".join(dict.fromkeys(names)) if names else None


def _common_query(opt_pretty: Optional[bool], opt_fields: OptFields) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    if opt_pretty is not None:
        query.append(("opt_pretty", "true" if opt_pretty else "false"))
    fields = _fields_query(opt_fields)
    if fields:
        query.append(("opt_fields", fields))
    return query


def _gid(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or "/" in value or "?" in value:
        raise InvalidRequestError(f"{name} must be a gid string like '12345', got {value!r}")
    return value.strip()


class WebhooksApi:
    """Create, read, list, update and delete webhooks.

    The method names and parameters are those of Asana's generated client, made synchronous;
    ``iter_webhooks`` adds lazy pagination. Errors are ``AsanaError`` subclasses.
    """

    def __init__(self, api_client: Optional[ApiClient] = None) -> None:
        global _default_client
        if api_client is None:
            if _default_client is None:
                _default_client = ApiClient()
            api_client = _default_client
        self.api_client = api_client

    def _call(
        self,
        method: str,
        path: str,
        cls: type[T],
        query: Optional[Query] = None,
        body: Any = None,
    ) -> T:
        payload = None
        if body is not None:
            payload = json.dumps(unstructure(body), separators=(",", ":")).encode()
        client = self.api_client
        response = client.request(method, path, query=query, body=payload)
        try:
            return decode(response.body, cls, fast=client.configuration.fast_json)
        except InvalidResponseError as exc:
            raise InvalidResponseError(
                exc.problem, status=response.status, body=response.body, method=method, path=path
            ) from exc

    def create_webhook(
        self,
        create_webhook_request: m.CreateWebhookRequest,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
    ) -> m.CreateWebhook201Response:
        """Establish a webhook. Returns the webhook and the ``X-Hook-Secret`` Asana chose.

        Asana performs the handshake with ``target`` *while this call waits*: the receiver
        must answer from another thread or process, or this call times out.

        Not retried after an ambiguous failure (a 5xx or a connection lost after sending):
        the webhook may exist. ``establish_webhook(..., workspace=...)`` reconciles that.
        """
        if not isinstance(create_webhook_request, m.CreateWebhookRequest):
            raise InvalidRequestError("create_webhook_request must be a CreateWebhookRequest")
        data = create_webhook_request.data
        if data is None:
            raise InvalidRequestError(
                "create_webhook_request.data is missing: "
                "CreateWebhookRequest(data=WebhookRequest(resource=..., target=...))"
            )
        for name in ("resource", "target"):
            value = getattr(data, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidRequestError(f"create_webhook_request.data.{name} is required")
        return self._call(
            "POST",
            "/webhooks",
            m.CreateWebhook201Response,
            _common_query(opt_pretty, opt_fields),
            create_webhook_request,
        )

    def delete_webhook(
        self, webhook_gid: str, opt_pretty: Optional[bool] = None
    ) -> m.EmptyResponse:
        """Permanently remove a webhook. A delivery already in flight may still arrive."""
        return self._call(
            "DELETE",
            f"/webhooks/{_gid('webhook_gid', webhook_gid)}",
            m.EmptyResponse,
            _common_query(opt_pretty, None),
        )

    def get_webhook(
        self,
        webhook_gid: str,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
    ) -> m.GetWebhook200Response:
        """The full record of one webhook."""
        return self._call(
            "GET",
            f"/webhooks/{_gid('webhook_gid', webhook_gid)}",
            m.GetWebhook200Response,
            _common_query(opt_pretty, opt_fields),
        )

    def get_webhooks(
        self,
        workspace: str,
        opt_pretty: Optional[bool] = None,
        limit: Optional[int] = None,
        offset: Optional[str] = None,
        resource: Optional[str] = None,
        opt_fields: OptFields = None,
    ) -> m.GetWebhooks200Response:
        """One page of the webhooks your app registered for this user in ``workspace``.

        ``next_page`` is set only when ``limit`` was given and more pages exist.
        """
        query = [("workspace", _gid("workspace", workspace))]
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
                raise InvalidRequestError(f"limit must be an integer from 1 to 100, got {limit!r}")
            query.append(("limit", str(limit)))
        if offset is not None:
            if not isinstance(offset, str) or not offset:
                raise InvalidRequestError("offset must be a token from a previous next_page")
            query.append(("offset", offset))
        if resource is not None:
            query.append(("resource", _gid("resource", resource)))
        query.extend(_common_query(opt_pretty, opt_fields))
        return self._call("GET", "/webhooks", m.GetWebhooks200Response, query)

    def update_webhook(
        self,
        webhook_gid: str,
        update_webhook_request: m.UpdateWebhookRequest,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
    ) -> m.GetWebhook200Response:
        """Replace a webhook's filters (the whole list: filters not sent are dropped)."""
        if not isinstance(update_webhook_request, m.UpdateWebhookRequest):
            raise InvalidRequestError("update_webhook_request must be an UpdateWebhookRequest")
        if update_webhook_request.data is None:
            update_webhook_request = m.UpdateWebhookRequest(data=m.WebhookUpdateRequest())
        return self._call(
            "PUT",
            f"/webhooks/{_gid('webhook_gid', webhook_gid)}",
            m.GetWebhook200Response,
            _common_query(opt_pretty, opt_fields),
            update_webhook_request,
        )

    def iter_webhooks(
        self,
        workspace: str,
        resource: Optional[str] = None,
        page_size: int = 100,
        opt_fields: OptFields = None,
        *,
        offset: Optional[str] = None,
        progress: bool = False,
    ) -> Iterator[m.WebhookResponse]:
        """Every webhook in ``workspace``, fetched lazily one page at a time.

        Only one page is held in memory. Pass ``offset`` (a ``next_page.offset`` seen
        earlier) to resume. If Asana refuses an offset mid-way (offsets expire), a
        ``PaginationError`` says which offset failed and how many webhooks came before it.
        ``progress=True`` shows a running count as the listing goes (tqdm when installed,
        else one line on stderr).
        """
        if progress:
            listing = self.iter_webhooks(workspace, resource, page_size, opt_fields, offset=offset)
            yield from _display.with_progress(listing, "webhooks")
            return
        seen = 0
        while True:
            try:
                page = self.get_webhooks(
                    workspace,
                    limit=page_size,
                    offset=offset,
                    resource=resource,
                    opt_fields=opt_fields,
                )
            except BadRequestError as exc:
                if offset is None:
                    raise
                error = PaginationError(
                    exc.status,
                    exc.reason,
                    headers=exc.headers,
                    body=exc.body,
                    errors=exc.errors,
                    method=exc.method,
                    path=exc.path,
                    note=(
                        f"listing stopped after {seen} webhooks because offset {offset!r} "
                        "was refused (offsets expire); list again from the start"
                    ),
                )
                error.offset = offset
                error.items_seen = seen
                raise error from exc
            data = page.data
            next_offset = page.next_page.offset if page.next_page is not None else None
            del page
            for webhook in data:
                seen += 1
                yield webhook
            if not next_offset:
                return
            offset = next_offset
