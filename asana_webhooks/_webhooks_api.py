"""WebhooksApi: Asana's five webhook operations, synchronous and typed, named as in the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional, TypeVar, Union

from asana_webhooks import _display
from asana_webhooks import _models as m
from asana_webhooks._client import ApiClient, ApiResponse, Query
from asana_webhooks._converter import decode, structure, unstructure
from asana_webhooks._errors import (
    BadRequestError,
    InvalidRequestError,
    InvalidResponseError,
    PaginationError,
)
from asana_webhooks._transport import Response

T = TypeVar("T")

#: ``opt_fields`` as a list of names, a comma-separated string, or the generated client's
#: documented form: a list holding one string that spells a JSON array.
OptFields = Union[str, Sequence[str], None]

_default_client: Optional[ApiClient] = None


def _fields_query(opt_fields: OptFields) -> Optional[str]:
    if opt_fields is None:
        return None
    if isinstance(opt_fields, str):
        entries: list[Any] = [opt_fields]
    elif isinstance(opt_fields, (bytes, Mapping)) or not isinstance(opt_fields, Iterable):
        raise InvalidRequestError(
            "opt_fields must be a list of field names or a comma-separated string, "
            f"got {type(opt_fields).__name__}"
        )
    else:
        entries = list(opt_fields)
    items: list[str] = []
    for entry in entries:
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


#: The query options each operation takes, by name (what v5's ``opts`` dict may hold).
_OPTIONS = frozenset({"opt_pretty", "opt_fields"})
_LIST_OPTIONS = _OPTIONS | {"limit", "offset", "resource"}


def _options(
    operation: str,
    slot: Any,
    opts: Optional[Mapping[str, Any]],
    allowed: frozenset[str],
    given: dict[str, Any],
) -> dict[str, Any]:
    """The call's query options, with the official ``asana`` v5 SDK's ``opts`` dict folded
    in. v5 passes it where ``opt_pretty`` stands (``get_webhooks(workspace, {"limit": 2})``);
    ``opts=`` says the same by keyword. A key given twice, an unknown key, or an
    ``opt_pretty`` that is not a bool is refused rather than guessed at."""
    if isinstance(slot, Mapping):
        if opts is not None:
            raise InvalidRequestError(f"{operation}: opts given twice (positionally and as opts=)")
        opts, slot = slot, None
    values = dict(given, opt_pretty=slot)
    if opts is not None:
        if not isinstance(opts, Mapping):
            raise InvalidRequestError(
                f"{operation}: opts must be a dict like {{'opt_fields': 'name'}}, "
                f"got {type(opts).__name__}"
            )
        unknown = sorted(str(key) for key in opts if key not in allowed)
        if unknown:
            raise InvalidRequestError(
                f"{operation}: unknown option(s) {', '.join(unknown)} in opts; "
                f"{operation} takes {', '.join(sorted(allowed))}"
            )
        for key, value in opts.items():
            if values.get(key) is not None:
                raise InvalidRequestError(f"{operation}: {key} given both in opts and by name")
            values[key] = value
    pretty = values["opt_pretty"]
    if pretty is not None and not isinstance(pretty, bool):
        raise InvalidRequestError(
            f"{operation}: opt_pretty must be True or False, got {pretty!r}; options as the "
            f"asana v5 SDK passes them go in a dict: {operation}(..., {{'opt_fields': ...}}) "
            "or opts={...}"
        )
    return values


def _body(name: str, value: Any, cls: type[T]) -> T:
    """A request body: our model, or the v5 SDK's dict (``{"data": {...}}``) made into it."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        try:
            return structure(dict(value), cls)
        except InvalidResponseError as exc:
            raise InvalidRequestError(f"{name}: {exc.problem}") from None
    raise InvalidRequestError(
        f"{name} must be a {cls.__name__} or a dict like {{'data': {{...}}}}, "
        f"got {type(value).__name__}"
    )


