"""The sdist and wheel a release would upload: license inside, metadata the index accepts."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "https://github.com/flask-livekit-onboarding/flask-livekit-onboarding"

pytestmark = pytest.mark.packaging


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build like a release would: the sdist, then the wheel from that sdist."""
    outdir = tmp_path_factory.mktemp("dist")
    result = _run(sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT))
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"python -m build failed:\n{output[-4000:]}"
    # setuptools prints its deprecation banners (the old license table, say) as "WARNING ...".
    banners = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert not banners and "deprecated" not in output, output[-4000:]
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_sdist_contains_the_license(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        member = sdist.extractfile(f"{top}/LICENSE")
        assert member is not None
        assert member.read() == (ROOT / "LICENSE").read_bytes()


def test_wheel_contains_the_license_and_metadata(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert wheel.read(license_name) == (ROOT / "LICENSE").read_bytes()
        assert "flask_livekit_onboarding/py.typed" in names
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(metadata_name).decode()

    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers
    assert not [h for h in headers if h.startswith("Classifier: License ::")]
    assert f"Project-URL: Source, {REPOSITORY}" in headers
    assert f"Project-URL: Changelog, {REPOSITORY}/blob/main/CHANGELOG.md" in headers


def test_twine_check_passes(dists: dict[str, Path]) -> None:
    result = _run(
        sys.executable, "-m", "twine", "check", "--strict", str(dists["sdist"]), str(dists["wheel"])
    )
    assert result.returncode == 0, result.stdout + result.stderr
