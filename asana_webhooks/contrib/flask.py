"""Serve a ``WebhookReceiver`` from Flask: ``app.register_blueprint(webhook_blueprint(receiver))``.

Every path under ``url_prefix`` is a target; its secret is keyed by the full path and query
string the request came in on, so one blueprint serves many webhooks.
"""

from __future__ import annotations

from typing import IO

import flask

from asana_webhooks._receiver import ReceiverResponse, WebhookReceiver
from asana_webhooks._wsgi import request_target

__all__ = ["webhook_blueprint"]


def webhook_blueprint(
    receiver: WebhookReceiver,
    url_prefix: str = "/asana/webhooks",
    *,
    name: str = "asana_webhooks",
) -> flask.Blueprint:
    """A blueprint answering Asana at ``url_prefix`` and every path below it.

    Register one blueprint per ``name``; give another ``name`` to mount a second one.
    Methods other than POST get 405 from Flask itself.
    """
    prefix = url_prefix.rstrip("/")
    blueprint = flask.Blueprint(name, __name__, url_prefix=prefix or None)

    def receive(rest: str = "") -> flask.Response:
        request = flask.request
        headers = dict(request.headers.items())
        early = receiver.reject_early(request.method, headers)
        if early is not None:
            return _to_flask(early)
        if request.content_length is None:
            # No declared length (chunked): read one byte past the limit, never the whole.
            body = _read_capped(request.stream, receiver.max_body_bytes + 1)
        else:
            body = request.get_data(cache=True)
        # The target as sent (still escaped), never werkzeug's decoded path: see request_target.
        return _to_flask(receiver.handle(request_target(request.environ), headers, body))

    # "" is the prefix itself: Asana does not follow a redirect to "prefix/". At the root
    # ("/" or "") there is no such path, and Flask refuses a rule that does not start with "/".
    for rule in ("", "/", "/<path:rest>") if prefix else ("/", "/<path:rest>"):
        blueprint.add_url_rule(rule, "receive", receive, methods=["POST"], strict_slashes=False)
    return blueprint


def _read_capped(stream: IO[bytes], cap: int) -> bytes:
    # A stream's read(n) may return less than n before the end: loop until EOF or the cap.
    chunks: list[bytes] = []
    total = 0
    while total < cap:
        chunk = stream.read(min(64 * 1024, cap - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _to_flask(answer: ReceiverResponse) -> flask.Response:
    return flask.Response(answer.body, status=answer.status, headers=dict(answer.headers))
