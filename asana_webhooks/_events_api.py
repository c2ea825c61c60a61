"""EventsApi: Asana's Events API (``GET /events``), the second channel for a resource's changes.

Webhooks deliver at most once and cannot be replayed; the Events API keeps a resource's events
for about 24 hours behind a *sync token*. Each answer carries the token for the next call, and
a token Asana no longer accepts (or none at all) is answered 412 with a fresh one:
``InvalidSyncTokenError``. The events are the same ``Event`` type the receiver hands out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, List, Optional

import attrs

from asana_webhooks import _webhooks_api
from asana_webhooks._client import ApiClient
from asana_webhooks._converter import loads_json
from asana_webhooks._display import Displayable
from asana_webhooks._errors import ApiException, InvalidRequestError, InvalidResponseError
from asana_webhooks._events import Event, _describe_event_failure, _structure_event
from asana_webhooks._webhooks_api import OptFields, _common_query, _gid

_PATH = "/events"


class InvalidSyncTokenError(ApiException):
    """412 from ``GET /events``: no sync token was given, or Asana no longer accepts it.

    ``sync`` is the fresh token Asana sent with the refusal: start from here; events before
    this point may be missed. On a first call (no token) that is simply the starting token; on
    a later one it means a gap: re-read the resource if you must not miss a change.
    ``resource`` is the resource asked about. The token is never part of the message.
    """

    sync: Optional[str] = None
    resource: Optional[str] = None


@attrs.define(slots=True)
class EventsResponse(Displayable):
    """One answer of ``GET /events``: up to 100 events, the next token, and whether more wait.

    Store ``sync`` only once the events are safely handled or stored; with ``has_more`` call
    again at once with ``sync`` for the rest.
    """

    data: List[Event] = attrs.field(factory=list)
    sync: str = ""
    has_more: bool = False


class EventsApi:
    """Read a resource's events through Asana's Events API.

    Same client, retries, timeouts and errors as ``WebhooksApi``: a 429 is waited out (up to
    the retry policy's limits), 5xx and connection failures are retried, and everything else is
    an ``AsanaError``. A 412 is ``InvalidSyncTokenError`` carrying the fresh token.
    """

    def __init__(self, api_client: Optional[ApiClient] = None) -> None:
        if api_client is None:
            # The process-wide default client that WebhooksApi() without arguments shares.
            api_client = _webhooks_api.WebhooksApi().api_client
        self.api_client = api_client

    def get_events(
        self,
        resource: str,
        sync: Optional[str] = None,
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
    ) -> EventsResponse:
        """The events on ``resource`` (a task, project or goal gid) since ``sync`` was issued.

        Without ``sync`` Asana answers 412 with the starting token: catch
        ``InvalidSyncTokenError`` and use its ``sync`` (or call ``starting_sync_token``).
        """
        page, _ = self._get_page(resource, sync, opt_pretty, opt_fields)
        return page

    def starting_sync_token(self, resource: str) -> str:
        """A token from now on for ``resource``: events before this moment are not returned."""
        try:
            self.get_events(resource)
        except InvalidSyncTokenError as exc:
            if exc.sync:
                return exc.sync
            raise
        # Asana always refuses a first call; an answer with events would be a new behaviour.
        raise InvalidResponseError(
            "GET /events without a sync token was answered 200, expected 412 with a token",
            method="GET",
            path=_PATH,
        )

    def iter_events(
        self,
        resource: str,
        sync: Optional[str] = None,
        opt_fields: OptFields = None,
    ) -> EventStream:
        """Every event on ``resource`` since ``sync``, following ``has_more``, lazily.

        Iterate the returned ``EventStream`` for the events (or ``.pages()`` for the answers);
        once it is exhausted, ``.sync`` is the token to store for next time. Without ``sync``
        the stream starts now: it yields nothing and ``.sync`` is the starting token. A token
        Asana refuses raises ``InvalidSyncTokenError`` (with the fresh token) mid-iteration.
        """
        return EventStream(self, _gid("resource", resource), sync, opt_fields)

    # -- the one request path, also used by the reconciler for the raw events ------------

    def _get_page(
        self,
        resource: str,
        sync: Optional[str],
        opt_pretty: Optional[bool] = None,
        opt_fields: OptFields = None,
    ) -> tuple[EventsResponse, list[dict[str, Any]]]:
        resource = _gid("resource", resource)
        query = [("resource", resource)]
        if sync is not None:
            if not isinstance(sync, str) or not sync:
                raise InvalidRequestError("sync must be a token from an earlier answer, or None")
            query.append(("sync", sync))
        query.extend(_common_query(opt_pretty, opt_fields))
        try:
            response = self.api_client.request("GET", _PATH, query=query)
        except ApiException as exc:
            if exc.status == 412:
                raise _invalid_sync_token(exc, resource, had_token=sync is not None) from None
            raise
        return _decode_page(response.body, response.status)


class EventStream:
    """A resource's events since a token, fetched one answer (up to 100 events) at a time.

    ``sync`` is the token that resumes right after the last *fully consumed* answer: it moves
    on only when iteration moves past an answer's last event, so storing it never skips an
    event (stopping halfway through an answer reads that answer again next time).
    """

    def __init__(
        self, api: EventsApi, resource: str, sync: Optional[str], opt_fields: OptFields = None
    ) -> None:
        self.api = api
        self.resource = resource
        self.sync = sync
        self.opt_fields = opt_fields
        #: True once the stream reached an answer without ``has_more``.
        self.exhausted = False

    def __repr__(self) -> str:
        return f"EventStream(resource={self.resource!r}, exhausted={self.exhausted!r})"

    def pages(self) -> Iterator[EventsResponse]:
        """The answers, in order; ``.sync`` advances past each once the next is asked for."""
        if self.sync is None:
            self.sync = self.api.starting_sync_token(self.resource)
            self.exhausted = True
            return
        while True:
            page, _ = self.api._get_page(self.resource, self.sync, None, self.opt_fields)
            if page.has_more and page.sync == self.sync:
                raise InvalidResponseError(
                    "GET /events answered has_more with the same sync token: following it "
                    "would repeat the same answer forever",
                    method="GET",
                    path=_PATH,
                )
            yield page
            self.sync = page.sync
            if not page.has_more:
                self.exhausted = True
                return

    def __iter__(self) -> Iterator[Event]:
        for page in self.pages():
            yield from page.data


def _invalid_sync_token(exc: ApiException, resource: str, *, had_token: bool) -> ApiException:
    sync = _sync_of(exc.body)
    if sync is None:
        note = "the 412 answer carried no fresh sync token (expected one in 'sync')"
    elif had_token:
        note = (
            "the sync token is invalid or too old; a fresh one came with this answer: "
            "start from here; events before this point may be missed"
        )
    else:
        note = "no sync token was given; the starting token came with this answer"
    error = InvalidSyncTokenError(
        exc.status,
        exc.reason,
        headers=exc.headers,
        body=exc.body,
        errors=exc.errors,
        method=exc.method,
        path=exc.path,
        note=note,
    )
    error.sync = sync
    error.resource = resource
    return error


def _sync_of(body: Optional[bytes]) -> Optional[str]:
    try:
        document = json.loads(body or b"")
    except (ValueError, TypeError, RecursionError):
        return None
    sync = document.get("sync") if isinstance(document, dict) else None
    return sync if isinstance(sync, str) and sync else None


def _decode_page(body: bytes, status: int) -> tuple[EventsResponse, list[dict[str, Any]]]:
    def invalid(problem: str) -> InvalidResponseError:
        return InvalidResponseError(problem, status=status, body=body, method="GET", path=_PATH)

    try:
        document = loads_json(body)
    except InvalidResponseError as exc:
        raise invalid(exc.problem) from None
    if type(document) is not dict:
        raise invalid("expected an object with 'data', 'sync' and 'has_more'")
    raw = document.get("data")
    if type(raw) is not list:
        raise invalid("'data' is missing or not an array of events")
    sync = document.get("sync")
    if type(sync) is not str or not sync:
        raise invalid("'sync' is missing: without it the next call cannot continue")
    has_more = document.get("has_more", False)
    if has_more is None:
        has_more = False
    if type(has_more) is not bool:
        raise invalid(f"'has_more' is {type(has_more).__name__}, expected a boolean")
    events = []
    for index, item in enumerate(raw):
        try:
            events.append(_structure_event(item, Event))
        except Exception as exc:  # anything the converter raises is a malformed event
            message = _describe_event_failure(item, index, exc).replace("events[", "data[")
            raise invalid(message) from None
    return EventsResponse(data=events, sync=sync, has_more=has_more), raw
