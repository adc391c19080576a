"""Sphinx configuration of the documentation site (MyST Markdown, API from docstrings)."""

from __future__ import annotations

import importlib.metadata

project = "flask-livekit-onboarding"
author = "The flask-livekit-onboarding authors"
copyright = "The flask-livekit-onboarding authors"
release = importlib.metadata.version("flask-livekit-onboarding")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = "flask-livekit-onboarding"


def setup(app: object) -> None:
    from pygments.lexers import BashLexer

    app.add_lexer("dotenv", BashLexer)  # type: ignore[attr-defined]
