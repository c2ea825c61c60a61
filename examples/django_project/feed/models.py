"""Events as they arrived. ``event_key`` makes a second delivery of the same event a no-op."""

from django.db import models


class ReceivedEvent(models.Model):  # type: ignore[misc]  # Django ships no type hints
    event_key = models.CharField(max_length=64, unique=True)
    target = models.TextField()
    created_at = models.DateTimeField(null=True)
    action = models.CharField(max_length=32, blank=True)
    resource_gid = models.CharField(max_length=64, blank=True)
    resource_type = models.CharField(max_length=64, blank=True)
    field = models.CharField(max_length=128, blank=True)
    user_gid = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type} {self.resource_gid}"
