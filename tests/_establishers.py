"""Processes and threads that call ``establish_webhook`` at the same moment, for the tests of
concurrent establishers (issue #12 item 1). A store is described by a plain dict (a "spec")
so that a child process can open the same store as its parent."""

from __future__ import annotations

from typing import Any

from asana_webhooks import (
    ApiClient,
    Configuration,
    RetryPolicy,
    SecretStore,
    SQLiteSecretStore,
    Timeout,
    WebhooksApi,
    establish_webhook,
)


def open_store(spec: dict[str, Any]) -> SecretStore:
    """The store ``spec`` describes: ``{"kind": "sqlite", "path": ...}`` or
    ``{"kind": "django", "database": <a Django DATABASES entry>}`` (Django is configured on
    first use in a process that has no settings yet; the tables must exist)."""
    if spec["kind"] == "sqlite":
        return SQLiteSecretStore(spec["path"], timeout=spec.get("timeout", 5.0))
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["asana_webhooks.contrib.django"],
            DATABASES={"default": spec["database"]},
            USE_TZ=True,
        )
        django.setup()
    from asana_webhooks.contrib.django import DjangoSecretStore

    return DjangoSecretStore(using=spec.get("alias"))


def make_api(url: str, token: str) -> WebhooksApi:
    return WebhooksApi(
        ApiClient(
            Configuration(
                host=url,
                access_token=token,
                timeout=Timeout(connect=5.0, read=60.0),
                retry=RetryPolicy(max_time=120.0),
            )
        )
    )


def establish_once(
    api: WebhooksApi, store: SecretStore, resource: str, target: str, workspace: str
) -> tuple[str, str]:
    """("ok", gid) or (error type, message): what one establisher saw."""
    try:
        webhook = establish_webhook(api, store, resource, target, workspace=workspace)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    finally:
        if type(store).__name__ == "DjangoSecretStore":
            from django.db import connections

            connections.close_all()
    return "ok", str(webhook.gid)


def child(
    index: int,
    spec: dict[str, Any],
    url: str,
    token: str,
    workspace: str,
    jobs: list[tuple[str, str]],
    barrier: Any,
    results: Any,
) -> None:
    """A child process: for each (resource, target), wait for the others, then establish."""
    store = open_store(spec)
    api = make_api(url, token)
    for resource, target in jobs:
        barrier.wait(timeout=300)
        results.put((index, target, *establish_once(api, store, resource, target, workspace)))


def take_turns(
    index: int, spec: dict[str, Any], target: str, rounds: int, barrier: Any, results: Any
) -> None:
    """A child process: ``rounds`` times announce, wait for the turn, handshake, withdraw.

    Puts (index, errors, mismatches) on ``results``: store calls that raised (by type and
    message), and turns that read back a secret other than their own handshake's.
    """
    import time

    store = open_store(spec)
    errors: list[str] = []
    mismatches = 0
    barrier.wait(timeout=300)
    for round_ in range(rounds):
        secret = f"{index:032x}{round_:032x}"
        try:
            announcement = store.announce(target, 120)
            deadline = time.monotonic() + 120
            while store.current_announcement(target) != announcement:
                if time.monotonic() > deadline:
                    raise TimeoutError("the turn never came")
                time.sleep(0.005)
            if not store.accept_handshake(target, secret, require_announcement=True):
                mismatches += 1
            if store.withdraw_announcement(target, announcement) != secret:
                mismatches += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    results.put((index, errors, mismatches))
