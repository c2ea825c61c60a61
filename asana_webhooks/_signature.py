"""X-Hook-Signature: HMAC-SHA256 over the exact raw body bytes, lowercase hex."""

from __future__ import annotations

import hashlib
import hmac
from typing import Optional, Sequence, Union

#: A webhook secret, or several of them (any match passes, for moving between webhooks).
Secret = Union[str, bytes]
Secrets = Union[Secret, Sequence[Secret]]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SIGNATURE_LENGTH = hashlib.sha256().digest_size * 2


def _key(secret: Secret) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _keys(secret: Secrets) -> list[bytes]:
    if isinstance(secret, (str, bytes, bytearray)):
        return [_key(secret)]
    return [_key(s) for s in secret]


def sign_body(body: bytes, secret: Secret) -> str:
    """Return the ``X-Hook-Signature`` Asana sends for ``body`` under ``secret``."""
    return hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: Optional[str], secret: Secrets) -> bool:
    """Tell whether ``signature`` is the HMAC-SHA256 of the raw ``body`` under any of ``secret``.

    A missing, empty, non-hex or wrong-length signature is ``False``; nothing here raises.
    The comparison is constant-time.
    """
    if not isinstance(signature, str) or len(signature) != _SIGNATURE_LENGTH:
        return False
    if not _HEX_DIGITS.issuperset(signature):
        return False
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return False  # type: ignore[unreachable]  # callers outside mypy's reach
    try:
        keys = _keys(secret)
    except (TypeError, UnicodeError):
        return False
    expected = signature.lower().encode("ascii")
    matched = False
    for key in keys:
        digest = hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii")
        # Check every key, so timing does not reveal which one matched.
        matched |= hmac.compare_digest(digest, expected)
    return matched
