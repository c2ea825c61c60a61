"""``DjangoInbox``: the inbox in the site's own database, through the Django ORM.

Needs ``"asana_webhooks.contrib.django"`` in ``INSTALLED_APPS`` and ``manage.py migrate``.
Each call is one transaction. Claims take rows with ``SELECT ... FOR UPDATE SKIP LOCKED``
where the database has it (PostgreSQL, MySQL 8, Oracle), so workers never wait for each
other; on SQLite every write transaction takes the database's write lock first, so that two
writers queue on SQLite's busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from asana_webhooks._inbox import (
    DEFAULT_DEDUPE_WINDOW,
    LEASE_LOST,
    Claim,
    InboxError,
    InboxStats,
    StoredEvent,
    StoreResult,
    SyncState,
    event_key,
    polled_target,
)

__all__ = ["DjangoInbox"]

_COUNTERS = ("stored", "duplicates", "handled", "retried", "parked", "gaps")


def _models() -> Any:
    # Imported on use: importing this module must not need the app registry ready.
    from asana_webhooks.contrib.django import models

    return models


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        id=str(row.id),
        key=row.key,
        target=row.target,
        received_at=row.received_at,
        raw=row.raw,
        attempts=row.attempts,
        error=row.error,
    )


def _ids(claim: Claim) -> list[int]:
    return [int(event.id) for event in claim.events]


class DjangoInbox:
    """An ``Inbox`` in the Django site's database (PostgreSQL, SQLite, or any Django backend).

    ``using`` names the database alias (default: the router's choice for writes of
    ``InboxEvent``). Keys of handled events are kept ``dedupe_window`` seconds. A database
    error becomes ``InboxError``, so a receiver answers 5xx and Asana delivers again. The
    admin shows the events (pending, failed with their errors) and replays failed ones.
    """

    def __init__(
        self,
        *,
        using: Optional[str] = None,
        dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not dedupe_window > 0:
            raise ValueError(f"dedupe_window must be positive seconds, got {dedupe_window!r}")
        self.using = using
        self.dedupe_window = float(dedupe_window)
        self._clock = clock

    def __repr__(self) -> str:
        return f"DjangoInbox(using={self.using!r})"

    def _db(self) -> str:
        from django.db import router

        return self.using or str(router.db_for_write(_models().InboxEvent))

    @contextlib.contextmanager
    def _transaction(self, doing: str) -> Iterator[str]:
        from django.db import DatabaseError, connections, transaction

        db = self._db()
        connection = connections[db]
        try:
            with transaction.atomic(using=db):
                if connection.vendor == "sqlite":
                    # A write as the first statement takes SQLite's write lock now, waiting on
                    # the busy timeout; a read first would take a shared lock and fail with
                    # "database is locked" on the way to writing, if another writer came in.
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "UPDATE asana_webhooks_inbox_counter SET value = value "
                            "WHERE name = 'stored'"
                        )
                yield db
        except DatabaseError as exc:
            # A connection that broke (the database restarted) cannot roll back, and Django's
            # atomic() closes it then: the next call, a worker's retry say, opens a new one.
            raise InboxError(
                f"Django inbox (database {db!r}) could not {doing}: {type(exc).__name__}: {exc}"
            ) from exc

    def _bump(self, db: str, name: str, by: int) -> None:
        from django.db.models import F

        if by <= 0:
            return
        counter = _models().InboxCounter
        counters = counter.objects.using(db)
        if not counters.filter(name=name).update(value=F("value") + by):
            # First time: create it, or add to the row a concurrent first time created.
            counters.bulk_create([counter(name=name, value=0)], ignore_conflicts=True)
            counters.filter(name=name).update(value=F("value") + by)

    # --- storing ---

    def _store(
        self, db: str, target: str, events: Sequence[Mapping[str, Any]], now: float
    ) -> StoreResult:
        model = _models().InboxEvent
        delivery = uuid.uuid4().hex
        fresh: dict[str, Any] = {}
        for event in events:
            key = event_key(event)
            if key not in fresh:  # an event repeated in one body is one event
                fresh[key] = model(
                    key=key,
                    target=target,
                    received_at=now,
                    raw=json.dumps(event, separators=(",", ":")),
                    delivery=delivery,
                    available_at=now,
                )
        known = set(
            model.objects.using(db).filter(key__in=list(fresh)).values_list("key", flat=True)
        )
        rows = [row for key, row in fresh.items() if key not in known]
        # Another server may store the same event between our look and our insert:
        # ON CONFLICT DO NOTHING, then count what is ours by the delivery's id.
        model.objects.using(db).bulk_create(rows, ignore_conflicts=True)
        ids = tuple(
            str(i)
            for i in model.objects.using(db)
            .filter(delivery=delivery)
            .order_by("id")
            .values_list("id", flat=True)
        )
        duplicates = len(events) - len(ids)
        self._bump(db, "stored", len(ids))
        self._bump(db, "duplicates", duplicates)
        return StoreResult(stored=len(ids), duplicates=duplicates, ids=ids)

    def store(self, target: str, events: Sequence[Mapping[str, Any]]) -> StoreResult:
        now = self._clock()
        with self._transaction("store the delivery") as db:
            return self._store(db, target, events, now)

    def store_polled(
        self,
        resource: str,
        events: Sequence[Mapping[str, Any]],
        sync: str,
        *,
        restart: bool = False,
    ) -> StoreResult:
        if not resource:
            raise ValueError("resource must be a non-empty gid")
        now = self._clock()
        with self._transaction("store polled events") as db:
            result = self._store(db, polled_target(resource), events, now)
            token, created = (
                _models()
                .SyncToken.objects.using(db)
                .select_for_update()
                .get_or_create(
                    resource=resource,
                    defaults={"sync": sync, "stored_at": now, "covered_since": now},
                )
            )
            if not created:
                # covered_since: kept while the run of tokens is unbroken, now when it restarts.
                token.sync, token.stored_at = sync, now
                if restart or token.covered_since is None:
                    token.covered_since = now
                token.save(using=db)
            return result

    def sync_token(self, resource: str) -> Optional[str]:
        state = self.sync_state(resource)
        return None if state is None else state.token

    def sync_state(self, resource: str) -> Optional[SyncState]:
        with self._transaction("read the sync token") as db:
            row = (
                _models()
                .SyncToken.objects.using(db)
                .filter(resource=resource)
                .values_list("sync", "stored_at", "covered_since", "updated_at")
                .first()
            )
        if row is None:
            return None
        sync, stored_at, covered_since, updated_at = row
        if stored_at is None:  # stored before these columns existed
            stored_at = updated_at.timestamp()
        return SyncState(str(sync), float(stored_at), float(covered_since or stored_at))

    # --- claiming ---

    def _claimable(self, db: str, now: float) -> Any:
        from django.db.models import Q

        model = _models().InboxEvent
        return model.objects.using(db).filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
            state=model.PENDING,
            available_at__lte=now,
        )

    def claim(self, worker: str, *, lease: float, limit: int = 100) -> Optional[Claim]:
        if not lease > 0:
            raise ValueError(f"lease must be positive seconds, got {lease!r}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        now = self._clock()
        token = f"{worker}:{uuid.uuid4().hex}"[-200:]
        with self._transaction("claim events") as db:
            from django.db.models import F

            model = _models().InboxEvent
            # Events under a lease that ran out: their worker died with them. Count it.
            model.objects.using(db).filter(
                state=model.PENDING, claim_token__isnull=False, lease_expires_at__lte=now
            ).update(
                attempts=F("attempts") + 1,
                error=LEASE_LOST,
                claim_token=None,
                lease_expires_at=None,
            )
            # SKIP LOCKED: rows another worker is claiming right now are passed over, not
            # waited for (a no-op on SQLite, whose write lock already serialises claims).
            claimable = self._claimable(db, now).order_by("id")
            head = claimable.select_for_update(skip_locked=True).first()
            if head is None:
                return None
            mine = claimable.filter(target=head.target)
            rows = list(mine.select_for_update(skip_locked=True)[:limit])
            # Past the limit only to keep the last delivery's events together.
            rows += list(
                mine.filter(delivery=rows[-1].delivery, id__gt=rows[-1].id).select_for_update(
                    skip_locked=True
                )
            )
            expires_at = now + lease
            _models().InboxEvent.objects.using(db).filter(id__in=[r.id for r in rows]).update(
                claim_token=token, lease_expires_at=expires_at
            )
        return Claim(
            token=token,
            target=head.target,
            events=tuple(_stored(row) for row in rows),
            expires_at=expires_at,
        )

    def _held(self, db: str, claim: Claim) -> Any:
        model = _models().InboxEvent
        # Only rows this claim still holds: if its lease ran out, another worker may have them.
        return model.objects.using(db).filter(
            id__in=_ids(claim), claim_token=claim.token, state=model.PENDING
        )

    def renew(self, claim: Claim, *, lease: float) -> bool:
        if not lease > 0:
            raise ValueError(f"lease must be positive seconds, got {lease!r}")
        with self._transaction("renew a claim") as db:
            return bool(self._held(db, claim).update(lease_expires_at=self._clock() + lease))

    def complete(self, claim: Claim) -> None:
        model = _models().InboxEvent
        with self._transaction("complete a claim") as db:
            done = self._held(db, claim).update(
                state=model.HANDLED,
                finished_at=self._clock(),
                claim_token=None,
                lease_expires_at=None,
            )
            self._bump(db, "handled", done)

    def retry(self, claim: Claim, error: str, *, delay: float) -> None:
        from django.db.models import F

        with self._transaction("retry a claim") as db:
            done = self._held(db, claim).update(
                available_at=self._clock() + max(0.0, delay),
                attempts=F("attempts") + 1,
                error=error,
                claim_token=None,
                lease_expires_at=None,
            )
            self._bump(db, "retried", done)

    def park(self, claim: Claim, error: str) -> None:
        from django.db.models import F

        model = _models().InboxEvent
        with self._transaction("park a claim") as db:
            done = self._held(db, claim).update(
                state=model.FAILED,
                attempts=F("attempts") + 1,
                error=error,
                claim_token=None,
                lease_expires_at=None,
            )
            self._bump(db, "parked", done)

    def release(self, claim: Claim) -> None:
        with self._transaction("release a claim") as db:
            self._held(db, claim).update(claim_token=None, lease_expires_at=None)

    # --- parked events ---

    def failed(self, limit: int = 100) -> list[StoredEvent]:
        model = _models().InboxEvent
        if limit < 1:
            return []
        with self._transaction("list failed events") as db:
            rows = list(model.objects.using(db).filter(state=model.FAILED).order_by("id")[:limit])
        return [_stored(row) for row in rows]

    def replay(self, ids: Sequence[str]) -> int:
        model = _models().InboxEvent
        numbers = [int(i) for i in ids if str(i).isdigit() and int(i) < 2**63]
        if not numbers:
            return 0
        with self._transaction("replay events") as db:
            return int(
                model.objects.using(db)
                .filter(id__in=numbers, state=model.FAILED)
                .update(state=model.PENDING, attempts=0, error=None, available_at=self._clock())
            )

    def purge(self) -> int:
        model = _models().InboxEvent
        with self._transaction("purge failed events") as db:
            # The rows stay, emptied, until pruned: a late redelivery is still a duplicate.
            return int(
                model.objects.using(db)
                .filter(state=model.FAILED)
                .update(state=model.PURGED, raw="", finished_at=self._clock())
            )

    def prune(self, *, older_than: Optional[float] = None) -> int:
        model = _models().InboxEvent
        window = self.dedupe_window if older_than is None else older_than
        with self._transaction("prune handled events") as db:
            deleted, _ = (
                model.objects.using(db)
                .filter(
                    state__in=[model.HANDLED, model.PURGED],
                    finished_at__lt=self._clock() - window,
                )
                .delete()
            )
        return int(deleted)

    # --- counting ---

    def stats(self) -> InboxStats:
        from django.db.models import Count, Min, Q

        model = _models().InboxEvent
        now = self._clock()
        live = Q(state=model.PENDING, lease_expires_at__gt=now)
        with self._transaction("read the stats") as db:
            gauges = model.objects.using(db).aggregate(
                pending=Count("id", filter=Q(state=model.PENDING) & ~live),
                in_progress=Count("id", filter=live),
                failed=Count("id", filter=Q(state=model.FAILED)),
                oldest=Min("received_at", filter=Q(state=model.PENDING)),
            )
            counters = dict(
                _models()
                .InboxCounter.objects.using(db)
                .filter(name__in=_COUNTERS)
                .values_list("name", "value")
            )
        oldest = gauges["oldest"]
        return InboxStats(
            pending=gauges["pending"],
            in_progress=gauges["in_progress"],
            failed=gauges["failed"],
            oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
            **{name: int(counters.get(name, 0)) for name in _COUNTERS},
        )

    def note_gap(self, resource: str, since: Optional[float]) -> None:
        with self._transaction("record a sync-token gap") as db:
            self._bump(db, "gaps", 1)

    def close(self) -> None:
        """Nothing to release: Django manages its connections per thread and request."""
