"""The demo page in a real browser: livekit-client joins through the token endpoint.

Headless Chromium (driven by Playwright) opens an example app served against the session's
livekit-server, clicks "Start onboarding" and must show the room, the context the host app's
provider put in the room metadata, and the participants as a second client (the ``livekit``
Python SDK) joins and leaves. Needs ``chromium``, the ``playwright`` Python package (never its
downloaded browsers) and npm to build the page's bundle; under CI a missing piece fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from flask import Flask
from livekit import api, rtc
from werkzeug.serving import make_server

from flask_livekit_onboarding.devserver import LiveKitDevServer
from tests.integration.agent_support import (
    AGENT_NAME,
    agent_worker,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "examples" / "static" / "demo.js"
BUILD_SCRIPT = ROOT / "scripts" / "build-demo-frontend.sh"
OUTPUT = ROOT / "tests" / "output"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
#: Generous: the first join also warms up livekit-server and the browser's WebRTC stack.
TIMEOUT_MS = 20_000

T = TypeVar("T")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def ensure_demo_bundle() -> None:
    """Build ``examples/static/demo.js`` (npm ci + esbuild) unless it is up to date."""
    if shutil.which("npm") is None:
        if BUNDLE.is_file():
            return
        _missing("the demo bundle is not built and npm is not installed to build it")
    result = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0 or not BUNDLE.is_file():
        pytest.fail(
            f"building the demo bundle failed ({BUILD_SCRIPT.name}):\n"
            + (result.stdout + result.stderr)[-3000:],
            pytrace=False,
        )


def chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path or not os.access(path, os.X_OK):
        _missing("chromium is not installed (scripts/install-system-deps.sh installs it)")
    return path


class LoopThread:
    """An asyncio loop on its own thread, so the Python SDK runs beside Playwright's sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class SecondParticipant:
    """Someone joining the onboarding room from another client (here, the Python SDK)."""

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.room: rtc.Room | None = None

    def join(self, url: str, token: str) -> None:
        async def connect() -> rtc.Room:
            room = rtc.Room()
            await room.connect(url, token)
            return room

        self.room = self.loop.run(connect())

    def leave(self) -> None:
        if self.room is not None:
            room, self.room = self.room, None
            self.loop.run(room.disconnect())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    ensure_demo_bundle()
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 720})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page_errors(page: Any) -> list[str]:
    """Uncaught exceptions of the page's scripts, collected while the test runs."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve an app on a free loopback port from a thread; returns its base URL."""
    servers: list[Any] = []
    apps: list[Flask] = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        apps.append(app)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
    for app in apps:
        app.extensions["livekit_onboarding"].close()


def start_onboarding(page: Any, button: str = "Start onboarding") -> str:
    """Click the button, wait for the room; return the room name the page shows."""
    from playwright.sync_api import expect

    page.get_by_role("button", name=button).click()
    try:
        expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    except AssertionError:
        raise AssertionError(
            f"page did not connect: status {page.locator('#status').text_content()!r}, "
            f"error {page.locator('#error').text_content()!r}"
        ) from None
    expect(page.get_by_role("button", name="Leave")).to_be_visible()
    return page.locator("#room-name").text_content() or ""


def shown_context(page: Any) -> dict[str, str]:
    rows = page.locator("#context tr")
    return {
        rows.nth(i).locator("th").text_content(): rows.nth(i).locator("td").text_content()
        for i in range(rows.count())
    }


def screenshot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / name), full_page=True)


def test_demo_page_joins_the_onboarding_room(
    livekit_server: LiveKitDevServer,
    base_config: dict[str, Any],
    page: Any,
    page_errors: list[str],
    loop: LoopThread,
    serve: Any,
) -> None:
    from playwright.sync_api import expect

    from examples.minimal.app import create_app

    app = create_app({**base_config, "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS": True})
    page.goto(serve(app) + "/")
    expect(page.locator("#status")).to_have_text("Not connected")
    # Off by default: nothing is published unless the user asks for it.
    expect(page.locator("#mic")).not_to_be_checked()
    expect(page.locator("#camera")).not_to_be_checked()

    room_name = start_onboarding(page)
    assert room_name.startswith("onboarding-")
    assert shown_context(page) == {
        "product": "Acme Analytics",
        "plan": "trial",
        "locale": "en",
        "step": "welcome",
    }
    participants = page.locator("#participants li")
    expect(participants).to_have_count(1)
    me = participants.first.get_attribute("data-identity") or ""
    assert me.startswith("guest-")
    expect(participants.first).to_contain_text("you")

    coach = SecondParticipant(loop)
    token = (
        api.AccessToken(livekit_server.api_key, livekit_server.api_secret)
        .with_identity("coach-sam")
        .with_name("Sam Rivera")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )
    coach.join(livekit_server.url, token)
    try:
        joined = page.locator('#participants li[data-identity="coach-sam"]')
        expect(joined).to_contain_text("Sam Rivera")
        expect(page.locator("#participant-count")).to_have_text("2")
        screenshot(page, "demo.png")
    finally:
        coach.leave()
    expect(joined).to_have_count(0)
    expect(participants).to_have_count(1)

    page.get_by_role("button", name="Leave").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "idle")
    expect(page.locator("#session")).to_be_hidden()
    # Starting again is a new onboarding session, not the cached token of the last one.
    assert start_onboarding(page) != room_name
    assert page_errors == []


