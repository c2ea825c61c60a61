"""open_inbox / open_secret_store: the URL forms, and a typed error naming a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from asana_webhooks import (
    InvalidURLError,
    SQLiteInbox,
    SQLiteSecretStore,
    open_inbox,
    open_secret_store,
)
from asana_webhooks._urls import redacted


def test_sqlite_urls_and_plain_paths_open_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    for url in (f"sqlite:///{path}", str(path)):
        inbox = open_inbox(url)
        assert isinstance(inbox, SQLiteInbox) and inbox.path == str(path)
        store = open_secret_store(url)
        assert isinstance(store, SQLiteSecretStore) and store.path == str(path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://example.com/x", "unknown scheme 'ftp'"),
        ("sqlite://host/x.sqlite3", "three slashes"),
        ("sqlite:relative.sqlite3", "three slashes"),
        ("/no/such/directory/x.sqlite3", "does not exist"),
        ("redis://:secret-password@/0", "redis://HOST:PORT/DB"),
        ("redis://127.0.0.1:notaport/0", "port"),
        ("redis://127.0.0.1:6379/zero", "database must be a number"),
    ],
)
def test_a_bad_url_is_a_typed_error_that_names_it(url: str, message: str) -> None:
    for opener in (open_inbox, open_secret_store):
        with pytest.raises(InvalidURLError, match=message) as caught:
            opener(url)
        assert "secret-password" not in str(caught.value)
        assert isinstance(caught.value, ValueError)


def test_passwords_are_redacted() -> None:
    assert redacted("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"
