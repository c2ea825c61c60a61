"""Test helpers: ``FakeAsana``, an Asana webhooks API stand-in served on 127.0.0.1.

Importing this package starts nothing; servers start on ``start()`` or ``with``.
"""

__all__: list[str] = []
