"""Handing inbox work to a task queue, and sweeping up what a task queue lost.

A hand-off sends a *nudge*, not the events: the events stay in the inbox, and the task that
runs on the queue's workers claims them there (``Worker.drain``). So a message the queue loses
(a broker restart, say) loses nothing, since ``sweep`` nudges again for work that waited too
long, and a message delivered twice does nothing twice, since claims are exclusive. This is
the transactional outbox: write the fact first, hand it over second, sweep what was not.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Sequence

from asana_webhooks._inbox import Inbox

logger = logging.getLogger("asana_webhooks")

#: ``hand_off(target, ids)``: told that a delivery's new events were stored. Must not raise
#: for a queue that is down: the events are safe in the inbox and ``sweep`` covers the loss.
HandOff = Callable[[str, Sequence[str]], None]

#: Work that has waited this long, in seconds, is handed over again by ``sweep``.
DEFAULT_SWEEP_AFTER = 60.0

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


def describe_failure(exc: BaseException) -> str:
    """One line about a broker error, with any ``user:password@`` of a URL in it removed."""
    return f"{type(exc).__name__}: {_CREDENTIALS.sub('***@', str(exc))}".strip()


def sweep(inbox: Inbox, hand_off: HandOff, *, older_than: float = DEFAULT_SWEEP_AFTER) -> bool:
    """Nudge the task queue if inbox work has waited ``older_than`` seconds; tell whether it did.

    Run it periodically (a Celery beat entry, a cron job, a thread beside the receiver): it is
    what makes a lost hand-off cost a delay instead of an event. A nudge with nothing to do
    costs the queue one empty claim.
    """
    stats = inbox.stats()
    age = stats.oldest_pending_age
    if not (stats.pending or stats.in_progress) or age is None or age < older_than:
        return False
    logger.info(
        "Sweeping the inbox: %d events pending, the oldest for %.0f s; handing them over again",
        stats.pending,
        age,
    )
    hand_off("", ())
    return True
