"""Announcements get their own id and queue per target (issue #12 item 1).

Announcements live for minutes, so the table is dropped and made again rather than
converted: an establish_webhook running during the migration fails its handshake and can
be called again.
"""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no type hints
    dependencies = [("asana_webhooks", "0001_initial")]

    operations = [
        migrations.DeleteModel(name="WebhookAnnouncement"),
        migrations.CreateModel(
            name="WebhookAnnouncement",
            fields=[
                ("seq", models.BigAutoField(primary_key=True, serialize=False)),
                ("announcement_id", models.CharField(max_length=32, unique=True)),
                ("target_hash", models.CharField(max_length=64)),
                ("target", models.TextField()),
                ("expires_at", models.FloatField()),
                ("handshake_secret", models.TextField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "webhook announcement",
                "db_table": "asana_webhooks_announcement",
                "indexes": [
                    models.Index(fields=["target_hash", "seq"], name="asana_webhooks_ann_queue")
                ],
            },
        ),
    ]
