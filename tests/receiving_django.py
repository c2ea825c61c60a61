"""Django set up once, lazily, for the receiving tests (not a conftest: nothing here runs
unless a test asks for it, so other test files never see Django configured by accident)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import types
from pathlib import Path
from typing import Any

_configured = False


def ensure_django() -> None:
    """Configure Django (SQLite database in a temp dir, our app installed) and migrate."""
    global _configured
    if _configured:
        return
    import django
    from django.conf import settings

    if not settings.configured:
        directory = Path(tempfile.mkdtemp(prefix="asana-webhooks-django-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        settings.configure(
            DEBUG=False,
            SECRET_KEY="receiving-tests-only",
            ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "django.contrib.sessions",
                "asana_webhooks.contrib.django",
            ],
            MIDDLEWARE=[
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.middleware.common.CommonMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
            ],
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": str(directory / "site.sqlite3"),
                }
            },
            ROOT_URLCONF=__name__,
            USE_TZ=True,
        )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    _configured = True


def urlconf(*patterns: Any) -> types.ModuleType:
    """A URLconf module object to hand to ``override_settings(ROOT_URLCONF=...)``."""
    module = types.ModuleType("receiving_urls")
    module.urlpatterns = list(patterns)  # type: ignore[attr-defined]
    return module


urlpatterns: list[Any] = []
