"""Every code block of the documentation at least parses in its language."""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml

from ..docs_code import DOCS, code_blocks

PAGES = sorted(path.stem for path in DOCS.glob("*.md"))


@pytest.mark.parametrize("name", PAGES)
def test_python_blocks_parse(name: str) -> None:
    for block in code_blocks(name, None, "python"):
        ast.parse(block)


@pytest.mark.parametrize("name", PAGES)
def test_json_and_yaml_blocks_parse(name: str) -> None:
    for block in code_blocks(name, None, "json"):
        json.loads(block)
    for block in code_blocks(name, None, "yaml"):
        yaml.safe_load(block)


def test_every_page_is_in_the_table_of_contents() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([\w-]+)$", index, re.M))
    assert set(PAGES) - {"index"} <= listed
