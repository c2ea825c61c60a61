"""examples/webhooks_health.ipynb runs headless against FakeAsana and shows what it promises."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat as _nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from asana_webhooks.testing import FakeAsana, RecordingTarget

nbformat: Any = _nbformat  # untyped

NOTEBOOK = Path(__file__).parent.parent / "examples" / "webhooks_health.ipynb"
HEALTHY = 105  # more than one page of 100, so the listing pages and shows progress


class StepClock:
    """FakeAsana's clock, moved by the test: failures land in different hours."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def kernel_name() -> str:
    """The ``python3`` kernel of this interpreter; installed into the venv if missing."""
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
            check=True,
            timeout=120,
        )
    return "python3"


@pytest.fixture
def asana_with_history() -> Iterator[tuple[FakeAsana, dict[str, str]]]:
    clock = StepClock()
    with FakeAsana(clock=clock) as fake, RecordingTarget() as target:
        gids: dict[str, str] = {}
        for number in range(HEALTHY):
            webhook = fake.add_webhook(f"{9000 + number}", f"{target.url}/ok/{number}")
            gids.setdefault("healthy", webhook["gid"])
            assert fake.heartbeat(webhook["gid"]) == 200
        target.status = 500
        for hour, name in enumerate(["failing-early", "failing-late"]):
            clock.now += dt.timedelta(hours=hour + 1)
            webhook = fake.add_webhook(f"{8000 + hour}", f"{target.url}/{name}")
            gids[name] = webhook["gid"]
            assert fake.deliver(webhook["gid"], [fake.make_event()]) == 500
        yield fake, gids


def outputs(notebook: Any) -> list[dict[str, Any]]:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def run_notebook(
    fake: FakeAsana, kernel_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[str, str, list[dict[str, Any]]]:
    """Execute the notebook headless against ``fake``: its HTML, its text, all its outputs."""
    # The kernel is a child process: it inherits these.
    monkeypatch.setenv("ASANA_HOST", fake.url)
    monkeypatch.setenv("ASANA_ACCESS_TOKEN", fake.access_token)
    monkeypatch.setenv("ASANA_WORKSPACE", fake.workspace_gid)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        startup_timeout=60,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    everything = outputs(notebook)
    html = "".join(o.get("data", {}).get("text/html", "") for o in everything)
    text = "".join(o.get("text", "") for o in everything if o["output_type"] == "stream")
    text += "".join(o.get("data", {}).get("text/plain", "") for o in everything)
    assert fake.access_token not in html + text, "the token must never reach the output"
    return html, text, everything


def test_the_notebook_lists_webhooks_flags_the_failing_ones_and_plots_them(
    asana_with_history: tuple[FakeAsana, dict[str, str]],
    kernel_name: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake, gids = asana_with_history
    html, text, everything = run_notebook(fake, kernel_name, monkeypatch, tmp_path)

    assert '<table class="asana-webhooks">' in html, "the listing should render as our table"
    assert f"Webhooks in workspace {fake.workspace_gid}" in html
    assert gids["healthy"] in html
    assert "listing webhooks: 107, done" in text, "progress=True should report the count"
    assert "failing      2" in text and f"ok         {HEALTHY}" in text, text[-2000:]
    for name in ("failing-early", "failing-late"):
        assert gids[name] in html + text, f"{name} should be listed among the failing"
    assert any("image/png" in o.get("data", {}) for o in everything), "no plot was drawn"


def test_the_notebook_runs_on_an_empty_workspace(
    kernel_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A new user's first look: no webhooks yet. Every cell must still run, and say so.
    with FakeAsana() as fake:
        html, text, everything = run_notebook(fake, kernel_name, monkeypatch, tmp_path)

    assert "listing webhooks: 0, done" in text, text
    assert f"Webhooks in workspace {fake.workspace_gid}" in html
    assert "(none)" in html, "an empty listing should show an empty table"
    for column in ("<th>gid</th>", "<th>target</th>", "<th>last_failure_at</th>"):
        assert column in html, f"the empty table should still name its columns: {column}"
    assert f"No webhooks in workspace {fake.workspace_gid}: nothing to report." in text, text
    assert any("image/png" in o.get("data", {}) for o in everything), "no (empty) plot was drawn"


def test_the_notebook_plots_a_workspace_where_nothing_failed(
    kernel_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No failure at all: the failures' series is empty, the successes' is not.
    with FakeAsana() as fake, RecordingTarget() as target:
        webhook = fake.add_webhook("9000", f"{target.url}/ok")
        assert fake.heartbeat(webhook["gid"]) == 200
        _, text, everything = run_notebook(fake, kernel_name, monkeypatch, tmp_path)
    assert "ok    1" in text, text
    assert any("image/png" in o.get("data", {}) for o in everything), "no plot was drawn"


def test_the_notebook_is_saved_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_the_kernel_runs_this_interpreter(kernel_name: str) -> None:
    spec = KernelSpecManager().get_kernel_spec(kernel_name)
    command = spec.argv[0]
    assert command in ("python", "python3") or os.path.samefile(command, sys.executable), (
        f"the {kernel_name} kernel would run {command}, not this venv's {sys.executable}"
    )
