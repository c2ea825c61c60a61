"""The ensure lock and the receiver's record of heartbeats and deliveries (issue #16)."""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no type hints
    dependencies = [("asana_webhooks", "0004_sync_token_times")]

    operations = [
        migrations.CreateModel(
            name="WebhookLock",
            fields=[
                ("name", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("token", models.CharField(max_length=32)),
                ("expires_at", models.FloatField()),
            ],
            options={"verbose_name": "lock", "db_table": "asana_webhooks_lock"},
        ),
        migrations.CreateModel(
            name="WebhookContact",
            fields=[
                (
                    "target_hash",
                    models.CharField(max_length=64, primary_key=True, serialize=False),
                ),
                ("target", models.TextField()),
                ("last_heartbeat", models.FloatField(blank=True, null=True)),
                ("last_delivery", models.FloatField(blank=True, null=True)),
            ],
            options={"verbose_name": "webhook contact", "db_table": "asana_webhooks_contact"},
        ),
    ]
