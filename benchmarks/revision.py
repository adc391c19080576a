"""The package as of a git revision beside the working tree's, for before/after figures."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(revision: str, into: Path) -> Path:
    """``flask_livekit_onboarding`` at ``revision``, written under ``into`` with ``git archive``."""
    archive = subprocess.run(
        ["git", "archive", revision, "flask_livekit_onboarding"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure_in(source: Path, script: str, *args: str) -> float:
    """Run ``script`` in a fresh interpreter that imports the package from ``source`` alone;
    the number it prints."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(source), "PATH": ""},
    )
    return float(result.stdout)
