"""The README's quickstart runs as pasted, and the README reads the same on the package index."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from ..docs_code import (
    DOCS,
    QUICKSTART,
    README,
    ROOT,
    load_quickstart,
    quickstart_app_source,
    quickstart_dotenv,
)

DOTENV = dict(line.split("=", 1) for line in quickstart_dotenv().splitlines() if "=" in line)


@pytest.fixture
def environ() -> Iterator[None]:
    """Whatever the quickstart's ``load_dotenv()`` puts in ``os.environ`` leaves with the test."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("LIVEKIT_", "FLASK_")):
            del os.environ[key]
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: None) -> ModuleType:
    # on_join: the token path makes no LiveKit call, so no server is needed. An environment
    # variable, like a reader would set it: real variables win over .env.
    os.environ["LIVEKIT_ONBOARDING_ROOM_CREATION"] = "on_join"
    return load_quickstart(tmp_path, monkeypatch)


def _debug_app(quickstart: ModuleType) -> Flask:
    os.environ["FLASK_DEBUG"] = "1"  # what `flask run --debug` sets
    app: Flask = quickstart.create_app()
    return app


def _claims(body: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        body["participant_token"], DOTENV["LIVEKIT_API_SECRET"], algorithms=["HS256"]
    )
    return claims


def _contains(value: Any, wanted: dict[str, Any]) -> bool:
    if value == wanted:
        return True
    if isinstance(value, dict):
        return any(_contains(v, wanted) for v in value.values())
    return False


def test_quickstart_signs_in_and_gets_a_token(quickstart: ModuleType) -> None:
    client: FlaskClient = _debug_app(quickstart).test_client()

    refused = client.post("/livekit/token", json={})
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"

    assert client.post("/dev-login", data={"user": "ada"}).get_json() == {"signed_in": "ada"}
    response = client.post("/livekit/token", json={})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["server_url"] == DOTENV["LIVEKIT_URL"]
    assert body["participant_name"] == "Ada Lovelace"
    claims = _claims(body)  # signed with the .env secret, and PyJWT found it long enough
    assert claims["iss"] == DOTENV["LIVEKIT_API_KEY"]
    assert claims["sub"] == "ada"
    assert claims["attributes"] == {"plan": "pro", "onboarding.role": "owner"}
    assert claims["video"]["room"] == body["room_name"]
    metadata = json.loads(claims["roomConfig"]["metadata"])
    assert _contains(metadata, {"plan": "pro", "locale": "en", "step": "welcome"})


def test_quickstart_login_refuses_unknown_users(quickstart: ModuleType) -> None:
    client = _debug_app(quickstart).test_client()
    assert client.post("/dev-login", data={"user": "mallory"}).status_code == 401
    assert client.post("/livekit/token", json={}).status_code == 401


def test_quickstart_has_no_stand_in_login_outside_debug(quickstart: ModuleType) -> None:
    client = quickstart.create_app().test_client()
    assert client.post("/dev-login", data={"user": "ada"}).status_code == 404
    assert client.post("/livekit/token", json={}).status_code == 401


def test_quickstart_needs_only_the_package_and_what_it_brings() -> None:
    tree = ast.parse(quickstart_app_source())
    imported = {
        alias.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import)
        for alias in n.names
    }
    imported |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    third_party = imported - set(sys.stdlib_module_names) - {"flask_livekit_onboarding"}

    requirements = importlib.metadata.requires("flask-livekit-onboarding") or []
    base = {
        re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower()
        for r in requirements
        if "extra ==" not in r
    }
    providers = importlib.metadata.packages_distributions()
    for module in sorted(third_party):
        dists = {d.lower() for d in providers.get(module, [])}
        assert dists & base, f"the quickstart imports {module}, which the package does not bring"


def _documented_secrets() -> Iterator[tuple[str, str]]:
    files = [README, ROOT / "examples" / "README.md", *ROOT.glob("examples/**/.env.example")]
    files += sorted(DOCS.glob("*.md"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        for secret in re.findall(r"^LIVEKIT_API_SECRET=(\S+)", text, re.MULTILINE):
            yield path.name, secret
        for secret in re.findall(r"--keys \"\w+: ([^\"]+)\"", text):
            yield path.name, secret


def test_documented_dev_secrets_are_long_enough_for_hs256() -> None:
    secrets = list(_documented_secrets())
    assert secrets
    short = [
        (name, secret)
        for name, secret in secrets
        if secret != "…" and len(secret.encode()) < 32  # "…" stands for a printed secret
    ]
    assert not short, f"secrets under 32 bytes make PyJWT warn on every token: {short}"


def test_readme_links_and_images_are_absolute() -> None:
    """The package index shows the README without the repository around it."""
    text = README.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```$", "", text, flags=re.MULTILINE | re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)[^)]*\)", text)
    targets += re.findall(r"^\[[^\]]+\]:\s*(\S+)", text, re.MULTILINE)
    targets += re.findall(r"<(?:img|a)\b[^>]*?(?:src|href)=\"([^\"]+)\"", text)
    assert targets
    relative = [t for t in targets if not re.match(r"(https?://|mailto:)", t)]
    assert not relative, f"relative links break on the package index: {relative}"


def test_the_readme_is_a_front_door() -> None:
    """The README holds what a first visit needs and links to the documentation for the rest."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for heading in ("## Install", "## Two commands", f"## {QUICKSTART}", "## Documentation"):
        assert heading in text
    assert "make demo" in text and "make test" in text
    assert "https://flask-livekit-onboarding.readthedocs.io/en/latest/" in text
    linked = set(re.findall(r"readthedocs\.io/en/latest/([\w-]+)\.html", text))
    pages = {path.stem for path in DOCS.glob("*.md")}
    assert linked and linked <= pages, f"links to pages that do not exist: {linked - pages}"
