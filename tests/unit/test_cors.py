"""Cross-origin pages, as LiveKit's starter frontends call the token endpoint."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from flask import Flask
from livekit import api
from werkzeug.test import TestResponse

from flask_livekit_onboarding import ConfigurationError, LiveKitOnboarding
from flask_livekit_onboarding.testing import FakeLiveKit
from tests.conftest import UNIT_CONFIG

PAGE = "http://localhost:3000"
AGENT = "onboarding-agent"
#: What agent-starter-react sends (its own fetch through TokenSource.custom): JSON with the
#: sandbox header empty outside LiveKit Cloud, no cookies, the agent it was built for.
REACT_HEADERS = {"Content-Type": "application/json", "X-Sandbox-Id": "", "Origin": PAGE}
REACT_BODY = {"room_config": {"agents": [{"agent_name": AGENT}]}}
#: agent-starter-embed posts an empty object.
EMBED_BODY: dict[str, Any] = {}


def starter_app(**config: Any) -> Flask:
    """A demo host as the starters guide configures it: guests, one agent, one page origin."""
    app = Flask("starter_host")
    app.config.update(
        UNIT_CONFIG,
        LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True,
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT,
        LIVEKIT_ONBOARDING_CORS_ORIGINS=PAGE,
    )
    app.config.update(config)
    LiveKitOnboarding().init_app(app, livekit=FakeLiveKit())

    @app.get("/elsewhere")
    def elsewhere() -> str:
        return "the host's own route"

    return app


def dispatched(app: Flask, body: dict[str, Any]) -> list[str]:
    """The agents the room of this token was created with (eager: by the server, at once)."""
    livekit = app.extensions["livekit_onboarding"].livekit
    created = [
        request
        for request in livekit.room.requests
        if isinstance(request, api.CreateRoomRequest) and request.name == body["room_name"]
    ]
    return [agent.agent_name for request in created for agent in request.agents]


def preflight(app: Flask, headers: str, origin: str = PAGE) -> TestResponse:
    return app.test_client().options(
        "/livekit/token",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def allowed_headers(response: TestResponse) -> set[str]:
    value = response.headers.get("Access-Control-Allow-Headers", "")
    return {h.strip().lower() for h in value.split(",") if h.strip()}


@pytest.mark.parametrize("headers", ["content-type,x-sandbox-id", "content-type", "x-csrftoken"])
def test_the_preflight_of_a_configured_origin_is_answered(headers: str) -> None:
    response = preflight(starter_app(), headers)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert set(headers.split(",")) <= allowed_headers(response)
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    # No cookies are asked for unless the deployment says so.
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_agent_starter_react_gets_a_token_for_its_agent() -> None:
    app = starter_app()
    client = app.test_client(use_cookies=False)
    response = client.post("/livekit/token", data=json.dumps(REACT_BODY), headers=REACT_HEADERS)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    body = response.get_json()
    assert body["participant_token"] and body["server_url"] == UNIT_CONFIG["LIVEKIT_URL"]
    assert dispatched(app, body) == [AGENT]  # one dispatch, not two


def test_agent_starter_embed_gets_a_token_and_the_default_agent() -> None:
    app = starter_app()
    response = app.test_client(use_cookies=False).post(
        "/livekit/token",
        data=json.dumps(EMBED_BODY),
        headers={"Content-Type": "application/json", "Origin": PAGE},
    )
    assert response.status_code == 201, response.get_json()
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert dispatched(app, response.get_json()) == [AGENT]


def test_errors_carry_the_cors_headers_so_the_page_can_read_them() -> None:
    response = (
        starter_app()
        .test_client(use_cookies=False)
        .post(
            "/livekit/token",
            data=json.dumps({"room_config": {"agents": [{"agent_name": "someone-else"}]}}),
            headers=REACT_HEADERS,
        )
    )
    assert response.status_code == 403
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert "room_config.agents" in response.get_json()["error"]["field"]


def test_other_origins_and_the_hosts_own_routes_get_no_cors_headers() -> None:
    app = starter_app()
    refused = preflight(app, "content-type", origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in refused.headers
    own = app.test_client().get("/elsewhere", headers={"Origin": PAGE})
    assert own.status_code == 200
    assert "Access-Control-Allow-Origin" not in own.headers


def test_no_origins_configured_means_no_cors_headers(make_app) -> None:
    response = preflight(make_app(), "content-type")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_credentials_are_allowed_only_when_configured() -> None:
    app = starter_app(LIVEKIT_ONBOARDING_CORS_CREDENTIALS="true")
    response = preflight(app, "content-type")
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_origins_come_from_a_list_or_an_environment_string() -> None:
    app = starter_app(LIVEKIT_ONBOARDING_CORS_ORIGINS="http://localhost:3000, https://App.example")
    config = app.extensions["livekit_onboarding"].config
    assert config.cors_origins == ("http://localhost:3000", "https://app.example")
    answered = preflight(app, "content-type", origin="https://app.example")
    assert answered.headers["Access-Control-Allow-Origin"] == "https://app.example"


@pytest.mark.parametrize(
    "origins", ["*", ["https://*.example.com"], "https://app.example/path", "app.example", [3]]
)
def test_a_wildcard_or_malformed_origin_is_refused(origins: Any) -> None:
    with pytest.raises(ConfigurationError, match="LIVEKIT_ONBOARDING_CORS_ORIGINS"):
        starter_app(LIVEKIT_ONBOARDING_CORS_ORIGINS=origins)


def test_missing_flask_cors_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask_cors", None)
    with pytest.raises(ConfigurationError, match=r"flask-livekit-onboarding\[cors\]"):
        starter_app()


def test_the_demo_host_takes_the_allowed_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from examples.minimal.app import create_app

    monkeypatch.setenv("LIVEKIT_ONBOARDING_CORS_ORIGINS", PAGE)
    app = create_app({**UNIT_CONFIG, "LIVEKIT_ONBOARDING_AGENT_NAME": AGENT})
    try:
        response = preflight(app, "content-type,x-sandbox-id")
        assert response.headers["Access-Control-Allow-Origin"] == PAGE
    finally:
        app.extensions["livekit_onboarding"].close()


def test_two_apps_on_one_extension_keep_their_own_origins(make_app) -> None:
    open_app = make_app(LIVEKIT_ONBOARDING_CORS_ORIGINS=[PAGE])
    closed_app = make_app()
    assert preflight(open_app, "content-type").headers["Access-Control-Allow-Origin"] == PAGE
    assert "Access-Control-Allow-Origin" not in preflight(closed_app, "content-type").headers