def test_existing_app_context_comes_from_the_signed_in_users_profile(
    livekit_server: LiveKitDevServer,
    base_config: dict[str, Any],
    page: Any,
    page_errors: list[str],
    loop: LoopThread,
    serve: Any,
) -> None:
    from playwright.sync_api import expect

    from examples.existing_app.app import USERS, create_app

    app = create_app(base_config)
    base = serve(app)
    page.goto(base + "/onboarding")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("onboarding")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/onboarding")

    room_name = start_onboarding(page)
    expect(page.locator("#me")).to_have_text("Ada Lovelace (user-42)")
    context = shown_context(page)
    ada = USERS["ada"].profile
    assert context["customer"] == "Ada Lovelace"
    assert context["company"] == ada["company"]
    assert context["plan"] == ada["plan"]
    assert context["step"] == ada["step"]
    assert context["goals"] == ", ".join(ada["goals"])

    # Staff may join a customer's room through the same token endpoint (room_authorizer).
    staff = app.test_client()
    staff.post("/login", data={"username": "grace", "password": "onboarding"})
    response = staff.post("/livekit/token", json={"room_name": room_name})
    assert response.status_code == 201, response.get_json()
    grace = SecondParticipant(loop)
    grace.join(response.get_json()["server_url"], response.get_json()["participant_token"])
    try:
        joined = page.locator('#participants li[data-identity="user-7"]')
        expect(joined).to_contain_text("Grace Hopper")
        # Media is opt-in: the (fake) camera is published only once the box is ticked.
        expect(page.locator("#media video")).to_have_count(0)
        page.get_by_label("Camera").check()
        expect(page.locator('#media video[data-identity="user-42"]')).to_be_visible()
        screenshot(page, "demo-existing-app.png")
    finally:
        grace.leave()
    expect(joined).to_have_count(0)

    # Staff move the session on (the context is the host's word, not the owner's); the page
    # follows the room metadata as it changes.
    response = staff.patch(
        f"/livekit/rooms/{room_name}/context", json={"context": {"step": "invite-team"}}
    )
    assert response.status_code == 200, response.get_json()
    expect(page.locator('#context tr[data-key="step"] td')).to_have_text("invite-team")
    expect(page.locator('#context tr[data-key="company"] td')).to_have_text(ada["company"])
    assert page_errors == []


def test_demo_page_explains_a_refused_token_request(page: Any, serve: Any) -> None:
    from playwright.sync_api import expect

    from examples.minimal.app import create_app

    # No identity loader and demo mode off: the endpoint fails closed and says what to set.
    app = create_app(
        {
            "TESTING": True,
            "LIVEKIT_URL": "ws://127.0.0.1:9",
            "LIVEKIT_API_KEY": "demo-key",
            "LIVEKIT_API_SECRET": "demo-secret-long-enough-for-hs256-signatures",
            "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS": False,
        }
    )
    page.goto(serve(app) + "/")
    page.get_by_role("button", name="Start onboarding").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(page.locator("#error")).to_contain_text("LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS")
    expect(page.locator("#error")).not_to_contain_text("401")
    expect(page.get_by_role("button", name="Start onboarding")).to_be_enabled()
    expect(page.locator("#session")).to_be_hidden()


@pytest.mark.usefixtures("agent_worker")
def test_the_agent_greets_the_user_on_the_demo_page_and_chats(
    base_config: dict[str, Any],
    page: Any,
    page_errors: list[str],
    serve: Any,
) -> None:
    from playwright.sync_api import expect

    from examples.minimal.app import create_app

    app = create_app(
        {
            **base_config,
            "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS": True,
            "LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY": True,  # as in the demo: guests give a name
            "LIVEKIT_ONBOARDING_AGENT_NAME": AGENT_NAME,
        }
    )
    page.goto(serve(app) + "/")
    page.get_by_placeholder("Your name (optional)").fill("Ada")
    start_onboarding(page)
    expect(page.locator("#me")).to_contain_text("Ada")

    # The agent joins, shows as one, and greets the user by name with the host's context.
    agent = page.locator("#participants li", has_text="agent")
    expect(agent).to_have_count(1)
    expect(agent).to_contain_text("Onboarding assistant")
    expect(page.locator("#agent-status")).to_have_text("joined")
    greeting = page.locator('#chat li[data-from="agent"]').first
    expect(greeting).to_contain_text("Hi Ada, welcome to Acme Analytics!")
    expect(greeting).to_contain_text("plan: trial")
    expect(greeting).to_contain_text("Step 1 of 5: Welcome")

    # Typed messages go to the agent on the chat topic, and it answers.
    page.get_by_label("Message").fill("next")
    page.get_by_role("button", name="Send").click()
    expect(page.locator('#chat li[data-from="you"]')).to_have_text("Younext")
    expect(page.locator('#chat li[data-from="agent"]').nth(1)).to_contain_text(
        "Step 2 of 5: Connect a data source"
    )
    screenshot(page, "demo-agent.png")
    assert page_errors == []
