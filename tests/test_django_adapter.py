"""The Django view and DjangoSecretStore, through Django's own test client."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

pytest.importorskip("django")

from receiving_django import ensure_django, urlconf

from asana_webhooks import (
    Event,
    SecretStore,
    SQLiteSecretStore,
    WebhookReceiver,
    sign_body,
)

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
BODY = json.dumps(
    {"events": [{"resource": {"gid": "2", "resource_type": "task"}, "action": "changed"}]}
).encode()


class Site:
    """A Django site routing ``asana/<path:rest>`` to ``webhook_view(receiver)``."""

    def __init__(self, store: SecretStore, **receiver_options: Any) -> None:
        from django.test import Client
        from django.urls import path

        from asana_webhooks.contrib.django import webhook_view

        self.store = store
        self.calls: list[tuple[list[Event], str]] = []
        self.receiver = WebhookReceiver(store, self.on_events, **receiver_options)
        view = webhook_view(self.receiver)
        self.urls = urlconf(path("asana/", view), path("asana/<path:rest>", view))
        # Asana sends no CSRF token: enforce checks to prove the view is exempt.
        self.client = Client(enforce_csrf_checks=True)

    def on_events(self, events: Sequence[Event], target: str) -> None:
        self.calls.append((list(events), target))

    def post(self, url: str, body: bytes = b"", headers: Optional[dict[str, str]] = None) -> Any:
        from django.test import override_settings

        with override_settings(ROOT_URLCONF=self.urls):
            return self.client.post(
                url, data=body, content_type="application/json", headers=headers or {}
            )

    def establish(self, target: str) -> None:
        self.store.announce(target)
        answer = self.post(target, headers={"X-Hook-Secret": SECRET})
        assert answer.status_code == 200, answer.content


@pytest.fixture(scope="module", autouse=True)
def django_configured() -> None:
    ensure_django()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(SQLiteSecretStore(tmp_path / "secrets.sqlite3"))


@pytest.fixture
def django_store() -> Iterator[SecretStore]:
    from asana_webhooks.contrib.django import DjangoSecretStore
    from asana_webhooks.contrib.django.models import WebhookAnnouncement, WebhookSecret

    yield DjangoSecretStore()
    WebhookSecret.objects.all().delete()
    WebhookAnnouncement.objects.all().delete()


def test_handshake_echoes_the_secret_and_stores_it(site: Site) -> None:
    site.store.announce("https://example.com/asana/1201?team=a")
    answer = site.post("/asana/1201?team=a", headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 200, "the view must be CSRF-exempt"
    assert answer["X-Hook-Secret"] == SECRET
    assert site.store.get("/asana/1201?team=a") == SECRET


def test_an_unannounced_handshake_is_forbidden(site: Site) -> None:
    assert site.post("/asana/1201", headers={"X-Hook-Secret": SECRET}).status_code == 403
    assert site.store.get("/asana/1201") is None


def test_a_signed_delivery_reaches_the_app_with_its_target(site: Site) -> None:
    site.establish("/asana/1201?team=a")
    answer = site.post(
        "/asana/1201?team=a", BODY, headers={"X-Hook-Signature": sign_body(BODY, SECRET)}
    )
    assert answer.status_code == 200
    ((events, target),) = site.calls
    assert target == "/asana/1201?team=a"
    assert events[0].resource is not None
    assert events[0].resource.gid == "2"


def test_a_bad_signature_is_unauthorized(site: Site) -> None:
    site.establish("/asana/1201")
    answer = site.post("/asana/1201", BODY, headers={"X-Hook-Signature": sign_body(BODY, "wrong")})
    assert answer.status_code == 401
    assert site.calls == []


def test_the_raw_body_is_verified_even_when_sent_as_a_form(site: Site) -> None:
    from django.test import override_settings

    site.establish("/asana/1201")
    with override_settings(ROOT_URLCONF=site.urls):
        answer = site.client.post(
            "/asana/1201",
            data=BODY,
            content_type="application/x-www-form-urlencoded",
            headers={"X-Hook-Signature": sign_body(BODY, SECRET)},
        )
    assert answer.status_code == 200
    assert len(site.calls) == 1


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_not_allowed(site: Site, method: str) -> None:
    from django.test import override_settings

    with override_settings(ROOT_URLCONF=site.urls):
        answer = getattr(site.client, method)("/asana/1201")
    assert answer.status_code == 405
    assert answer["Allow"] == "POST"


def test_a_declared_length_over_the_limit_is_refused(tmp_path: Path) -> None:
    site = Site(SQLiteSecretStore(tmp_path / "secrets.sqlite3"), max_body_bytes=1024)
    site.establish("/asana/1201")
    big = b'{"events": [' + b" " * 4096 + b"]}"
    answer = site.post("/asana/1201", big, headers={"X-Hook-Signature": sign_body(big, SECRET)})
    assert answer.status_code == 413
    assert site.calls == []


def test_djangos_own_upload_limit_also_gives_413(site: Site) -> None:
    from django.test import override_settings

    site.establish("/asana/1201")
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10):
        answer = site.post(
            "/asana/1201", BODY, headers={"X-Hook-Signature": sign_body(BODY, SECRET)}
        )
    assert answer.status_code == 413


def test_login_required_middleware_does_not_block_asana(site: Site) -> None:
    from django.test import override_settings

    try:
        from django.contrib.auth.middleware import LoginRequiredMiddleware  # noqa: F401
    except ImportError:
        pytest.skip("LoginRequiredMiddleware arrived in Django 5.1")
    from django.conf import settings

    middleware = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    site.store.announce("/asana/1201")
    with override_settings(MIDDLEWARE=middleware, LOGIN_URL="/login/"):
        answer = site.post("/asana/1201", headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 200, "Asana cannot log in: the view must be login-exempt"


def test_handshake_and_delivery_through_the_django_store(django_store: SecretStore) -> None:
    site = Site(django_store)
    site.establish("/asana/1201")
    answer = site.post("/asana/1201", BODY, headers={"X-Hook-Signature": sign_body(BODY, SECRET)})
    assert answer.status_code == 200
    assert len(site.calls) == 1


def test_django_store_models_never_show_secrets(django_store: SecretStore) -> None:
    from asana_webhooks.contrib.django.models import WebhookSecret

    django_store.set("/asana/1201", SECRET)
    row = WebhookSecret.objects.get()
    assert SECRET not in repr(row)
    assert SECRET not in str(row)
    assert SECRET not in repr(django_store)


def test_the_migration_matches_the_models() -> None:
    from django.core.management import call_command

    # Exits non-zero (SystemExit) if the models changed without a migration.
    call_command("makemigrations", "asana_webhooks", check=True, dry_run=True, verbosity=0)


def test_the_view_works_without_the_app_installed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import django
        from django.conf import settings
        settings.configure(
            SECRET_KEY="x", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF=__name__,
            INSTALLED_APPS=[], DATABASES={{}},
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        )
        django.setup()
        from django.test import Client
        from django.urls import path
        from asana_webhooks import SQLiteSecretStore, WebhookReceiver
        from asana_webhooks.contrib.django import webhook_view
        assert "asana_webhooks.contrib.django.models" not in sys.modules
        store = SQLiteSecretStore({str(tmp_path / "secrets.sqlite3")!r})
        urlpatterns = [path("asana/<path:rest>", webhook_view(WebhookReceiver(store)))]
        store.announce("/asana/1")
        answer = Client(enforce_csrf_checks=True).post(
            "/asana/1", headers={{"X-Hook-Secret": "abc"}}
        )
        assert answer.status_code == 200, answer.status_code
        assert "asana_webhooks.contrib.django.models" not in sys.modules
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
