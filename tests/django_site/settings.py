"""Settings of the test site: the inbox in the site's database, handled by ``handlers``."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

_database = os.environ["ASANA_WEBHOOKS_TEST_DJANGO_DB"]
if _database.startswith("postgresql://"):
    _parts = urlsplit(_database)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _parts.path.lstrip("/"),
            "USER": _parts.username or "postgres",
            "PASSWORD": _parts.password or "",
            "HOST": _parts.hostname or "127.0.0.1",
            "PORT": str(_parts.port or 5432),
            "OPTIONS": {"connect_timeout": 5},
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _database}}

SECRET_KEY = "django-site-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "django_site.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "asana_webhooks.contrib.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

ASANA_WEBHOOKS = {
    "INBOX": "django",
    "SECRET_STORE": "django",
    "HANDLER": os.environ.get("ASANA_WEBHOOKS_TEST_HANDLER", "django_site.handlers:record"),
    "WORKER": {"LEASE": 30, "MAX_ATTEMPTS": 2, "BACKOFF": 0.05, "POLL_INTERVAL": 0.05},
}
