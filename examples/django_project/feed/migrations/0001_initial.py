"""The ReceivedEvent table."""

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no type hints
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="ReceivedEvent",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_key", models.CharField(max_length=64, unique=True)),
                ("target", models.TextField()),
                ("created_at", models.DateTimeField(null=True)),
                ("action", models.CharField(blank=True, max_length=32)),
                ("resource_gid", models.CharField(blank=True, max_length=64)),
                ("resource_type", models.CharField(blank=True, max_length=64)),
                ("field", models.CharField(blank=True, max_length=128)),
                ("user_gid", models.CharField(blank=True, max_length=64)),
                ("received_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["id"]},
        ),
    ]
