"""The code blocks of the documentation pages, loaded the way a reader pastes them."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from flask import Flask

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def page(name: str) -> Path:
    """``docs/<name>.md``, or the README for ``"README"``."""
    return ROOT / "README.md" if name == "README" else DOCS / f"{name}.md"


def section(name: str, title: str | None = None) -> str:
    """The text of page *name* under the heading *title* (any level), up to the next heading
    as high; the whole page without a title."""
    text = page(name).read_text(encoding="utf-8")
    if title is None:
        return text
    level, found, fenced = 0, [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        heading = not fenced and re.match(r"(#+) ", line)
        if level and heading and len(heading.group(1)) <= level:
            break
        if level:
            found.append(line)
        elif heading and line.rstrip("\n") == f"{heading.group(1)} {title}":
            level = len(heading.group(1))
    assert level, f"{page(name).name} has no section {title!r}"
    return "".join(found)


def code_blocks(name: str, title: str | None, lang: str) -> list[str]:
    """The fenced ``lang`` blocks of a page's section, in order."""
    return [
        m.group("code") for m in _FENCE.finditer(section(name, title)) if m.group("lang") == lang
    ]


def load_module(
    source: str, directory: Path, monkeypatch: pytest.MonkeyPatch, filename: str = "app.py"
) -> ModuleType:
    """Write *source* to *directory*/*filename* and import it as a fresh module."""
    (directory / filename).write_text(source, encoding="utf-8")
    monkeypatch.chdir(directory)
    name = f"docs_{Path(filename).stem}_{abs(hash(directory))}"
    spec = importlib.util.spec_from_file_location(name, directory / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # Flask(__name__) finds its root path here
    spec.loader.exec_module(module)
    return module


README = page("README")
QUICKSTART = "Quickstart: add it to an existing app"


def quickstart_app_source() -> str:
    """The README quickstart's ``app.py``."""
    (source,) = [
        block
        for block in code_blocks("README", QUICKSTART, "python")
        if block.startswith("# app.py\n")
    ]
    return source


def quickstart_dotenv() -> str:
    """The README quickstart's ``.env``."""
    (dotenv,) = code_blocks("README", QUICKSTART, "dotenv")
    return dotenv


def load_quickstart(
    directory: Path, monkeypatch: pytest.MonkeyPatch, *, before_create: str = ""
) -> ModuleType:
    """Write the quickstart's ``app.py`` and ``.env`` to *directory* and import ``app.py``.

    *before_create* is more documented code run in the module's namespace, as if pasted below
    the quickstart. The caller restores ``os.environ``: the app's ``load_dotenv()`` writes to it.
    """
    (directory / ".env").write_text(quickstart_dotenv(), encoding="utf-8")
    return load_module(quickstart_app_source() + before_create, directory, monkeypatch)


def load_login_app(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, object],
    livekit: object = None,
) -> tuple[ModuleType, Flask]:
    """The Flask-Login guide's app and page template, with Ada (id 1) and staff member Grace
    (id 2) in its database; *config* is its ``test_config``."""
    for key in [k for k in os.environ if k.startswith(("LIVEKIT_", "FLASK_"))]:
        monkeypatch.delenv(key)
    (source,) = [
        block for block in code_blocks("flask-login", None, "python") if "# app.py" in block
    ]
    (template,) = code_blocks("flask-login", "A complete app", "html")
    (directory / "templates").mkdir(exist_ok=True)
    (directory / "templates" / "onboarding.html").write_text(template, encoding="utf-8")
    module = load_module(source, directory, monkeypatch)
    database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / 'users.db'}"}
    app: Flask = module.create_app({**database, **config}, livekit=livekit)
    with app.app_context():
        module.db.session.add_all(
            [
                module.User(id=1, email="ada@example.com", name="Ada Lovelace", plan="pro"),
                module.User(id=2, email="grace@example.com", name="Grace Hopper", is_staff=True),
            ]
        )
        module.db.session.commit()
    return module, app
