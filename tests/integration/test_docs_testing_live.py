"""The testing guide's real-server snippet runs as pasted and the app it makes works."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.docs_code import code_blocks, quickstart_app_source


def test_the_real_server_snippet_builds_a_working_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, livekit_server: Any
) -> None:
    (snippet,) = [
        block
        for block in code_blocks("testing", None, "python")
        if "LiveKitDevServer(ensure_livekit_server())" in block
    ]
    (tmp_path / "app.py").write_text(quickstart_app_source(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "app", raising=False)
    for key in [k for k in os.environ if k.startswith(("LIVEKIT_", "FLASK_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("FLASK_SECRET_KEY", "docs-snippet-session-key")
    check = (
        "\n    client = app.test_client()\n"
        "    with client.session_transaction() as session:\n"
        "        session['user_id'] = 'ada'\n"
        "    response = client.post('/livekit/token', json={})\n"
        "    assert response.status_code == 201, response.get_json()\n"
        "    app.extensions['livekit_onboarding'].close()\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(snippet + check, "docs/testing.md", "exec"), namespace)
    monkeypatch.delitem(__import__("sys").modules, "app", raising=False)
