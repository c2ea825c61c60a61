"""Asana-looking identifiers and timestamps."""

from __future__ import annotations

import datetime
import secrets
from typing import Optional

# Present-day Asana gids are 16-digit numbers starting with 12.. or 13..
_GID_LOW = 1_200_000_000_000_000
_GID_SPAN = 200_000_000_000_000


def new_gid() -> str:
    """A random 16-digit numeric gid."""
    return str(_GID_LOW + secrets.randbelow(_GID_SPAN))


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_time(moment: Optional[datetime.datetime]) -> Optional[str]:
    """``2012-02-22T02:06:58.147Z``: UTC, milliseconds, ``Z`` - the way Asana writes times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
