"""The README's Python, read as one user script, passes ``mypy --strict`` from outside the clone.

That holds two promises at once: the snippets are correctly typed (``created.data`` is
Optional), and the installed package is visible to a type checker. An editable install that
works through setuptools' import hook satisfies the interpreter but not mypy, which reports
``import-not-found``; setup.cfg's ``package_dir`` makes it a plain ``.pth`` path instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 2, "the README's Python snippets were not found"
    # In order, as one script: the receiving snippet uses the quick start's `api`.
    return "\n".join(blocks)


def test_the_readme_snippets_pass_mypy_strict_in_a_users_directory(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    script = tmp_path / "user_script.py"
    script.write_text(readme_python(), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            script.name,
        ],
        cwd=tmp_path,  # not the clone: the package must come from the installation
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    hint = (
        "\nmypy cannot see the installed package: was it installed editable with an import "
        "hook instead of a .pth path (see setup.cfg's package_dir)?"
        if "import-not-found" in output and "asana_webhooks" in output
        else ""
    )
    assert result.returncode == 0, f"mypy --strict on the README's Python:\n{output}{hint}"
