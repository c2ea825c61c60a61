"""When a sync token was stored and since when its run is unbroken (the reconciler's gaps)."""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no type hints
    dependencies = [("asana_webhooks", "0003_inbox")]

    operations = [
        migrations.AddField(
            model_name="synctoken",
            name="stored_at",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="synctoken",
            name="covered_since",
            field=models.FloatField(null=True),
        ),
    ]
