"""The README's code blocks, loaded the way a reader pastes them."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The README text under the heading *title* (any level), up to the next heading as high."""
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    level, found, fenced = 0, [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        heading = not fenced and re.match(r"(#+) ", line)
        if level and heading and len(heading.group(1)) <= level:
            break
        if level:
            found.append(line)
        elif heading and line.rstrip("\n") == f"{heading.group(1)} {title}":
            level = len(heading.group(1))
    assert level, f"README has no section {title!r}"
    return "".join(found)


def code_blocks(title: str, lang: str) -> list[str]:
    """The fenced ``lang`` blocks of a README section, in order."""
    return [m.group("code") for m in _FENCE.finditer(section(title)) if m.group("lang") == lang]


def quickstart_app_source() -> str:
    (source,) = [
        block
        for block in code_blocks("Quickstart: add it to an existing app", "python")
        if block.startswith("# app.py\n")
    ]
    return source


def quickstart_dotenv() -> str:
    (dotenv,) = code_blocks("Quickstart: add it to an existing app", "dotenv")
    return dotenv


def load_quickstart(
    directory: Path, monkeypatch: pytest.MonkeyPatch, *, before_create: str = ""
) -> ModuleType:
    """Write the quickstart's ``app.py`` and ``.env`` to *directory* and import ``app.py``.

    *before_create* is more README code run in the module's namespace, as if pasted below the
    quickstart. The caller restores ``os.environ``: the app's ``load_dotenv()`` writes to it.
    """
    (directory / "app.py").write_text(quickstart_app_source() + before_create, encoding="utf-8")
    (directory / ".env").write_text(quickstart_dotenv(), encoding="utf-8")
    monkeypatch.chdir(directory)
    name = f"readme_quickstart_{abs(hash(directory))}"
    spec = importlib.util.spec_from_file_location(name, directory / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # Flask(__name__) finds its root path here
    spec.loader.exec_module(module)
    return module
