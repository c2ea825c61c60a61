"""Tables of ``DjangoSecretStore`` (one row per target's secret, one per announcement) and of
``DjangoInbox`` (events, counters, sync tokens).

Secret rows are keyed by the SHA-256 of the target key: a fixed-width key indexes
on every database Django supports, while targets may be long URLs.
"""

from __future__ import annotations

from django.db import models


class WebhookSecret(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """The secret Asana signs deliveries to one target with."""

    target_hash = models.CharField(max_length=64, primary_key=True)
    target = models.TextField()
    secret = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_secret"
        verbose_name = "webhook secret"

    def __str__(self) -> str:
        return str(self.target)

    def __repr__(self) -> str:
        # Never the secret: reprs end up in logs and error pages.
        return f"<WebhookSecret for {self.target!r}>"


class WebhookAnnouncement(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """A window in which one handshake for a target is welcome.

    A target's announcements queue in ``seq`` order: only the oldest live one admits a
    handshake. ``announcement_id`` is what ``DjangoSecretStore.announce`` returns.
    """

    seq = models.BigAutoField(primary_key=True)
    announcement_id = models.CharField(max_length=32, unique=True)
    target_hash = models.CharField(max_length=64)
    target = models.TextField()
    # Seconds since the epoch: compared with time.time(), free of time-zone settings.
    expires_at = models.FloatField()
    handshake_secret = models.TextField(null=True, blank=True)

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_announcement"
        verbose_name = "webhook announcement"
        indexes = [models.Index(fields=["target_hash", "seq"], name="asana_webhooks_ann_queue")]

    def __str__(self) -> str:
        return str(self.target)

    def __repr__(self) -> str:
        return f"<WebhookAnnouncement {self.announcement_id} for {self.target!r}>"


class WebhookLock(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """A short named lock (``ensure_webhooks`` takes one per run), held until ``expires_at``."""

    name = models.CharField(max_length=200, primary_key=True)
    token = models.CharField(max_length=32)
    expires_at = models.FloatField()  # seconds since the epoch, as time.time()

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_lock"
        verbose_name = "lock"

    def __str__(self) -> str:
        return str(self.name)


class WebhookContact(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """When a target last heard from Asana: its last heartbeat and its last delivery."""

    target_hash = models.CharField(max_length=64, primary_key=True)
    target = models.TextField()
    last_heartbeat = models.FloatField(null=True, blank=True)  # seconds since the epoch
    last_delivery = models.FloatField(null=True, blank=True)

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_contact"
        verbose_name = "webhook contact"

    def __str__(self) -> str:
        return str(self.target)


class InboxEvent(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """One event in ``DjangoInbox``: pending, in a worker's hands, handled or parked.

    Rows stay after their event is handled, for the dedupe window (the unique ``key`` drops
    redeliveries), and are deleted by ``DjangoInbox.prune``. A row is *in progress* while
    ``lease_expires_at`` is in the future; when it runs out (the worker died) the row is
    pending again for any worker.
    """

    PENDING = "pending"
    FAILED = "failed"
    HANDLED = "handled"
    PURGED = "purged"
    STATES = [
        (PENDING, "pending"),
        (FAILED, "failed"),
        (HANDLED, "handled"),
        (PURGED, "purged"),
    ]

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=64, unique=True)
    target = models.TextField()
    # Times in seconds since the epoch: compared with time.time(), free of time-zone settings.
    received_at = models.FloatField()
    raw = models.TextField()
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    # Events stored by one call share it, so that a claim keeps them together.
    delivery = models.CharField(max_length=32)
    available_at = models.FloatField()  #: Not claimed before this (a retry's delay).
    claim_token = models.CharField(max_length=200, null=True, blank=True)
    lease_expires_at = models.FloatField(null=True, blank=True)
    attempts = models.IntegerField(default=0)
    error = models.TextField(null=True, blank=True)
    finished_at = models.FloatField(null=True, blank=True)  #: Handled or purged at.

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_inbox_event"
        verbose_name = "inbox event"
        indexes = [
            models.Index(fields=["state", "available_at"], name="asana_inbox_claimable"),
            models.Index(fields=["state", "finished_at"], name="asana_inbox_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.state} event {self.id} for {self.target}"

    def __repr__(self) -> str:
        return f"<InboxEvent {self.id} {self.state} for {self.target!r}>"


class InboxCounter(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """The inbox's running totals (stored, duplicates, handled, retried, parked, gaps)."""

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_inbox_counter"
        verbose_name = "inbox counter"

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class SyncToken(models.Model):  # type: ignore[misc]  # Django ships no type hints
    """The Events API sync token to read a resource's events from next."""

    resource = models.CharField(max_length=64, primary_key=True)
    sync = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    #: When the token was stored, and since when the run of tokens is unbroken (inbox clock).
    stored_at = models.FloatField(null=True)
    covered_since = models.FloatField(null=True)

    class Meta:
        app_label = "asana_webhooks"
        db_table = "asana_webhooks_sync_token"
        verbose_name = "sync token"

    def __str__(self) -> str:
        return str(self.resource)

    def __repr__(self) -> str:
        # Never the token: it reads a resource's events.
        return f"<SyncToken for {self.resource!r}>"
