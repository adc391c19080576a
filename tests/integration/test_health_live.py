"""Readiness against a real livekit-server and redis-server: the route, the method, the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding import LiveKitOnboarding
from flask_livekit_onboarding.devserver import LiveKitDevServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def host(base_config: dict[str, Any]) -> Iterator[Callable[..., tuple[Flask, LiveKitOnboarding]]]:
    apps: list[Flask] = []

    def make(**config: Any) -> tuple[Flask, LiveKitOnboarding]:
        extension = LiveKitOnboarding()
        app = Flask(f"health_{len(apps)}")
        app.config.update(base_config, **config)
        extension.init_app(app)
        apps.append(app)
        return app, extension

    yield make
    for app in apps:
        app.extensions["livekit_onboarding"].close()


def test_the_route_is_off_unless_configured(host: Any) -> None:
    app, _ = host()
    response = app.test_client().get("/livekit/health")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_ready_reports_livekit_and_redis_with_their_latency(
    host: Any, redis_server: str, livekit_server: LiveKitDevServer
) -> None:
    app, extension = host(
        LIVEKIT_ONBOARDING_HEALTH_ROUTE=True, LIVEKIT_ONBOARDING_REDIS_URL=redis_server
    )
    response = app.test_client().get("/livekit/health")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"livekit", "redis"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0
    assert extension.health(app).ready
    assert livekit_server.api_secret not in response.get_data(as_text=True)


def test_livekit_down_is_a_503_naming_it(host: Any) -> None:
    app, extension = host(
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",
        LIVEKIT_ONBOARDING_HEALTH_ROUTE="true",
        LIVEKIT_ONBOARDING_REQUEST_TIMEOUT=2,
    )
    response = app.test_client().get("/livekit/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["down"] == ["livekit"]
    assert body["checks"]["livekit"]["ok"] is False
    assert "LiveKit cannot be reached" in body["checks"]["livekit"]["error"]
    assert body["error"]["code"] == "not_ready"
    assert extension.health(app).down == ["livekit"]


def test_redis_down_is_a_503_naming_it(host: Any) -> None:
    app, _ = host(
        LIVEKIT_ONBOARDING_HEALTH_ROUTE=True,
        LIVEKIT_ONBOARDING_REDIS_URL=f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0",
    )
    response = app.test_client().get("/livekit/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["down"] == ["redis"]
    assert body["checks"]["livekit"]["ok"] is True
    assert "s3cret-pass" not in response.get_data(as_text=True)


def test_the_cli_check_reports_redis_through_the_same_checks(host: Any, redis_server: str) -> None:
    app, _ = host(LIVEKIT_ONBOARDING_REDIS_URL=redis_server)
    result = app.test_cli_runner().invoke(args=["livekit", "check"])
    assert result.exit_code == 0, result.output
    assert "accepted API key" in result.stdout and "ms)." in result.stdout
    assert "Redis answered in" in result.stdout

    down, _ = host(LIVEKIT_ONBOARDING_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = down.test_cli_runner().invoke(args=["livekit", "check"])
    assert result.exit_code == 1
    assert "Cannot reach Redis" in result.stderr
