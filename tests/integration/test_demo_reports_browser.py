"""The demo page's checklist in a real browser, following what the real agent reports.

The example agent (a real ``livekit-agents`` worker) reports each step to the app served on a
known loopback port; the app records it in the room metadata and the page, which never
reloads, checks the steps off and finally shows the outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from examples.agent.runner import AgentWorker
from flask_livekit_onboarding.devserver import LiveKitDevServer, free_port
from tests.integration.agent_support import start_worker
from tests.integration.test_demo_browser import (  # noqa: F401 (fixtures)
    browser,
    page,
    page_errors,
    screenshot,
    start_onboarding,
)

pytestmark = pytest.mark.integration

REPORT_AGENT = "demo-reporting-agent"


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def reporting_agent(
    livekit_server: LiveKitDevServer, port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentWorker]:
    host_url = f"http://127.0.0.1:{port}/livekit"
    worker = start_worker(livekit_server, REPORT_AGENT, tmp_path_factory, host_url=host_url)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def demo_url(base_config: dict[str, Any], port: int) -> Iterator[str]:
    from examples.minimal.app import create_app

    app: Flask = create_app(
        {
            **base_config,
            "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS": True,
            "LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY": True,
            "LIVEKIT_ONBOARDING_AGENT_NAME": REPORT_AGENT,
        }
    )
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        app.extensions["livekit_onboarding"].close()


@pytest.mark.usefixtures("reporting_agent")
def test_the_checklist_advances_live_and_shows_the_outcome(
    page: Any,  # noqa: F811 (the fixture imported above)
    page_errors: list[str],  # noqa: F811
    demo_url: str,
) -> None:
    from playwright.sync_api import expect

    page.goto(demo_url + "/")
    page.get_by_placeholder("Your name (optional)").fill("Ada")
    start_onboarding(page)
    steps = page.locator("#progress li")
    expect(steps).to_have_count(1)
    expect(steps.first).to_have_attribute("data-step", "welcome")
    expect(steps.first).to_have_attribute("aria-current", "step")
    expect(page.locator("#outcome")).to_be_hidden()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    def say(text: str) -> None:
        page.get_by_label("Message").fill(text)
        page.get_by_role("button", name="Send").click()

    say("next")
    expect(steps).to_have_count(2)
    expect(page.locator('#progress li[data-step="welcome"]')).to_have_attribute(
        "data-state", "done"
    )
    current = page.locator('#progress li[aria-current="step"]')
    expect(current).to_have_attribute("data-step", "connect-data-source")
    expect(current).to_have_attribute("data-state", "started")

    for step in ("invite-team", "first-dashboard", "done"):
        say("next")
        expect(current).to_have_attribute("data-step", step)
    expect(steps).to_have_count(5)
    expect(page.locator('#progress li[data-state="done"]')).to_have_count(5)
    outcome = page.locator("#outcome")
    expect(outcome).to_be_visible()
    expect(outcome).to_have_attribute("data-outcome", "completed")
    expect(outcome).to_contain_text("Onboarding completed")
    screenshot(page, "demo-reports.png")
    assert navigations == []  # no reload: everything came through the room metadata
    assert page_errors == []
