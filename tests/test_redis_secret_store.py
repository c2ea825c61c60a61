"""RedisSecretStore on a real Redis: what the shared contract cannot show.

Two receivers on two machines are two store objects over one Redis: what one handshake
stored, the other verifies with. A Redis that is down is a typed error, without the URL's
password. The protocol itself is checked by the shared secret store contract.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from _services import require_redis, unique_name
from inbox_servers import drop_redis_keys

from asana_webhooks import WebhookReceiver, sign_body

pytest.importorskip("redis")
from asana_webhooks.contrib.redis import RedisSecretStore, RedisSecretStoreError

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
TARGET = "/asana/webhooks/1201"


@pytest.fixture
def two_servers() -> Iterator[tuple[Any, Any]]:
    url = require_redis()
    prefix = unique_name("aw_test")
    first, second = RedisSecretStore(url, prefix=prefix), RedisSecretStore(url, prefix=prefix)
    yield first, second
    first.close()
    second.close()
    drop_redis_keys(url, prefix)


def test_a_handshake_on_one_server_verifies_deliveries_on_the_other(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    announcement = first.announce(TARGET, 60)
    handshake = WebhookReceiver(first).handle(TARGET, {"X-Hook-Secret": SECRET}, b"")
    assert handshake.status == 200
    assert second.withdraw_announcement(TARGET, announcement) == SECRET, (
        "the creator on another machine must learn which secret its handshake stored"
    )
    body = b'{"events": []}'
    answer = WebhookReceiver(second).handle(
        TARGET, {"X-Hook-Signature": sign_body(body, SECRET)}, body
    )
    assert answer.status == 200, answer.body
    assert not second.accept_handshake(TARGET, "f" * 64, require_announcement=True)


def test_secrets_are_not_in_reprs_or_keys_names(two_servers: tuple[Any, Any]) -> None:
    first, _ = two_servers
    first.set(TARGET, SECRET)
    assert SECRET not in repr(first)
    client = first._client
    assert not [k for k in client.scan_iter(match=f"{first.prefix}:*") if SECRET.encode() in k]


def test_redis_down_is_a_secret_store_error_and_a_500(tmp_path: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisSecretStore(f"redis://:hunter2-secret@127.0.0.1:{port}/0", timeout=1.0)
    with pytest.raises(RedisSecretStoreError) as caught:
        store.get(TARGET)
    assert f"127.0.0.1:{port}" in str(caught.value) and "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(store)
    body = b'{"events": []}'
    answer = WebhookReceiver(store).handle(TARGET, {"X-Hook-Signature": "00"}, body)
    assert answer.status == 500, "a secret store that is down must not look like a bad signature"
