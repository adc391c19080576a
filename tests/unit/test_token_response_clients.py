"""The token response read the way each official LiveKit SDK reads it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

FRONTEND = Path(__file__).resolve().parents[2] / "examples" / "frontend"


@pytest.fixture
def body(app: Flask) -> dict[str, Any]:
    response = app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201
    parsed: dict[str, Any] = response.get_json()
    return parsed


def test_snake_case_readers_find_both_fields(body: dict[str, Any]) -> None:
    """Swift and Unity decode only ``server_url`` and ``participant_token``."""
    assert body["server_url"] == "ws://127.0.0.1:9"
    assert body["participant_token"].count(".") == 2


def test_camel_case_readers_find_both_fields(body: dict[str, Any]) -> None:
    """agent-starter-embed reads only ``serverUrl`` and ``participantToken``."""
    assert body["serverUrl"] == body["server_url"]
    assert body["participantToken"] == body["participant_token"]


def test_readers_of_either_casing_get_the_same_credentials(body: dict[str, Any]) -> None:
    """Android and Flutter accept both names; whichever they pick, the values agree."""
    for snake, camel in (("server_url", "serverUrl"), ("participant_token", "participantToken")):
        assert body.get(snake, body.get(camel)) == body.get(camel, body.get(snake))


def test_livekit_client_parses_it_with_protobuf_from_json(body: dict[str, Any]) -> None:
    """livekit-client's ``TokenSource.endpoint`` runs ``TokenSourceResponse.fromJson``."""
    protocol = FRONTEND / "node_modules" / "@livekit" / "protocol"
    node = shutil.which("node")
    if node is None or not protocol.is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and the demo frontend's packages are needed (make frontend)")
        pytest.skip("node and the demo frontend's packages are needed (make frontend)")
    script = (
        "const {TokenSourceResponse} = require('@livekit/protocol');"
        "const body = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const parsed = TokenSourceResponse.fromJson(body, {ignoreUnknownFields: true});"
        "process.stdout.write(JSON.stringify(parsed.toJson()));"
    )

    result = subprocess.run(
        [node, "-e", script],
        cwd=FRONTEND,
        input=json.dumps(body),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "serverUrl": body["server_url"],
        "participantToken": body["participant_token"],
    }
