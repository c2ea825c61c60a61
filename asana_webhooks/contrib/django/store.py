"""``DjangoSecretStore``: webhook secrets in the site's database, shared by all its servers."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Optional

from asana_webhooks._secrets import DEFAULT_ANNOUNCEMENT_TTL, target_key


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _models() -> tuple[Any, Any]:
    # Imported on use: the view must work without this app in INSTALLED_APPS.
    from asana_webhooks.contrib.django.models import WebhookAnnouncement, WebhookSecret

    return WebhookSecret, WebhookAnnouncement


class DjangoSecretStore:
    """A secret store on the Django ORM.

    Needs ``"asana_webhooks.contrib.django"`` in ``INSTALLED_APPS`` and ``manage.py migrate``.
    ``using`` names the database alias (default: the router's choice for writes). Every call
    is one transaction; the handshake's check-and-store is a conditional UPDATE, so it stays
    atomic on every database, SQLite included.
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
        secret_model, _ = _models()
        secret_model.objects.using(db).update_or_create(
            target_hash=_hash(key), defaults={"target": key, "secret": secret}
        )

    def delete(self, target: str) -> None:
        secret_model, _ = _models()
        secret_model.objects.using(self._db()).filter(
            target_hash=_hash(target_key(target))
        ).delete()

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> None:
        from django.db import transaction

        if not ttl > 0:
            raise ValueError(f"announcement ttl must be positive seconds, got {ttl!r}")
        _, announcement_model = _models()
        key = target_key(target)
        db = self._db()
        with transaction.atomic(using=db):
            announcement_model.objects.using(db).update_or_create(
                target_hash=_hash(key),
                defaults={
                    "target": key,
                    "expires_at": self._clock() + float(ttl),
                    "handshake_secret": None,
                },
            )

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        from django.db import IntegrityError, transaction

        secret_model, announcement_model = _models()
        key = target_key(target)
        key_hash = _hash(key)
        db = self._db()
        with transaction.atomic(using=db):
            announcements = announcement_model.objects.using(db).filter(target_hash=key_hash)
            # Only one handshake can turn handshake_secret from NULL: it alone wins.
            claimed = announcements.filter(
                expires_at__gt=self._clock(), handshake_secret__isnull=True
            ).update(handshake_secret=secret)
            if claimed:
                self._put(db, key, secret)
                return True
            if require_announcement or announcements.exists():
                return False
            try:
                with transaction.atomic(using=db):
                    secret_model.objects.using(db).create(
                        target_hash=key_hash, target=key, secret=secret
                    )
            except IntegrityError:  # the target has a secret already
                return False
            return True

    def withdraw_announcement(self, target: str) -> Optional[str]:
        from django.db import transaction

        _, announcement_model = _models()
        db = self._db()
        with transaction.atomic(using=db):
            rows = announcement_model.objects.using(db).filter(
                target_hash=_hash(target_key(target))
            )
            received = rows.select_for_update().values_list("handshake_secret", flat=True).first()
            rows.delete()
        return None if received is None else str(received)
