"""Declared-webhooks files: what is read, and every way a file is refused before any request."""

from __future__ import annotations

from pathlib import Path

import pytest

from asana_webhooks import DeclarationError, DeclaredWebhook, WebhookFilter, load_declared

GOOD = """
[[webhook]]
workspace = "1200000000000000"
resource = "1200000000000001"
target = "https://example.com/asana/webhooks/1200000000000001"
filters = [{ resource_type = "task", action = "changed", fields = ["name", "due_on"] }]

[[webhook]]
workspace = "1200000000000000"
resource = "1200000000000002"
target = "http://127.0.0.1:8080/asana/webhooks/1200000000000002"

[[webhook]]
workspace = "1200000000000000"
resource = "1200000000000000"
target = "https://example.com/asana/webhooks/workspace"
filters = [{ resource_type = "project", action = "added" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "webhooks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_gives_one_declared_webhook_per_entry(tmp_path: Path) -> None:
    declared = load_declared(write(tmp_path, GOOD))
    assert declared[0] == DeclaredWebhook(
        workspace="1200000000000000",
        resource="1200000000000001",
        target="https://example.com/asana/webhooks/1200000000000001",
        filters=(WebhookFilter(resource_type="task", action="changed", fields=["name", "due_on"]),),
    )
    assert declared[1].filters == (), "an absent filters key must mean no filters"
    assert declared[2].resource_type == "workspace", "resource == workspace is a workspace hook"


def entry(**fields: str) -> str:
    base = {
        "workspace": '"1200000000000000"',
        "resource": '"1200000000000001"',
        "target": '"https://example.com/asana/webhooks/1"',
    }
    base.update(fields)
    return "[[webhook]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (entry(colour='"blue"'), ("webhook 1", "colour", "unknown key")),
        (entry(target='"http://example.com/hook"'), ("webhook 1, target", "https")),
        (entry(target='"ftp://127.0.0.1/hook"'), ("webhook 1, target", "https")),
        (entry(resource='"not-a-gid"'), ("webhook 1, resource", "gid")),
        (entry(resource='1200000000000001'), ("webhook 1, resource", "gid")),
        (entry(workspace=""), ("webhook 1, workspace", "missing")),
        (entry(filters='[{ resource_type = "task", action = "edited" }]'),
         ("webhook 1, filters[1]", "'edited'", "changed")),
        (entry(filters='[{ resource_type = "taks", action = "changed" }]'),
         ("webhook 1, filters[1]", "'taks'", "task")),
        (entry(filters='[{ resource_type = "task", action = "added", fields = ["name"] }]'),
         ("webhook 1, filters[1]", "changed")),
        (entry(filters='[{ resource_type = "task", verb = "added" }]'),
         ("webhook 1, filters[1].verb", "unknown key")),
        (entry(filters='"task:changed"'), ("webhook 1, filters", "list")),
        (entry(resource='"1200000000000000"'), ("webhook 1, filters", "must have filters")),
        (entry(resource='"1200000000000000"',
               filters='[{ resource_type = "task", action = "changed" }]'),
         ("webhook 1, filters[1]", "'task'", "workspace, team or portfolio")),
        (entry(resource_type='"team"',
               filters='[{ resource_type = "project", action = "changed", fields = ["name"] }]'),
         ("webhook 1, filters[1]", "fields are not supported")),
        (entry() + entry(resource='"1200000000000002"'), ("webhook 2, target", "webhook 1")),
        ("[webhooks]\nx = 1\n", ("unknown top-level key 'webhooks'",)),
        ("[[webhook]\n", ("not valid TOML",)),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_naming_the_entry_and_the_field(
    tmp_path: Path, text: str, names: tuple[str, ...]
) -> None:
    with pytest.raises(DeclarationError) as refused:
        load_declared(write(tmp_path, text))
    for name in names:
        assert name in str(refused.value), f"{name!r} missing from: {refused.value}"


def test_the_same_target_spelled_differently_is_still_a_duplicate(tmp_path: Path) -> None:
    text = entry(target='"https://example.com/asana/%7Ehooks"') + entry(
        resource='"1200000000000002"', target='"https://example.com/asana/~hooks"'
    )
    with pytest.raises(DeclarationError, match="webhook 2, target"):
        load_declared(write(tmp_path, text))


def test_a_missing_file_is_a_declaration_error_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError, match="cannot read"):
        load_declared(tmp_path / "nowhere.toml")


def test_a_python_list_of_the_same_entries_is_accepted() -> None:
    from asana_webhooks import parse_declared

    declared = parse_declared(
        [
            {
                "workspace": "1",
                "resource": "2",
                "target": "https://example.com/a",
                "filters": [{"resource_type": "task", "action": "added"}],
            }
        ]
    )
    assert declared[0].filters == (WebhookFilter(resource_type="task", action="added"),)
    with pytest.raises(DeclarationError, match="webhook 1, target"):
        parse_declared([{"workspace": "1", "resource": "2", "target": 5}])
