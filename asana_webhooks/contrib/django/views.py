"""``webhook_view(receiver)``: a Django view answering Asana for every target it is routed.

Route it with ``path("asana/<path:rest>", webhook_view(receiver))``; the secret is keyed by
the full path and query string the request came in on, as sent (still escaped) where the
server tells it (gunicorn, uWSGI, werkzeug, ASGI servers), else Django's path escaped again.
"""

from __future__ import annotations

from typing import Any, Callable

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from asana_webhooks._receiver import ReceiverResponse, WebhookReceiver
from asana_webhooks._wsgi import join_target, raw_targets, wsgi_text

__all__ = ["webhook_view"]


def webhook_view(receiver: WebhookReceiver) -> Callable[..., Any]:
    """A view for Asana's requests: CSRF-exempt, and login-exempt on Django 5.1+.

    Methods other than POST get 405; a declared ``Content-Length`` over the receiver's
    limit gets 413 before the body is read. Keep ``DATA_UPLOAD_MAX_MEMORY_SIZE`` at or
    above ``receiver.max_body_bytes``, or Django refuses big deliveries first (also 413).
    """

    def asana_webhook(request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        from django.core.exceptions import RequestDataTooBig

        early = receiver.reject_early(request.method or "", request.headers)
        if early is not None:
            return _to_django(early)
        try:
            # Read the raw bytes first: they are what Asana signed.
            body = request.body
        except RequestDataTooBig:
            return HttpResponse(b"body too large\n", status=413, content_type="text/plain")
        return _to_django(receiver.handle(_target(request), request.headers, body))

    view: Callable[..., Any] = csrf_exempt(asana_webhook)
    try:
        from django.contrib.auth.decorators import login_not_required
    except ImportError:  # Django before 5.1 has no LoginRequiredMiddleware
        return view
    return login_not_required(view)  # type: ignore[no-any-return]


def _target(request: Any) -> str:
    # The target as sent (still escaped), never Django's decoded request.path: decoding it
    # twice made a target with "%25" in it unreachable and let two URLs share a secret.
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and isinstance(scope.get("raw_path"), bytes):  # ASGI
        path = scope["raw_path"].decode("utf-8", "surrogateescape")
        query = bytes(scope.get("query_string") or b"").decode("utf-8", "surrogateescape")
        return f"{path}?{query}" if query else path
    # Django has decoded SCRIPT_NAME and PATH_INFO in META already; the rest is as sent.
    meta = request.META
    return join_target(
        raw_targets(meta),
        meta.get("SCRIPT_NAME", ""),
        request.path_info,
        wsgi_text(meta.get("QUERY_STRING", "")),
    )


def _to_django(answer: ReceiverResponse) -> HttpResponse:
    return HttpResponse(answer.body, status=answer.status, headers=dict(answer.headers))
