"""One filter syntax everywhere: ``TYPE[/SUBTYPE][:ACTION[:FIELD,...]]``, held to Asana's docs.

The parser is the library's (``asana_webhooks.parse_filter``); the command line and the Django
example's ``establish_webhook`` command use it, which the last tests check on the real
processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asana_webhooks import (
    InvalidFilterError,
    InvalidRequestError,
    WebhookFilter,
    check_filter,
    format_filter,
    parse_filter,
)
from asana_webhooks._filters import ACTIONS, DOCUMENTED_ACTIONS, RESOURCE_TYPES

DJANGO_PROJECT = Path(__file__).resolve().parent.parent / "examples" / "django_project"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("task:changed:name,due_on", WebhookFilter("task", None, "changed", ["name", "due_on"])),
        ("task:added", WebhookFilter("task", None, "added", None)),
        ("task", WebhookFilter("task", None, None, None)),
        ("task/milestone:changed", WebhookFilter("task", "milestone", "changed", None)),
        (":deleted", WebhookFilter(None, None, "deleted", None)),
        ("*:removed", WebhookFilter(None, None, "removed", None)),
        (" story : added ", WebhookFilter("story", None, "added", None)),
        ("custom_field:changed", WebhookFilter("custom_field", None, "changed", None)),
        ("task:changed:custom_fields", WebhookFilter("task", None, "changed", ["custom_fields"])),
    ],
)
def test_the_filter_syntax(spec: str, expected: WebhookFilter) -> None:
    assert parse_filter(spec) == expected


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("task changed", "separated by ':', as in task:changed"),
        ("tsak:changed", "did you mean 'task'?"),
        ("task:chnaged", "did you mean 'changed'?"),
        ("task:made", "one of added, changed, removed, deleted, undeleted"),
        ("task:added:name", "only be named with the action 'changed'"),
        ("attachment:added", "no 'added' events for attachment; its actions are deleted"),
        ("team_membership:changed", "its actions are added, removed"),
        ("Task:added", "is not a name"),
        ("task/:added", "empty subtype"),
        ("*/milestone", "needs its type"),
        ("task:changed:na me", "not a field name"),
        ("", "expected TYPE[/SUBTYPE][:ACTION[:FIELD,FIELD...]]"),
        ("*", "must name a type or an action"),
        ("::", "must name a type or an action"),
        ("a:b:c:d", "expected TYPE[/SUBTYPE][:ACTION[:FIELD,FIELD...]]"),
    ],
)
def test_malformed_or_undocumented_filters_are_refused_saying_why(
    spec: str, complaint: str
) -> None:
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter(spec)

    assert complaint in str(caught.value), str(caught.value)
    assert caught.value.text == spec
    assert str(caught.value).startswith(f"filter {spec!r}: ")
    assert isinstance(caught.value, InvalidRequestError), "one of the library's typed errors"
    assert isinstance(caught.value, ValueError)


def test_check_filter_holds_a_filter_built_in_code_to_the_same_rules() -> None:
    check_filter(WebhookFilter("task", None, "changed", ["name"]))
    with pytest.raises(InvalidFilterError, match="unknown action 'change'"):
        check_filter(WebhookFilter("task", None, "change", None))
    with pytest.raises(InvalidFilterError, match="unknown resource type 'tasks'"):
        check_filter(WebhookFilter("tasks", None, "added", None))


def test_every_documented_action_of_every_documented_type_is_accepted() -> None:
    for resource_type, actions in DOCUMENTED_ACTIONS.items():
        assert set(actions) <= set(ACTIONS)
        for action in actions:
            assert parse_filter(f"{resource_type}:{action}").action == action


CHANGEABLE = sorted(t for t in RESOURCE_TYPES if "changed" in DOCUMENTED_ACTIONS.get(t, ACTIONS))

valid_filters = st.builds(
    WebhookFilter,
    resource_type=st.sampled_from(CHANGEABLE),
    resource_subtype=st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)),
    action=st.just("changed"),
    fields=st.one_of(
        st.none(),
        st.lists(st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True), min_size=1, max_size=4),
    ),
)


@given(valid_filters)
def test_format_and_parse_are_inverse(item: WebhookFilter) -> None:
    assert parse_filter(format_filter(item)) == item


# --- the Django example's management command -------------------------------------------------


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=DJANGO_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def django_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_DB_PATH": str(tmp_path / "site.sqlite3"),
        "ASANA_HOST": "http://127.0.0.1:9/api/1.0",  # never reached by these tests
        "ASANA_ACCESS_TOKEN": "token-for-a-test",
        "PUBLIC_URL": "http://127.0.0.1:9",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def test_django_establish_webhook_refuses_a_bad_filter_with_the_same_message(
    django_env: dict[str, str],
) -> None:
    result = manage("establish_webhook", "1300", "--filter", "task changed", env=django_env)

    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "as in task:changed" in result.stderr, result.stderr


def test_django_establish_webhook_with_an_empty_token_says_to_set_it(
    django_env: dict[str, str],
) -> None:
    result = manage("establish_webhook", "1300", env={**django_env, "ASANA_ACCESS_TOKEN": ""})

    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "ASANA_ACCESS_TOKEN is not set" in result.stderr, result.stderr
    assert "401" not in result.stderr
