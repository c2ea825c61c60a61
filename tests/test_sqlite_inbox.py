"""What SQLiteInbox promises beyond the contract: its file, its journal, several processes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asana_webhooks import SQLiteInbox

TESTS = Path(__file__).parent


def test_the_file_is_owner_only_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    old = os.umask(0o022)
    try:
        SQLiteInbox(path).stats()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()


def test_events_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    first = SQLiteInbox(path)
    first.store("/h", [{"resource": {"gid": "1"}, "action": "added"}])
    first.close()
    assert SQLiteInbox(path).stats().pending == 1


def test_several_processes_store_the_same_events_once(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from _inbox_helpers import event
        from asana_webhooks import SQLiteInbox
        inbox = SQLiteInbox({str(path)!r})
        offset = int(sys.argv[1])
        for n in range(0, 200, 4):
            # Every process sends every event: deliveries overlap across processes.
            inbox.store("/h", [event((n + offset + i) % 200) for i in range(4)])
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(offset)]) for offset in (0, 1, 2, 3)
    ]
    assert [p.wait(120) for p in processes] == [0, 0, 0, 0]
    stats = SQLiteInbox(path).stats()
    assert stats.stored == 200
    assert stats.duplicates == 600
    assert stats.pending == 200


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.sqlite3")
    inbox.store("/h", [{"resource": {"gid": "1"}, "action": "added"}])  # pools a connection
    pid = os.fork()
    if pid == 0:  # the child: store through the inherited object, then leave at once
        code = 0
        try:
            inbox.store("/h", [{"resource": {"gid": "2"}, "action": "added"}])
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert inbox.stats().pending == 2
    inbox.close()


def test_nonsense_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout"):
        SQLiteInbox(tmp_path / "i", timeout=0)
    with pytest.raises(ValueError, match="dedupe_window"):
        SQLiteInbox(tmp_path / "i", dedupe_window=-1)
    inbox = SQLiteInbox(tmp_path / "i")
    with pytest.raises(ValueError, match="lease"):
        inbox.claim("w", lease=0)


def test_an_inbox_file_deleted_while_in_use_is_made_again_owner_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "inbox.sqlite3"
    inbox = SQLiteInbox(path)
    inbox.store("/h", [{"resource": {"gid": "1"}, "action": "added"}])
    for leftover in tmp_path.glob("inbox.sqlite3*"):
        leftover.unlink()

    # Stored into a file that exists: a pooled connection must not write into the deleted one.
    assert inbox.store("/h", [{"resource": {"gid": "2"}, "action": "added"}]).stored == 1
    assert path.exists(), "the inbox wrote into the deleted file: those events would be lost"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "made again without the owner-only mode"
    assert SQLiteInbox(path).stats().pending == 1, "a second process does not see the event"
    warnings = [r for r in caplog.records if "deleted or replaced" in r.getMessage()]
    assert len(warnings) == 1, "the re-creation should be said once"
    inbox.store("/h", [{"resource": {"gid": "3"}, "action": "added"}])
    assert len([r for r in caplog.records if "deleted or replaced" in r.getMessage()]) == 1


@pytest.mark.parametrize("path", [":memory:", "", "file:inbox.sqlite3?mode=memory"])
def test_an_inbox_that_workers_could_not_share_is_refused(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="file path"):
        SQLiteInbox(path)
    assert list(tmp_path.iterdir()) == [], "a refused path left a file behind"


def test_a_path_with_doubled_leading_slashes_opens(tmp_path: Path) -> None:
    # sqlite:////tmp/x (SQLAlchemy's form) gives the path //tmp/x, which POSIX keeps as it is.
    from asana_webhooks import SQLiteSecretStore, open_inbox

    inbox = open_inbox(f"sqlite:///{'/' + str(tmp_path)}/inbox.sqlite3")
    assert inbox.store("/h", [{"resource": {"gid": "1"}, "action": "added"}]).stored == 1
    inbox.close()
    store = SQLiteSecretStore("/" + str(tmp_path / "secrets.sqlite3"))
    store.set("/h", "s" * 32)
    assert store.get("/h") == "s" * 32
