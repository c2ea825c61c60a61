"""Shared builders for the client's unit tests: realistic bodies and a scripted transport."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Callable, Union

from asana_webhooks import (
    ApiClient,
    Configuration,
    MockTransport,
    Request,
    Response,
    RetryPolicy,
    WebhooksApi,
)

TOKEN = "0/pat-secret-0123456789abcdef"


def webhook_json(gid: str = "43214", **overrides: Any) -> dict[str, Any]:
    webhook: dict[str, Any] = {
        "gid": gid,
        "resource_type": "webhook",
        "active": True,
        "resource": {"gid": "8675309", "resource_type": "project", "name": "Bugs"},
        "target": f"https://example.com/receive-webhook/{gid}",
        "created_at": "2012-02-22T02:06:58.147Z",
        "last_failure_at": "2012-02-22T02:06:58.147Z",
        "last_failure_content": "500 Server Error\n\nCould not complete the request",
        "last_success_at": "2012-02-22T02:06:58.147Z",
        "delivery_retry_count": 3,
        "next_attempt_after": "2012-02-22T02:06:58.147Z",
        "failure_deletion_timestamp": "2012-02-22T02:06:58.147Z",
        "filters": [
            {
                "resource_type": "task",
                "resource_subtype": "milestone",
                "action": "changed",
                "fields": ["due_at", "due_on", "dependencies"],
            }
        ],
    }
    webhook.update(overrides)
    return webhook


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def asana_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"errors": [{"message": message, "help": "see docs"}]}, headers)


Step = Union[Response, BaseException, Callable[[Request], Response]]


class Script:
    """A MockTransport handler that plays back responses (or raises errors) in order."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps = list(steps)
        self.seen: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        if not self.steps:
            raise AssertionError(f"unexpected extra request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Response):
            return step
        return step(request)


def make_api(
    *steps: Step, retry: RetryPolicy | None = None, sleeps: list[float] | None = None, **config: Any
) -> tuple[WebhooksApi, Script]:
    script = Script(steps)
    recorded = sleeps if sleeps is not None else []
    policy = retry or RetryPolicy(sleep=recorded.append)
    configuration = Configuration(
        host="https://asana.test/api/1.0", access_token=TOKEN, retry=policy, **config
    )
    client = ApiClient(configuration, transport=MockTransport(script))
    return WebhooksApi(client), script
