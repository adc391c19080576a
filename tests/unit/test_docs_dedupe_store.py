"""The webhooks guide's own store, written from the guide, keeps the published contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from flask_livekit_onboarding.testing import check_dedupe_store
from tests.docs_code import code_blocks, load_module


def test_the_guides_sqlite_store_passes_the_conformance_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = code_blocks("webhooks", "Your own store", "python")[0]
    module = load_module(source, tmp_path, monkeypatch, filename="dedupe_store.py")
    store = module.SQLiteDedupe(str(tmp_path / "webhooks.db"))
    check_dedupe_store(store)
    # Another process opening the same file shares the ids: one claim wins.
    other = module.SQLiteDedupe(str(tmp_path / "webhooks.db"))
    assert store.claim("EV_shared", 60, 30).state == "new"
    assert other.claim("EV_shared", 60, 30).state == "busy"
