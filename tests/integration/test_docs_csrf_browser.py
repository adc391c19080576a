"""The CSRF guide's browser recipes in headless Chromium, against the Flask-Login guide's app.

The page scripts are the guide's JavaScript as written (bundled with livekit-client by esbuild),
the app is the guide's app under Flask-WTF's ``CSRFProtect``, and livekit-client joins the
session's real livekit-server with the token it gets.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, send_from_directory
from werkzeug.serving import make_server

from tests.docs_code import code_blocks, load_login_app
from tests.integration import test_demo_browser as demo

# The demo's browser fixtures: Chromium through Playwright, apps served from threads.
browser, page, page_errors, serve = demo.browser, demo.page, demo.page_errors, demo.serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "examples" / "frontend" / "node_modules"
#: What the test reads back from the page once the guide's script has run.
REPORT = "\nwindow.onboardingResult = { room: room.name, state: room.state };\n"


def _bundle(source: str, out: Path) -> None:
    """Bundle a page script with livekit-client, as the page's own build would."""
    entry = out.parent / "entry.js"
    entry.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [
            str(NODE_MODULES / ".bin" / "esbuild"),
            str(entry),
            "--bundle",
            "--format=esm",
            "--target=es2022",
            f"--outfile={out}",
        ],
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def login_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_config: dict[str, Any]
) -> Iterator[tuple[Any, Flask]]:
    module, app = load_login_app(tmp_path, monkeypatch, dict(base_config))
    (tmp_path / "static").mkdir()
    yield module, app
    with app.app_context():
        module.db.engine.dispose()


def _sign_in(page: Any, app: Flask, base: str) -> None:
    """Put Ada's Flask-Login session cookie in the browser, as the app's login view would."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    cookie = serializer.dumps({"_user_id": "1", "_fresh": True})
    page.context.add_cookies([{"name": "session", "value": cookie, "url": base}])


def _wait_for_result(page: Any, page_errors: list[str]) -> dict[str, str]:
    try:
        page.wait_for_function("window.onboardingResult !== undefined")
    except Exception:
        raise AssertionError(f"the page script did not finish: {page_errors}") from None
    result: dict[str, str] = page.evaluate("window.onboardingResult")
    return result


def test_a_same_origin_page_joins_and_ends_its_session(
    login_app: tuple[Any, Flask], page: Any, page_errors: list[str], serve: Any, tmp_path: Path
) -> None:
    _, app = login_app
    (script,) = code_blocks("csrf", "Same-origin pages", "js")
    _bundle(script + REPORT, tmp_path / "static" / "onboarding.js")
    base = serve(app)
    _sign_in(page, app, base)

    page.goto(f"{base}/onboarding")
    result = _wait_for_result(page, page_errors)

    assert result["room"].startswith("onboarding-")
    assert not page_errors
    # The script's DELETE (with the token from the meta tag) ended the session.
    status = page.evaluate(f"fetch('/livekit/rooms/{result['room']}').then(r => r.status)")
    assert status == 404


def test_a_page_on_another_origin_fetches_the_csrf_token_and_joins(
    login_app: tuple[Any, Flask], page: Any, page_errors: list[str], serve: Any, tmp_path: Path
) -> None:
    _, app = login_app
    site = Flask("spa_site", static_folder=None)  # the page's own origin, no extension on it

    @site.get("/")
    def index() -> str:
        return '<!doctype html><script type="module" src="/spa.js"></script>'

    @site.get("/spa.js")
    def spa() -> Any:
        return send_from_directory(tmp_path / "static", "spa.js")

    site_server = make_server("127.0.0.1", 0, site, threaded=True)
    threading.Thread(target=site_server.serve_forever, daemon=True).start()
    spa_origin = f"http://127.0.0.1:{site_server.server_port}"
    api = serve(app)
    (recipe,) = code_blocks("csrf", "A single-page app on another origin", "python")
    recipe = recipe.replace("https://app.example.com", spa_origin)
    exec(compile(recipe, "docs/csrf.md", "exec"), {"app": app})
    script = code_blocks("csrf", "A single-page app on another origin", "js")[0]
    script = script.replace("https://api.example.com", api)
    _bundle(
        'import { Room, TokenSource } from "livekit-client";\n'
        + script
        + "const { serverUrl, participantToken } = await tokens.fetch({});\n"
        + "const room = new Room();\nawait room.connect(serverUrl, participantToken);\n"
        + REPORT,
        tmp_path / "static" / "spa.js",
    )
    _sign_in(page, app, api)

    try:
        page.goto(spa_origin + "/")
        result = _wait_for_result(page, page_errors)
    finally:
        site_server.shutdown()
        site_server.server_close()

    assert result["room"].startswith("onboarding-")
    assert result["state"] == "connected"
    assert not page_errors
