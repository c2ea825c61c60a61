"""Tables of ``DjangoSecretStore``: one row per target's secret, one per announcement.

Rows are keyed by the SHA-256 of the target key: a fixed-width key indexes on every database
Django supports, while targets may be long URLs.
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
