"""The testing guide's test file runs as pasted against the quickstart's app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..docs_code import code_blocks, quickstart_app_source


def test_the_host_test_file_passes_with_the_fake_livekit(tmp_path: Path) -> None:
    (test_file,) = [
        block
        for block in code_blocks("testing", None, "python")
        if block.startswith("# test_onboarding.py\n")
    ]
    (tmp_path / "app.py").write_text(quickstart_app_source(), encoding="utf-8")
    (tmp_path / "test_onboarding.py").write_text(test_file, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "FLASK_"))}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
