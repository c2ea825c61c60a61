"""X-Hook-Signature: HMAC-SHA256 of the raw body, lowercase hex; verification never raises."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asana_webhooks import sign_body, verify_signature

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
BODY = b'{"events":[{"action":"changed","resource":{"gid":"1","resource_type":"task"}}]}'


def independent_signature(body: bytes, secret: str) -> str:
    """What Asana's own example servers compute: hmac.new(secret.encode(), body, sha256)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (BODY, SECRET),
        (b"", SECRET),
        (b'{"events":[]}', "short"),
        ('{"name": "caf\u00e9"}'.encode(), "s\u00e9cret"),
    ],
)
def test_sign_body_matches_an_independent_hmac_sha256(body: bytes, secret: str) -> None:
    expected = independent_signature(body, secret)
    assert sign_body(body, secret) == expected, "sign_body disagrees with hmac/hashlib"
    assert verify_signature(body, expected, secret), "a correct signature was refused"


@pytest.mark.parametrize(
    ("body", "secret", "signature"),
    [
        # Computed outside Python: `printf BODY | openssl dgst -sha256 -hmac SECRET`.
        (
            b'{"events":[]}',
            "secret",
            "a642b59553c93e227ec0f2f38910fbf71231a2197c00899833c00478cec86f34",
        ),
        # The textbook HMAC-SHA256 example.
        (
            b"The quick brown fox jumps over the lazy dog",
            "key",
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
        ),
    ],
)
def test_known_vectors(body: bytes, secret: str, signature: str) -> None:
    assert sign_body(body, secret) == signature
    assert verify_signature(body, signature, secret)


def test_str_and_bytes_secrets_are_the_same_key() -> None:
    signature = independent_signature(BODY, SECRET)
    assert verify_signature(BODY, signature, SECRET.encode())
    assert sign_body(BODY, SECRET.encode()) == sign_body(BODY, SECRET)


def test_any_of_several_secrets_may_match() -> None:
    signature = independent_signature(BODY, SECRET)
    assert verify_signature(BODY, signature, ["old-secret", SECRET])
    assert verify_signature(BODY, signature, (SECRET.encode(), "other"))
    assert not verify_signature(BODY, signature, ["old-secret", "other"])
    assert not verify_signature(BODY, signature, [])


def test_upper_case_hex_is_accepted() -> None:
    assert verify_signature(BODY, independent_signature(BODY, SECRET).upper(), SECRET)


def test_wrong_secret_or_changed_body_is_refused() -> None:
    signature = independent_signature(BODY, SECRET)
    assert not verify_signature(BODY, signature, "another secret")
    assert not verify_signature(BODY + b" ", signature, SECRET), "one extra byte must not verify"
    # The same JSON re-serialised is not the same bytes: Asana signed the raw body.
    assert not verify_signature(BODY.replace(b",", b", "), signature, SECRET)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not hex at all",
        "g" * 64,
        "ab" * 31,
        "ab" * 33,
        " " + "a" * 63,
        "\u00e9" * 64,
        b"a" * 64,
        64,
    ],
    ids=repr,
)
def test_malformed_signatures_are_false_never_errors(signature: Any) -> None:
    assert verify_signature(BODY, signature, SECRET) is False


@pytest.mark.parametrize("secret", [None, 42, [None], ["\ud800"], "\ud800"], ids=repr)
def test_unusable_secrets_are_false_never_errors(secret: Any) -> None:
    assert verify_signature(BODY, "a" * 64, secret) is False


def test_a_body_that_is_not_bytes_is_false() -> None:
    signature = independent_signature(BODY, SECRET)
    assert verify_signature(BODY.decode(), signature, SECRET) is False  # type: ignore[arg-type]


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=80))
def test_what_sign_body_signs_verifies(body: bytes, secret: str) -> None:
    assert verify_signature(body, sign_body(body, secret), secret)
    assert sign_body(body, secret) == independent_signature(body, secret)


@given(signature=st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=80)))
def test_verify_signature_never_raises(signature: Any) -> None:
    assert verify_signature(BODY, signature, SECRET) in (True, False)
