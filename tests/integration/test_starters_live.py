"""LiveKit's starter frontends' requests, sent by a real browser from another origin.

``agent-starter-react`` posts ``{"room_config": {"agents": [...]}}`` with ``Content-Type:
application/json`` and an empty ``X-Sandbox-Id`` header, without cookies, once at page load
and once on the click; ``agent-starter-embed`` posts ``{}`` once at page load. Headless
Chromium sends them with ``fetch`` exactly so from a page on another origin, which makes the
browser ask the CORS preflight first, against a host configured as docs/starters.md says. The
token then joins (the ``livekit`` SDK, as livekit-client would) and the example agent greets
and reports ``listening``, the state the starters wait for.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from flask_livekit_onboarding import LiveKitOnboarding
from flask_livekit_onboarding.devserver import LiveKitDevServer
from tests.integration.agent_support import (
    AGENT_NAME,
    ChatClient,
    agent_worker,  # noqa: F401 (fixture)
    close_rooms,
    wait_for_state,
)
from tests.integration.test_demo_browser import CHROMIUM_ARGS, _missing, chromium_path

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("agent_worker")]

REACT_BODY = {"room_config": {"agents": [{"agent_name": AGENT_NAME}]}}
#: The fetch the starters make (their own code, not TokenSource.endpoint): default
#: credentials, so no cookie goes to another origin.
FETCH = """async ([url, body, headers]) => {
  const response = await fetch(url, {method: "POST", headers, body: JSON.stringify(body)});
  return {status: response.status, body: await response.json()};
}"""
REACT_HEADERS = {"Content-Type": "application/json", "X-Sandbox-Id": ""}
EMBED_HEADERS = {"Content-Type": "application/json"}


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on a loop of its own: Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


class Served:
    """Flask apps served on free loopback ports from threads."""

    def __init__(self) -> None:
        self.servers: list[Any] = []

    def start(self, app: Flask, host: str = "127.0.0.1") -> str:
        server = make_server(host, 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://{host}:{server.server_port}"

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def served() -> Iterator[Served]:
    servers = Served()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def starter_page(served: Served) -> str:
    """The starter's origin: any page there can run the starter's fetch."""
    page_app = Flask("starter_page")
    page_app.add_url_rule("/", "index", lambda: "<!doctype html><title>starter</title>")
    return served.start(page_app)


def host_app(livekit_server: LiveKitDevServer, origin: str, seen: list[dict[str, Any]]) -> Flask:
    """The host as docs/starters.md configures it, recording what reaches it."""
    app = Flask("starter_host")
    app.config.update(
        LIVEKIT_URL=livekit_server.url,
        LIVEKIT_API_KEY=livekit_server.api_key,
        LIVEKIT_API_SECRET=livekit_server.api_secret,
        SECRET_KEY="starter-host-session-key",
        LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True,
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT_NAME,
        LIVEKIT_ONBOARDING_CORS_ORIGINS=origin,
        LIVEKIT_ONBOARDING_TOKEN_TTL=900,
    )
    extension = LiveKitOnboarding()

    @extension.context_provider
    def context(identity: Any) -> dict[str, Any]:
        return {"product": "Acme Analytics", "plan": "trial", "step": "welcome"}

    extension.init_app(app)

    @app.before_request
    def record() -> None:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": request.get_data(as_text=True),
            }
        )

    return app


@pytest.fixture
def rooms(livekit_server: LiveKitDevServer) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    run(close_rooms(livekit_server, names))


def test_agent_starter_react_requests_from_another_origin_connect_to_a_ready_agent(
    browser: Any, served: Served, livekit_server: LiveKitDevServer, rooms: list[str]
) -> None:
    origin = starter_page(served)
    seen: list[dict[str, Any]] = []
    app = host_app(livekit_server, origin, seen)
    endpoint = served.start(app, host="localhost") + "/livekit/token"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(origin + "/")
        # Page load (Room.prepareConnection), then the click: two requests, no cookies.
        prefetch = page.evaluate(FETCH, [endpoint, REACT_BODY, REACT_HEADERS])
        click = page.evaluate(FETCH, [endpoint, REACT_BODY, REACT_HEADERS])
    finally:
        context.close()
    for result in (prefetch, click):
        assert result["status"] == 201, result
        rooms.append(result["body"]["room_name"])
    preflights = [r for r in seen if r["method"] == "OPTIONS"]
    posts = [r for r in seen if r["method"] == "POST"]
    assert preflights, "the browser sent no preflight: the request was not cross-origin"
    assert {"content-type", "x-sandbox-id"} <= set(
        preflights[0]["headers"]["access-control-request-headers"].split(",")
    )
    assert len(posts) == 2
    for post in posts:
        assert post["headers"]["origin"] == origin
        assert post["headers"]["x-sandbox-id"] == ""
        assert "cookie" not in post["headers"]
        assert json.loads(post["body"]) == REACT_BODY

    async def join() -> None:
        user = await ChatClient().join(click["body"])
        try:
            greeting = await user.next_message(timeout=30)
            assert "Acme Analytics" in greeting.text
            assert await wait_for_state(user.room, greeting.sender, "listening") == "listening"
        finally:
            await user.leave()

    run(join())


def test_agent_starter_embed_request_gets_a_token_with_the_default_agent(
    browser: Any, served: Served, livekit_server: LiveKitDevServer, rooms: list[str]
) -> None:
    origin = starter_page(served)
    seen: list[dict[str, Any]] = []
    endpoint = served.start(host_app(livekit_server, origin, seen), host="localhost")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(origin + "/")
        result = page.evaluate(FETCH, [endpoint + "/livekit/token", {}, EMBED_HEADERS])
    finally:
        context.close()
    assert result["status"] == 201, result
    rooms.append(result["body"]["room_name"])
    assert [r["method"] for r in seen] == ["OPTIONS", "POST"]

    async def join() -> None:
        user = await ChatClient().join(result["body"])
        try:
            greeting = await user.next_message(timeout=30)
            assert await wait_for_state(user.room, greeting.sender, "listening") == "listening"
        finally:
            await user.leave()

    run(join())


def test_a_page_on_an_origin_not_listed_cannot_read_a_token(
    browser: Any, served: Served, livekit_server: LiveKitDevServer
) -> None:
    origin = starter_page(served)
    seen: list[dict[str, Any]] = []
    app = host_app(livekit_server, "https://app.example.com", seen)
    endpoint = served.start(app, host="localhost") + "/livekit/token"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(origin + "/")
        with pytest.raises(Exception, match="Failed to fetch"):
            page.evaluate(FETCH, [endpoint, REACT_BODY, REACT_HEADERS])
    finally:
        context.close()
    # The browser stopped at the preflight: no token was even asked for.
    assert [r["method"] for r in seen] == ["OPTIONS"]
