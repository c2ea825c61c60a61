"""Opaque, signed pagination offsets that a test can expire on demand.

A token is ``base64url(json).base64url(hmac)``, like the JWT-looking example in Asana's spec.
It carries the creation sequence number of the last item served (so pages stay stable when
webhooks are added or deleted between calls), the query it belongs to and an epoch:
``expire_all()`` bumps the epoch and every earlier token becomes expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading

#: Asana says offsets are opaque and "will expire after some time" (NextPage, OAS).
#: Both messages are GUESSES at Asana's wording.
INVALID_OFFSET_MESSAGE = "offset: Not a valid offset token. Use the offset from a next_page object."
EXPIRED_OFFSET_MESSAGE = (
    "offset: Your pagination token has expired. Start again from the first page."
)


class OffsetError(ValueError):
    """A bad (``expired=False``) or expired (``expired=True``) offset token."""

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OffsetCodec:
    """Makes and checks offset tokens; thread-safe."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._epoch = 0
        self._lock = threading.Lock()

    def expire_all(self) -> None:
        with self._lock:
            self._epoch += 1

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, after_seq: int, scope: str) -> str:
        with self._lock:
            epoch = self._epoch
        payload = json.dumps({"s": after_seq, "q": scope, "e": epoch}, separators=(",", ":"))
        raw = payload.encode("utf-8")
        return f"{_b64encode(raw)}.{_b64encode(self._sign(raw))}"

    def decode(self, token: str, scope: str) -> int:
        """Return the sequence number after which the next page starts."""
        invalid = OffsetError(INVALID_OFFSET_MESSAGE, expired=False)
        try:
            payload_text, signature_text = token.split(".")
            raw = _b64decode(payload_text)
            signature = _b64decode(signature_text)
        except (ValueError, binascii.Error):
            raise invalid from None
        if not hmac.compare_digest(signature, self._sign(raw)):
            raise invalid
        content = json.loads(raw)
        if content.get("q") != scope:
            raise invalid
        with self._lock:
            if content.get("e") != self._epoch:
                raise OffsetError(EXPIRED_OFFSET_MESSAGE, expired=True)
        after_seq = content.get("s")
        if not isinstance(after_seq, int):
            raise invalid
        return after_seq
