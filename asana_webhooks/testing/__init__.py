"""Test helpers: ``FakeAsana``, an Asana webhooks API stand-in served on 127.0.0.1.

::

    with FakeAsana() as fake, RecordingTarget() as target:
        config = Configuration(host=fake.url, access_token=fake.access_token)
        ...  # create a webhook on target.url, then fake.deliver(gid, [make_event()])
        fake.generate_traffic(project_gid, 50, seed=1)  # realistic events, delivered and
        fake.advance(25 * 3600)                         # in /events; a day passes in a moment

Importing this package starts nothing; servers start on ``start()`` or ``with``.
pytest users get the ``asana_fake``, ``asana_target`` and ``asana_api`` fixtures.
"""

from asana_webhooks.testing._control_client import FakeAsanaControl, FakeControlError
from asana_webhooks.testing._deliveries import Delivery
from asana_webhooks.testing._events import EVENT_ACTIONS, make_event
from asana_webhooks.testing._fake import FakeAsana
from asana_webhooks.testing._records import Headers, OutboundCall, RecordedRequest
from asana_webhooks.testing._streams import StreamEvent
from asana_webhooks.testing._target import ReceivedPost, RecordingTarget
from asana_webhooks.testing._traffic import EventTraffic

__all__ = [
    "EVENT_ACTIONS",
    "Delivery",
    "EventTraffic",
    "FakeAsana",
    "FakeAsanaControl",
    "FakeControlError",
    "Headers",
    "OutboundCall",
    "ReceivedPost",
    "RecordedRequest",
    "RecordingTarget",
    "StreamEvent",
    "make_event",
]
