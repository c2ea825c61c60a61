"""Settings of the example site. Everything site-specific comes from the environment.

- ``ASANA_ACCESS_TOKEN``: a personal access token, to create webhooks;
- ``ASANA_HOST``: the API base URL (default Asana's; ``FakeAsana.url`` to try it locally);
- ``PUBLIC_URL``: this site's URL as Asana reaches it (an ngrok URL, say);
- ``DJANGO_DB_PATH``: the SQLite file (default ``db.sqlite3`` beside ``manage.py``).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", *os.environ.get("ALLOWED_HOSTS", "").split(",")]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    # DjangoSecretStore's tables: run ``manage.py migrate`` once.
    "asana_webhooks.contrib.django",
    "feed",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # webhook_view is CSRF-exempt: Asana cannot send a CSRF token, the signature protects it.
    "django.middleware.csrf.CsrfViewMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
        # The handshake's request and the create call's write overlap: wait, don't fail.
        "OPTIONS": {"timeout": 10},
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

ASANA_HOST = os.environ.get("ASANA_HOST", "https://app.asana.com/api/1.0")
ASANA_ACCESS_TOKEN = os.environ.get("ASANA_ACCESS_TOKEN")
PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"asana_webhooks": {"handlers": ["console"], "level": "INFO"}},
}