class WebhooksApi:
    """Create, read, list, update and delete webhooks.

    The method names and parameters are those of Asana's generated client, made synchronous;
    ``iter_webhooks`` adds lazy pagination. Errors are ``AsanaError`` subclasses.

    Calls written for the official ``asana`` v5 SDK work too: its ``opts`` dict of query
    options (second positional argument, or ``opts=``), its dict bodies, and its
    ``update_webhook(body, webhook_gid, opts)`` order. The answers are this library's typed
    models, not v5's dicts, and ``get_webhooks`` returns one page (use ``iter_webhooks`` to
    go through them all, as v5's page iterator does).

    Each operation has a ``*_with_http_info`` twin returning an ``ApiResponse``: the same
    data plus the HTTP status, the headers (rate-limit information, ``Asana-Change``) and
    the raw body, as the generated clients do.
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
        *,
        gone_after_retry_is_done: bool = False,
    ) -> tuple[T, Response]:
        payload = None
        if body is not None:
            payload = json.dumps(unstructure(body), separators=(",", ":")).encode()
        client = self.api_client
        response = client.request(
            method,
            path,
            query=query,
            body=payload,
            gone_after_retry_is_done=gone_after_retry_is_done,
        )
        if response.status == 404 and gone_after_retry_is_done:  # a retried delete: done
            return cls(), response
        try:
            return decode(response.body, cls, fast=client.configuration.fast_json), response
        except InvalidResponseError as exc:
            raise InvalidResponseError(
                exc.problem, status=response.status, body=response.body, method=method, path=path
            ) from None

    # -- create ------------------------------------------------------------------------

    def create_webhook(
        self,
        create_webhook_request: m.CreateWebhookRequest,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> m.CreateWebhook201Response:
        """Establish a webhook. Returns the webhook and the ``X-Hook-Secret`` Asana chose.

        Asana performs the handshake with ``target`` *while this call waits*: the receiver
        must answer from another thread or process, or this call times out.

        Not retried after an ambiguous failure (a 5xx or a connection lost after sending):
        the webhook may exist. ``establish_webhook(..., workspace=...)`` reconciles that.
        """
        body, query = _create(create_webhook_request, opt_pretty, opt_fields, opts)
        return self._call("POST", "/webhooks", m.CreateWebhook201Response, query, body)[0]

    def create_webhook_with_http_info(
        self,
        create_webhook_request: m.CreateWebhookRequest,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> ApiResponse[m.CreateWebhook201Response]:
        """``create_webhook``, returning the status and headers with the data."""
        body, query = _create(create_webhook_request, opt_pretty, opt_fields, opts)
        return _api_response(
            self._call("POST", "/webhooks", m.CreateWebhook201Response, query, body)
        )

    # -- delete ------------------------------------------------------------------------

    def delete_webhook(
        self,
        webhook_gid: str,
        opt_pretty: Optional[bool] = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> m.EmptyResponse:
        """Permanently remove a webhook. A delivery already in flight may still arrive.

        When the first DELETE's answer is lost and the retry finds the webhook gone (404),
        the first one did the work: this returns normally (an empty ``data``).
        """
        path, query = _delete(webhook_gid, opt_pretty, opts)
        return self._call("DELETE", path, m.EmptyResponse, query, gone_after_retry_is_done=True)[0]

    def delete_webhook_with_http_info(
        self,
        webhook_gid: str,
        opt_pretty: Optional[bool] = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> ApiResponse[m.EmptyResponse]:
        """``delete_webhook`` with status and headers (404 when a retry found it gone)."""
        path, query = _delete(webhook_gid, opt_pretty, opts)
        return _api_response(
            self._call("DELETE", path, m.EmptyResponse, query, gone_after_retry_is_done=True)
        )

    # -- get ---------------------------------------------------------------------------

    def get_webhook(
        self,
        webhook_gid: str,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> m.GetWebhook200Response:
        """The full record of one webhook."""
        if opt_pretty is None and opt_fields is None and opts is None:  # the common call
            path, query = f"/webhooks/{_gid('webhook_gid', webhook_gid)}", None
        else:
            path, query = _get(webhook_gid, opt_pretty, opt_fields, opts)
        return self._call("GET", path, m.GetWebhook200Response, query)[0]

    def get_webhook_with_http_info(
        self,
        webhook_gid: str,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> ApiResponse[m.GetWebhook200Response]:
        """``get_webhook``, returning the status and headers with the data."""
        path, query = _get(webhook_gid, opt_pretty, opt_fields, opts)
        return _api_response(self._call("GET", path, m.GetWebhook200Response, query))

    # -- list --------------------------------------------------------------------------

    def get_webhooks(
        self,
        workspace: str,
        opt_pretty: Optional[bool] = None,
        limit: Optional[int] = None,
        offset: Optional[str] = None,
        resource: Optional[str] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> m.GetWebhooks200Response:
        """One page of the webhooks your app registered for this user in ``workspace``.

        ``next_page`` is set only when ``limit`` was given and more pages exist.
        """
        query = _list(workspace, opt_pretty, limit, offset, resource, opt_fields, opts)
        return self._call("GET", "/webhooks", m.GetWebhooks200Response, query)[0]

    def get_webhooks_with_http_info(
        self,
        workspace: str,
        opt_pretty: Optional[bool] = None,
        limit: Optional[int] = None,
        offset: Optional[str] = None,
        resource: Optional[str] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> ApiResponse[m.GetWebhooks200Response]:
        """``get_webhooks`` (one page), returning the status and headers with the data."""
        query = _list(workspace, opt_pretty, limit, offset, resource, opt_fields, opts)
        return _api_response(self._call("GET", "/webhooks", m.GetWebhooks200Response, query))

    # -- update ------------------------------------------------------------------------

    def update_webhook(
        self,
        webhook_gid: str,
        update_webhook_request: m.UpdateWebhookRequest,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> m.GetWebhook200Response:
        """Replace a webhook's filters (the whole list: filters not sent are dropped).

        v5's order, ``update_webhook(body, webhook_gid, opts)``, is understood too.
        """
        path, body, query = _update(
            webhook_gid, update_webhook_request, opt_pretty, opt_fields, opts
        )
        return self._call("PUT", path, m.GetWebhook200Response, query, body)[0]

    def update_webhook_with_http_info(
        self,
        webhook_gid: str,
        update_webhook_request: m.UpdateWebhookRequest,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
        *,
        opts: Optional[Mapping[str, Any]] = None,
    ) -> ApiResponse[m.GetWebhook200Response]:
        """``update_webhook``, returning the status and headers with the data."""
        path, body, query = _update(
            webhook_gid, update_webhook_request, opt_pretty, opt_fields, opts
        )
        return _api_response(self._call("PUT", path, m.GetWebhook200Response, query, body))

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
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= 100
        ):
            raise InvalidRequestError(
                f"page_size must be an integer from 1 to 100, got {page_size!r}"
            )
        if not isinstance(progress, bool):
            raise InvalidRequestError(f"progress must be True or False, got {progress!r}")
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


def _api_response(sent: tuple[T, Response]) -> ApiResponse[T]:
    data, response = sent
    return ApiResponse(
        status_code=response.status,
        headers=response.headers,
        data=data,
        raw_data=response.body,
    )


def _create(
    request: Any, opt_pretty: Any, opt_fields: OptFields, opts: Optional[Mapping[str, Any]]
) -> tuple[m.CreateWebhookRequest, list[tuple[str, str]]]:
    create_webhook_request = _body("create_webhook_request", request, m.CreateWebhookRequest)
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
    options = _options("create_webhook", opt_pretty, opts, _OPTIONS, {"opt_fields": opt_fields})
    return create_webhook_request, _common_query(options["opt_pretty"], options["opt_fields"])


def _delete(
    webhook_gid: Any, opt_pretty: Any, opts: Optional[Mapping[str, Any]]
) -> tuple[str, list[tuple[str, str]]]:
    path = f"/webhooks/{_gid('webhook_gid', webhook_gid)}"
    options = _options("delete_webhook", opt_pretty, opts, frozenset({"opt_pretty"}), {})
    return path, _common_query(options["opt_pretty"], None)


def _get(
    webhook_gid: Any, opt_pretty: Any, opt_fields: OptFields, opts: Optional[Mapping[str, Any]]
) -> tuple[str, list[tuple[str, str]]]:
    path = f"/webhooks/{_gid('webhook_gid', webhook_gid)}"
    options = _options("get_webhook", opt_pretty, opts, _OPTIONS, {"opt_fields": opt_fields})
    return path, _common_query(options["opt_pretty"], options["opt_fields"])


def _list(
    workspace: Any,
    opt_pretty: Any,
    limit: Any,
    offset: Any,
    resource: Any,
    opt_fields: OptFields,
    opts: Optional[Mapping[str, Any]],
) -> list[tuple[str, str]]:
    query = [("workspace", _gid("workspace", workspace))]
    if opt_pretty is not None or opts is not None:
        given = {"limit": limit, "offset": offset, "resource": resource, "opt_fields": opt_fields}
        options = _options("get_webhooks", opt_pretty, opts, _LIST_OPTIONS, given)
        opt_pretty, limit, offset = options["opt_pretty"], options["limit"], options["offset"]
        resource, opt_fields = options["resource"], options["opt_fields"]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidRequestError(f"limit must be an integer from 1 to 100, got {limit!r}")
        query.append(("limit", str(limit)))
    if offset is not None:
        if not isinstance(offset, str) or not offset:
            raise InvalidRequestError(
                f"offset must be a token from a previous next_page, got {offset!r}"
            )
        query.append(("offset", offset))
    if resource is not None:
        query.append(("resource", _gid("resource", resource)))
    query.extend(_common_query(opt_pretty, opt_fields))
    return query


def _update(
    webhook_gid: Any,
    request: Any,
    opt_pretty: Any,
    opt_fields: OptFields,
    opts: Optional[Mapping[str, Any]],
) -> tuple[str, m.UpdateWebhookRequest, list[tuple[str, str]]]:
    if isinstance(webhook_gid, (Mapping, m.UpdateWebhookRequest)) and isinstance(
        request, (str, int)
    ):
        webhook_gid, request = request, webhook_gid  # v5: update_webhook(body, webhook_gid, opts)
    path = f"/webhooks/{_gid('webhook_gid', webhook_gid)}"
    update_webhook_request = _body("update_webhook_request", request, m.UpdateWebhookRequest)
    if update_webhook_request.data is None:
        update_webhook_request = m.UpdateWebhookRequest(data=m.WebhookUpdateRequest())
    options = _options("update_webhook", opt_pretty, opts, _OPTIONS, {"opt_fields": opt_fields})
    query = _common_query(options["opt_pretty"], options["opt_fields"])
    return path, update_webhook_request, query
