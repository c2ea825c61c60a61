"""``DjangoSecretStore``: webhook secrets in the site's database, shared by all its servers."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Optional

from asana_webhooks._secrets import (
    ANNOUNCEMENT_GRACE,
    DEFAULT_ANNOUNCEMENT_TTL,
    Contact,
    _check_lock,
    _check_ttl,
    new_announcement_id,
    target_key,
)

# The first key of PostgreSQL advisory locks taken by this store ("Asna"), so that they do not
# collide with other applications' single-key locks on the same database.
_LOCK_CLASS = 0x41736E61


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _models() -> tuple[Any, Any]:
    # Imported on use: the view must work without this app in INSTALLED_APPS.
    from asana_webhooks.contrib.django.models import WebhookAnnouncement, WebhookSecret

    return WebhookSecret, WebhookAnnouncement


def _lock_and_contact_models() -> tuple[Any, Any]:
    from asana_webhooks.contrib.django.models import WebhookContact, WebhookLock

    return WebhookLock, WebhookContact


class DjangoSecretStore:
    """A secret store on the Django ORM.

    Needs ``"asana_webhooks.contrib.django"`` in ``INSTALLED_APPS`` and ``manage.py migrate``.
    ``using`` names the database alias (default: the router's choice for writes).

    Every call is one transaction, and every transaction that writes *writes first*: on
    SQLite a transaction that reads and then writes fails at once with "database is locked"
    when another connection wrote meanwhile (SQLite cannot wait there, and ignores
    ``select_for_update``), while one that starts with a write waits for the lock like any
    other. On PostgreSQL (and MySQL) the same first write locks the target's announcement
    rows, so a handshake and a withdrawal of one target never interleave; announcements of
    one target take a transaction-scoped advisory lock on PostgreSQL so that they queue in
    the order they commit. Tested on SQLite and PostgreSQL. Call the store
    outside your own ``atomic`` blocks: inside one that has read already, SQLite can still
    refuse the upgrade.
    """

    def __init__(self, *, using: Optional[str] = None, clock: Callable[[], float] = time.time):
        self.using = using
        self._clock = clock

    def __repr__(self) -> str:
        return f"DjangoSecretStore(using={self.using!r})"

    def _db(self) -> str:
        from django.db import router

        secret_model, _ = _models()
        return self.using or str(router.db_for_write(secret_model))

    def get(self, target: str) -> Optional[str]:
        secret_model, _ = _models()
        key = target_key(target)
        row = (
            secret_model.objects.using(self._db())
            .filter(target_hash=_hash(key))
            .values_list("secret", flat=True)
            .first()
        )
        return None if row is None else str(row)

    def set(self, target: str, secret: str) -> None:
        from django.db import transaction

        db = self._db()
        with transaction.atomic(using=db):
            self._put(db, target_key(target), secret)

    def _put(self, db: str, key: str, secret: str) -> None:
        # UPDATE, then INSERT if there was nothing to update: a write first, never a read.
        from django.db import IntegrityError, transaction
        from django.utils import timezone

        secret_model, _ = _models()
        rows = secret_model.objects.using(db).filter(target_hash=_hash(key))
        values = {"target": key, "secret": secret, "updated_at": timezone.now()}
        if rows.update(**values):
            return
        try:
            with transaction.atomic(using=db):
                secret_model.objects.using(db).create(target_hash=_hash(key), **values)
        except IntegrityError:  # another connection inserted it meanwhile (PostgreSQL)
            rows.update(**values)

    def delete(self, target: str) -> None:
        from django.db import transaction
        from django.db.models import F

        secret_model, _ = _models()
        db = self._db()
        rows = secret_model.objects.using(db).filter(target_hash=_hash(target_key(target)))
        with transaction.atomic(using=db):
            # Write first: with delete signals connected, Django reads the rows before
            # deleting them, and on SQLite a read-then-write can fail at once.
            rows.update(secret=F("secret"))
            rows.delete()

    def _lock_target(self, db: str, key_hash: str) -> None:
        # A write that changes nothing: it takes SQLite's write lock (even when it matches no
        # row) and, elsewhere, the row locks of this target's announcements.
        from django.db.models import F

        _, announcement_model = _models()
        announcement_model.objects.using(db).filter(target_hash=key_hash).update(
            expires_at=F("expires_at")
        )

    def _serialise_announcements(self, db: str, key_hash: str) -> None:
        # Announcements queue in seq order, so a target's seqs must become visible in that
        # order. PostgreSQL hands out seqs at INSERT and shows rows at COMMIT: two announces
        # could commit out of order, and each would see itself first. A per-target lock
        # until commit puts them in line. (SQLite has one writer at a time: seqs are drawn
        # in commit order already.)
        from django.db import connections

        connection = connections[db]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, int(key_hash[:7], 16)]
                )

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> str:
        from django.db import transaction

        ttl = _check_ttl(ttl)
        _, announcement_model = _models()
        key = target_key(target)
        key_hash = _hash(key)
        announcement = new_announcement_id()
        db = self._db()
        with transaction.atomic(using=db):
            self._serialise_announcements(db, key_hash)
            now = self._clock()
            announcement_model.objects.using(db).create(
                announcement_id=announcement,
                target_hash=key_hash,
                target=key,
                expires_at=now + ttl,
            )
            # Announcements whose process died before withdrawing them: long expired, gone.
            # (After the INSERT: a delete may read first, if delete signals are connected.)
            announcement_model.objects.using(db).filter(
                target_hash=key_hash, expires_at__lte=now - ANNOUNCEMENT_GRACE
            ).delete()
        return announcement

    def current_announcement(self, target: str) -> Optional[str]:
        _, announcement_model = _models()
        current = (
            announcement_model.objects.using(self._db())
            .filter(target_hash=_hash(target_key(target)), expires_at__gt=self._clock())
            .order_by("seq")
            .values_list("announcement_id", flat=True)
            .first()
        )
        return None if current is None else str(current)

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        from django.db import IntegrityError, transaction

        secret_model, announcement_model = _models()
        key = target_key(target)
        key_hash = _hash(key)
        db = self._db()
        with transaction.atomic(using=db):
            self._lock_target(db, key_hash)
            current = (
                announcement_model.objects.using(db)
                .filter(target_hash=key_hash, expires_at__gt=self._clock())
                .order_by("seq")
                .values_list("seq", "handshake_secret")
                .first()
            )
            if current is not None:
                seq, received = current
                if received is not None:
                    return False
                announcement_model.objects.using(db).filter(seq=seq).update(handshake_secret=secret)
                self._put(db, key, secret)
                return True
            if require_announcement:
                return False
            if secret_model.objects.using(db).filter(target_hash=key_hash).exists():
                return False
            try:
                with transaction.atomic(using=db):
                    secret_model.objects.using(db).create(
                        target_hash=key_hash, target=key, secret=secret
                    )
            except IntegrityError:  # the target got a secret meanwhile
                return False
            return True

    def withdraw_announcement(self, target: str, announcement: str) -> Optional[str]:
        from django.db import transaction

        _, announcement_model = _models()
        key_hash = _hash(target_key(target))
        db = self._db()
        with transaction.atomic(using=db):
            self._lock_target(db, key_hash)
            rows = announcement_model.objects.using(db).filter(
                announcement_id=announcement, target_hash=key_hash
            )
            received = rows.values_list("handshake_secret", flat=True).first()
            rows.delete()
        return None if received is None else str(received)

    # --- the ensure lock and the receiver's record of contact ------------------------------

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds; its token, or None if another holds it.

        Write first, as everywhere in this store: an expired lock is taken over by an UPDATE
        (which waits for a concurrent one, and then finds the lock no longer expired), a
        free one by an INSERT that the primary key lets only one connection make.
        """
        from django.db import IntegrityError, transaction

        ttl = _check_lock(name, ttl)
        lock_model, _ = _lock_and_contact_models()
        token = new_announcement_id()
        db = self._db()
        now = self._clock()
        with transaction.atomic(using=db):
            taken = (
                lock_model.objects.using(db)
                .filter(name=name, expires_at__lte=now)
                .update(token=token, expires_at=now + ttl)
            )
            if taken:
                return token
            try:
                with transaction.atomic(using=db):
                    lock_model.objects.using(db).create(
                        name=name, token=token, expires_at=now + ttl
                    )
            except IntegrityError:  # held, and not expired
                return None
        return token

    def renew_lock(self, name: str, token: str, ttl: float) -> bool:
        """Hold the lock ``name`` ``ttl`` more seconds from now, if ``token`` still holds it."""
        from django.db import transaction

        ttl = _check_lock(name, ttl)
        lock_model, _ = _lock_and_contact_models()
        db = self._db()
        now = self._clock()
        with transaction.atomic(using=db):
            renewed = (
                lock_model.objects.using(db)
                .filter(name=name, token=token, expires_at__gt=now)
                .update(expires_at=now + ttl)
            )
        return bool(renewed)

    def release_lock(self, name: str, token: str) -> None:
        """Let go of the lock ``name`` if ``token`` still holds it (else nothing happens)."""
        from django.db import transaction
        from django.db.models import F

        lock_model, _ = _lock_and_contact_models()
        db = self._db()
        rows = lock_model.objects.using(db).filter(name=name, token=token)
        with transaction.atomic(using=db):
            rows.update(expires_at=F("expires_at"))  # write first (see delete)
            rows.delete()

    def record_contact(self, target: str, *, heartbeat: bool, at: float) -> None:
        """Note that ``target`` heard from Asana at ``at`` (a heartbeat, or a delivery)."""
        from django.db import IntegrityError, transaction
        from django.db.models import F, FloatField, Value
        from django.db.models.functions import Coalesce, Greatest

        _, contact_model = _lock_and_contact_models()
        key = target_key(target)
        column = "last_heartbeat" if heartbeat else "last_delivery"
        at = float(at)
        latest = Greatest(
            Coalesce(F(column), Value(at), output_field=FloatField()),
            Value(at),
            output_field=FloatField(),
        )
        db = self._db()
        rows = contact_model.objects.using(db).filter(target_hash=_hash(key))
        with transaction.atomic(using=db):
            if rows.update(**{column: latest}):
                return
            try:
                with transaction.atomic(using=db):
                    contact_model.objects.using(db).create(
                        target_hash=_hash(key), target=key, **{column: at}
                    )
            except IntegrityError:  # another receiver recorded it meanwhile
                rows.update(**{column: latest})

    def last_contact(self, target: str) -> Contact:
        """When ``target`` last had a heartbeat and a delivery (None where never)."""
        _, contact_model = _lock_and_contact_models()
        row = (
            contact_model.objects.using(self._db())
            .filter(target_hash=_hash(target_key(target)))
            .values_list("last_heartbeat", "last_delivery")
            .first()
        )
        if row is None:
            return Contact()
        return Contact(last_heartbeat=row[0], last_delivery=row[1])
