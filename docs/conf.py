"""Sphinx configuration for asana-webhooks."""

from __future__ import annotations

import asana_webhooks

project = "asana-webhooks"
author = "the asana-webhooks authors"
release = asana_webhooks.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"asana-webhooks {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping: dict[str, tuple[str, None]] = {}
nitpicky = False
