from django.apps import AppConfig


class FeedConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    name = "feed"
    verbose_name = "Asana event feed"
