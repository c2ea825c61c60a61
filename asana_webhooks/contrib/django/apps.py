"""The Django app holding ``DjangoSecretStore``'s tables."""

from django.apps import AppConfig


class AsanaWebhooksConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    name = "asana_webhooks.contrib.django"
    # "django", the package's last name, would clash with Django's own labels.
    label = "asana_webhooks"
    verbose_name = "Asana webhooks"
    default_auto_field = "django.db.models.AutoField"
