"""Every ``flask`` command answers a misconfigured app with one clear line and status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..docs_code import quickstart_app_source

SECRET = "dev-secret-at-least-32-bytes-long-change-me"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "LIVEKIT_URL is not set"),
        (
            {
                "LIVEKIT_URL": "ftp://livekit.example.com",
                "LIVEKIT_API_KEY": "k",
                "LIVEKIT_API_SECRET": SECRET,
            },
            "LIVEKIT_URL must be a ws://",
        ),
        ({"LIVEKIT_URL": "ws://127.0.0.1:9"}, "LIVEKIT_API_KEY is not set"),
        (
            {
                "LIVEKIT_URL": "ws://127.0.0.1:9",
                "LIVEKIT_API_KEY": "k",
                "LIVEKIT_API_SECRET": SECRET,
                "LIVEKIT_ONBOARDING_SESSION_POLICY": "sometimes",
            },
            "LIVEKIT_ONBOARDING_SESSION_POLICY must be one of",
        ),
    ],
)
@pytest.mark.parametrize("command", [["livekit", "check"], ["livekit", "rooms"], ["routes"]])
def test_misconfiguration_is_one_line_and_exit_status_1(
    tmp_path: Path, environment: dict[str, str], message: str, command: list[str]
) -> None:
    (tmp_path / "app.py").write_text(quickstart_app_source(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "FLASK_"))}
    env.update(environment)

    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"Error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr
    assert SECRET not in result.stderr + result.stdout
