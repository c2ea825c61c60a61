"""Sphinx configuration for asana-webhooks."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import asana_webhooks

HERE = Path(__file__).resolve().parent

project = "asana-webhooks"
author = "the asana-webhooks authors"
release = asana_webhooks.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    # Markdown pages written elsewhere (the benchmarks' docs/performance.md) are included
    # into .rst pages, never built on their own.
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "*.md", "**/*.md"]
html_theme = "furo"
html_title = f"asana-webhooks {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
intersphinx_mapping: dict[str, tuple[str, None]] = {}
nitpicky = False

# --- Django, for the autodoc of asana_webhooks.contrib.django --------------------------------
# Importing its models needs configured settings; configure a minimal site once. The `docs`
# extra installs Django (and Flask and pytest, which autodoc imports too), so `tox -e docs`
# builds from a clean clone; without Django, autodoc fails on the adapter and -W stops.
try:
    import django
    from django.conf import settings as _django_settings
except ImportError:  # pragma: no cover - only outside the docs extra
    django = None  # type: ignore[assignment]
else:
    if not _django_settings.configured:
        _django_settings.configure(
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "asana_webhooks.contrib.django",
            ],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            USE_TZ=True,
        )
        django.setup()


# --- pages assembled at build time ------------------------------------------------------------

PERFORMANCE_MD = HERE / "performance.md"
API_PAGE = "api"


def _performance_section() -> str:
    if PERFORMANCE_MD.exists():
        return (
            "\n\nMeasurements\n------------\n\n"
            "What follows is ``docs/performance.md``, written by the benchmarks.\n\n"
            ".. include:: ../performance.md\n   :parser: myst_parser.sphinx_\n"
        )
    return (
        "\n\nMeasurements\n------------\n\n"
        "The benchmark results (``docs/performance.md``) are not in this build yet; run "
        "``python benchmarks/run.py`` to measure on your machine.\n"
    )


def _undocumented_public_names(source: str) -> list[str]:
    """Names in ``asana_webhooks.__all__`` the API page does not mention yet."""
    mentioned = set(re.findall(r"asana_webhooks\.(\w+)", source))
    return [n for n in asana_webhooks.__all__ if n not in mentioned and n != "__version__"]


NOTEBOOK = HERE.parent / "examples" / "webhooks_health.ipynb"
NOTEBOOK_MARKER = ".. the notebook's code cells are inserted here by conf.py"


def _notebook_cells() -> str:
    """The example notebook's code cells as code blocks: the page cannot drift from it."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    blocks = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        code = "".join(cell["source"])
        blocks.append(".. code-block:: python\n\n" + textwrap.indent(code, "   ") + "\n")
    return "\n".join(blocks)


def _on_source_read(app: Any, docname: str, source: list[str]) -> None:
    if docname == "guides/notebooks":
        source[0] = source[0].replace(NOTEBOOK_MARKER, _notebook_cells())
    elif docname == "guides/performance":
        source[0] += _performance_section()
    elif docname == API_PAGE:
        missing = _undocumented_public_names(source[0])
        if missing:
            # New public names land before their section does: document them all the same.
            lines = ["", "", "More names", "----------", ""]
            for name in missing:
                obj = getattr(asana_webhooks, name)
                kind = "autoclass" if isinstance(obj, type) else "autofunction"
                if not callable(obj):
                    kind = "autodata"
                lines.append(f".. {kind}:: asana_webhooks.{name}")
                lines.append("")
            source[0] += "\n".join(lines)


def setup(app: Any) -> None:
    app.connect("source-read", _on_source_read)
