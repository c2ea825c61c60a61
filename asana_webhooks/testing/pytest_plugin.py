"""pytest fixtures for code that talks to Asana webhooks (registered as a ``pytest11`` entry point).

- ``asana_fake``: a running ``FakeAsana`` (token ``asana_fake.access_token``), fresh per test.
- ``asana_target``: a running ``RecordingTarget`` to use as a webhook target.
- ``asana_api``: a ``WebhooksApi`` whose client talks to ``asana_fake``.

This module is loaded by every pytest run once the package is installed, so it imports nothing
heavy at import time: fixtures import what they need when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from asana_webhooks import WebhooksApi
    from asana_webhooks.testing import FakeAsana, RecordingTarget

#: The token ``asana_fake`` accepts; not a real credential.
FAKE_ACCESS_TOKEN = "fake-asana-personal-access-token"  # noqa: S105 - a test value


@pytest.fixture
def asana_fake() -> Iterator[FakeAsana]:
    """A started ``FakeAsana`` on 127.0.0.1, stopped after the test."""
    from asana_webhooks.testing import FakeAsana

    with FakeAsana(access_token=FAKE_ACCESS_TOKEN) as fake:
        yield fake


@pytest.fixture
def asana_target() -> Iterator[RecordingTarget]:
    """A started ``RecordingTarget`` (echoes the handshake, records deliveries)."""
    from asana_webhooks.testing import RecordingTarget

    with RecordingTarget() as target:
        yield target


@pytest.fixture
def asana_api(asana_fake: FakeAsana) -> Iterator[WebhooksApi]:
    """A ``WebhooksApi`` configured for ``asana_fake``."""
    from asana_webhooks import ApiClient, Configuration, WebhooksApi

    configuration = Configuration(host=asana_fake.url, access_token=asana_fake.access_token)
    with ApiClient(configuration) as client:
        yield WebhooksApi(client)
