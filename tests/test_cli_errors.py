"""The command line's promises about failure: one line on stderr, the documented exit status.

Run through the installed ``asana-webhooks`` script where the promise is about the process
(no traceback, exit status), in this process where only the text matters.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asana_webhooks import RetryPolicy, sign_body
from asana_webhooks._cli import main
from asana_webhooks._cli._common import make_api
from asana_webhooks.testing import FakeAsana
from tests._cli_helpers import Process, Result, assert_one_clean_line, run_process

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana(handshake_timeout=10.0, delivery_timeout=5.0) as running:
        yield running


@pytest.fixture
def env(fake: FakeAsana) -> dict[str, str]:
    return {**os.environ, "ASANA_HOST": fake.url, "ASANA_ACCESS_TOKEN": fake.access_token}


@pytest.fixture
def cli(
    fake: FakeAsana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    monkeypatch.setenv("ASANA_HOST", fake.url)
    monkeypatch.setenv("ASANA_ACCESS_TOKEN", fake.access_token)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


# --- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--workspace", "1", "--bogus"],
        ["get"],
        ["serve", "--port", "x", "--secrets", "s.sqlite3"],
        ["nonsense"],
    ],
)
def test_every_usage_error_has_the_one_prefix(cli: Any, args: list[str]) -> None:
    result = cli(*args)

    assert result.status == 2, result
    assert result.err.startswith("asana-webhooks: error: "), f"one prefix for all: {result!r}"
    assert result.err.count("\n") == 1, result


def test_a_zero_timeout_says_what_is_allowed(cli: Any) -> None:
    result = cli("get", "1", "--timeout", "0")

    assert result.status == 2, result
    assert "more than 0 and at most 3600 seconds" in result.err, result


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_and_after_the_command(fake: FakeAsana, cli: Any, where: str) -> None:
    args = ["list", "--workspace", fake.workspace_gid]
    result = cli(*(["-vv", *args] if where == "before" else [*args, "-vv"]))

    assert result.status == 0, result
    assert "GET /webhooks" in result.err, f"-vv shows each request: {result!r}"


def test_top_level_help_mentions_verbose(cli: Any) -> None:
    result = cli("--help")

    assert result.status == 0
    assert "-v, --verbose" in result.out
    assert "3 needs attention" in result.out, "the exit statuses are in the help"


def test_the_command_line_makes_as_many_attempts_as_the_library() -> None:
    os.environ.setdefault("ASANA_ACCESS_TOKEN", "x")
    api = make_api(argparse.Namespace(host="http://127.0.0.1:9", timeout=5.0))
    try:
        policy = api.api_client.configuration.retry
        assert policy.max_attempts == RetryPolicy().max_attempts
    finally:
        api.api_client.close()


# --- secret stores -------------------------------------------------------------------------


def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 100)
    return path


@pytest.mark.parametrize(
    ("make_path", "complaint"),
    [
        (lambda tmp: tmp / "no" / "such" / "folder" / "s.sqlite3", "does not exist"),
        (not_a_database, "not usable as a SQLite secret store"),
        (lambda tmp: tmp, "is a folder"),
    ],
)
def test_create_with_an_unusable_secret_store_is_one_line_and_exit_2(
    fake: FakeAsana, env: dict[str, str], tmp_path: Path, make_path: Any, complaint: str
) -> None:
    path = make_path(tmp_path)
    args = ["create", "--resource", "1", "--target", "http://127.0.0.1:9/x", "--secrets"]

    result = run_process([*args, str(path)], env)

    assert result.status == 2, result
    assert_one_clean_line(result)
    assert complaint in result.err and "--secrets" in result.err, result
    assert fake.webhooks == [], "nothing was created in Asana"


def test_serve_refuses_to_start_on_an_unusable_secret_store(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = not_a_database(tmp_path)

    result = run_process(["serve", "--port", "0", "--secrets", str(path)], env, timeout=30)

    assert result.status == 2, result
    assert_one_clean_line(result)
    assert "not usable as a SQLite secret store" in result.err
    assert "listening" not in result.err


@pytest.mark.parametrize("option", ["--secrets", "--inbox"])
def test_a_password_in_a_store_url_is_never_printed(
    env: dict[str, str], tmp_path: Path, option: str
) -> None:
    from tests._services import require_redis

    require_redis()
    # The shared Redis has no password, so the AUTH fails: the error must name the server
    # without the password it was given.
    url = "redis://someone:hunter2-not-printed@127.0.0.1:6379/0"
    args = ["serve", "--port", "0", "--secrets", str(tmp_path / "s.sqlite3")]
    args = [*args[:4], url] if option == "--secrets" else [*args, "--inbox", url]
    result = run_process(args, env, timeout=60)

    assert result.status == 1, result
    assert_one_clean_line(result)
    assert "hunter2" not in result.out + result.err, f"the password was printed: {result.err}"
    assert "127.0.0.1:6379" in result.err, "the error must still say which server failed"


def test_a_store_failure_while_serving_is_logged_with_its_reason_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    import requests

    path = tmp_path / "secrets.sqlite3"
    process = Process(["serve", "--port", "0", "--secrets", str(path)], env)
    try:
        url = process.wait_for(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
        for leftover in tmp_path.glob("secrets.sqlite3*"):
            leftover.unlink()
        path.mkdir()  # the store's file is now a folder: every use fails
        body = b'{"events": []}'
        answer = requests.post(
            f"{url}/hooks/1",
            data=body,
            headers={"X-Hook-Signature": sign_body(body, "s" * 32)},
            timeout=10,
        )
        assert answer.status_code == 500, "a store that fails is a 500: Asana retries"

        line = process.wait_for(r"secret", "err").string
        assert "/hooks/1" in line and ("Error" in line or "error" in line), (
            f"the reason is logged: {line!r}"
        )
        assert process.stop(signal.SIGTERM) == 0
        rest = process.popen.stderr.read() if process.popen.stderr else ""
        assert "Traceback" not in "".join(process.err_seen) + rest
    finally:
        process.kill()
        if path.is_dir():
            shutil.rmtree(path)


# --- serve and fake options ----------------------------------------------------------------


def test_serve_binds_with_bind_and_still_understands_host_with_a_warning(
    env: dict[str, str], tmp_path: Path
) -> None:
    secrets = str(tmp_path / "s.sqlite3")
    with_bind = Process(["serve", "--port", "0", "--secrets", secrets, "--bind", "127.0.0.1"], env)
    with_host = Process(["serve", "--port", "0", "--secrets", secrets, "--host", "127.0.0.1"], env)
    try:
        assert with_bind.wait_for(r"listening on http://127\.0\.0\.1:\d+") is not None
        assert with_host.wait_for(r"--host is deprecated here; use --bind") is not None
        assert with_host.wait_for(r"listening on http://127\.0\.0\.1:\d+") is not None
        assert with_bind.stop() == 0 and with_host.stop() == 0
    finally:
        with_bind.kill()
        with_host.kill()

    both = run_process(
        ["serve", "--port", "0", "--secrets", secrets, "--bind", "::1", "--host", "::1"], env
    )
    assert both.status == 2, both
    assert_one_clean_line(both)


def test_fake_refuses_an_empty_token(env: dict[str, str]) -> None:
    result = run_process(["fake", "--port", "0", "--token", ""], env, timeout=30)

    assert result.status == 2, result
    assert_one_clean_line(result)
    assert "--token" in result.err
    assert result.out == "", "the stand-in did not start with a random token"


def test_a_filter_typo_is_refused_with_the_expected_form(
    fake: FakeAsana, env: dict[str, str]
) -> None:
    gid = fake.add_webhook("1000001", "http://127.0.0.1:9/x")["gid"]

    result = run_process(["update", gid, "--filter", "task changed"], env)

    assert result.status == 2, result
    assert_one_clean_line(result)
    assert "--filter 'task changed'" in result.err and "as in task:changed" in result.err
    stored = fake.get_webhook(gid)
    assert stored is not None and not stored["filters"], "the webhook was not changed"


# --- network errors ------------------------------------------------------------------------


def test_a_refused_connection_and_an_unknown_host_say_which_it_was(env: dict[str, str]) -> None:
    refused = run_process(["get", "1", "--host", "http://127.0.0.1:9/api/1.0"], env)
    unknown = run_process(["get", "1", "--host", "http://no-such-host.invalid/api/1.0"], env)

    for result in (refused, unknown):
        assert result.status == 1, result
        assert_one_clean_line(result)
    assert "connection refused by 127.0.0.1:9" in refused.err, refused
    assert "unknown host 'no-such-host.invalid'" in unknown.err, unknown


def test_a_connection_error_and_a_404_describe_the_request_alike(env: dict[str, str]) -> None:
    missing = run_process(["get", "1234567890"], env)
    refused = run_process(["get", "1234567890", "--host", "http://127.0.0.1:9/api/1.0"], env)

    assert "GET /webhooks/1234567890" in missing.err, missing
    assert "GET /webhooks/1234567890" in refused.err, refused
    assert "/api/1.0/webhooks" not in refused.err


# --- what nobody foresaw -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (sqlite3.OperationalError("database is locked"), "the secret store failed"),
        (RuntimeError("a bug"), "unexpected error"),
    ],
)
def test_an_unforeseen_error_is_still_one_line_and_exit_1(
    cli: Any, monkeypatch: pytest.MonkeyPatch, raised: Exception, said: str
) -> None:
    from asana_webhooks._cli import webhooks

    def failing(*args: Any) -> int:
        raise raised

    monkeypatch.setattr(webhooks, "cmd_get", failing)

    result = cli("get", "1")
    with pytest.raises(type(raised)):
        main(["get", "1", "-vv"])  # -vv: the traceback, for a bug report

    assert result.status == 1, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert said in result.err and str(raised) in result.err, result
