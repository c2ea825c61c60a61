"""The errors asana_webhooks raises. Every one of them is an ``AsanaError``."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import attrs


class AsanaError(Exception):
    """Base of every error this library raises.

    ``retry_history`` is set when the call was retried: how many attempts were made, over
    how long, and how each ended (``"3 attempts in 1.6s: 503 Service Unavailable, ..."``).
    It is also the end of the message.
    """

    retry_history: Optional[str] = None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (after {self.retry_history})" if self.retry_history else text


class InvalidRequestError(AsanaError, ValueError):
    """The call was refused before anything was sent: an argument is missing or malformed."""


@attrs.define(slots=True)
class Error:
    """One entry of Asana's ``{"errors": [...]}`` body."""

    message: Optional[str] = None
    help: Optional[str] = None
    phrase: Optional[str] = None


@attrs.define(slots=True)
class ErrorResponse:
    """Asana's error body: ``{"errors": [Error, ...]}``."""

    errors: list[Error] = attrs.field(factory=list)


class ApiException(AsanaError):
    """Asana answered with an HTTP error status.

    ``status``, ``reason``, ``headers`` and the raw ``body`` are kept; ``errors`` holds Asana's
    parsed error entries (empty when the body was not Asana's JSON, e.g. a proxy's HTML page).
    """

    def __init__(
        self,
        status: Optional[int] = None,
        reason: Optional[str] = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        body: Optional[bytes] = None,
        errors: Sequence[Error] = (),
        method: Optional[str] = None,
        path: Optional[str] = None,
        note: Optional[str] = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body
        self.errors: list[Error] = list(errors)
        self.method = method
        self.path = path
        self.note = note
        super().__init__(str(self))

    @property
    def message(self) -> Optional[str]:
        """The first error message Asana gave, if any."""
        return self.errors[0].message if self.errors else None

    @property
    def error_response(self) -> ErrorResponse:
        return ErrorResponse(errors=list(self.errors))

    def __str__(self) -> str:
        head = f"{self.status} {self.reason}" if self.reason else f"{self.status}"
        if self.method and self.path:
            head = f"{head} on {self.method} {self.path}"
        parts = [head]
        for error in self.errors:
            text = error.message or "(no message)"
            if error.phrase:
                text = f"{text} [phrase: {error.phrase}]"
            parts.append(text)
        if self.note:
            parts.append(self.note)
        text = ": ".join(parts)
        return f"{text} (after {self.retry_history})" if self.retry_history else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> Any:
        # Keep errors picklable (multiprocessing, Celery) despite the keyword-only constructor.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[ApiException], state: dict[str, Any]) -> ApiException:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, str(error))
    return error


class BadRequestError(ApiException):
    """400: a missing or malformed parameter."""


class PaginationError(BadRequestError):
    """400 while following pages, usually because the offset token expired.

    ``offset`` is the token that was refused; ``items_seen`` says how many webhooks were
    yielded before it. Restart the listing, or resume with ``iter_webhooks(..., offset=...)``
    from an offset that is still valid.
    """

    offset: Optional[str] = None
    items_seen: int = 0


class UnauthorizedError(ApiException):
    """401: no valid token (or the workspace disabled the app)."""


class PaymentRequiredError(ApiException):
    """402: the feature needs a paid plan."""


class ForbiddenError(ApiException):
    """403: refused, e.g. no access, a loopback target, or a duplicated webhook."""

    @property
    def is_duplicate_webhook(self) -> bool:
        """Asana's answer when a webhook with the same resource and target exists already."""
        return any("duplicate" in (e.message or "").lower() for e in self.errors)


class NotFoundError(ApiException):
    """404: unknown path or object (a webhook Asana deleted after 24 h of failures, say)."""


class RateLimitError(ApiException):
    """429: rate limited. ``retry_after`` is the wait Asana asked for, in seconds (or None)."""

    retry_after: Optional[float] = None


class ServerError(ApiException):
    """5xx: a problem on Asana's end (or a proxy in between)."""


class InvalidResponseError(AsanaError):
    """A successful status came with a body that is not the JSON this call expects."""

    def __init__(
        self,
        problem: str,
        *,
        status: Optional[int] = None,
        body: Optional[bytes] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        self.problem = problem
        self.status = status
        self.body = body
        self.method = method
        self.path = path
        where = f" from {method} {path}" if method and path else ""
        super().__init__(f"unexpected response{where} (status {status}): {problem}")


class ApiConnectionError(AsanaError):
    """Asana could not be reached, or the connection failed mid-request.

    ``request_sent`` is False only when the request provably never reached the server
    (refused connection, DNS failure, connect timeout): only then is a create safe to retry.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        self.request_sent = request_sent
        super().__init__(message)


class ApiTimeoutError(ApiConnectionError):
    """The connect or read timeout ran out."""


_BY_STATUS: dict[int, type[ApiException]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    402: PaymentRequiredError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitError,
}


def error_class_for(status: int) -> type[ApiException]:
    """The most specific ``ApiException`` subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiException)
