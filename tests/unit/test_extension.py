"""The extension's setup: init_app, config validation, several apps, uninitialised use."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_livekit_onboarding import ConfigurationError, LiveKitOnboarding, create_blueprint
from flask_livekit_onboarding.state import get_state
from tests.conftest import UNIT_CONFIG


def configured_app(**config: object) -> Flask:
    app = Flask("host")
    app.config.update(UNIT_CONFIG)
    app.config.update(config)
    return app


def test_init_app_registers_state_and_mounts_token_route(app: Flask) -> None:
    state = app.extensions["livekit_onboarding"]
    assert state.config.url == "ws://127.0.0.1:9"
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert "/livekit/token" in rules
    assert app.config["LIVEKIT_ONBOARDING_TOKEN_TTL"] == 60


def test_direct_construction_initialises_the_app() -> None:
    app = configured_app()
    extension = LiveKitOnboarding(app)
    try:
        assert get_state(app).hooks is extension.hooks
    finally:
        get_state(app).close()


def test_init_app_twice_on_one_app_is_an_error(make_app, onboarding: LiveKitOnboarding) -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="already initialised"):
        onboarding.init_app(app)


def test_use_before_init_app_says_what_to_do() -> None:
    app = Flask("bare")
    with pytest.raises(RuntimeError, match="did you forget to call LiveKitOnboarding.init_app"):
        get_state(app)


@pytest.mark.parametrize("missing", ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"])
def test_missing_credentials_fail_at_init_naming_the_key(
    missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment must never stand in for app.config behind the host's back.
    monkeypatch.setenv(missing, "from-the-environment")
    app = configured_app()
    del app.config[missing]
    with pytest.raises(ConfigurationError, match=missing):
        LiveKitOnboarding().init_app(app)
    assert "livekit_onboarding" not in app.extensions


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("LIVEKIT_ONBOARDING_ROOM_CREATION", "lazy"),
        ("LIVEKIT_ONBOARDING_TOKEN_TTL", "soon"),
        ("LIVEKIT_ONBOARDING_TOKEN_TTL", 0),
        ("LIVEKIT_ONBOARDING_REQUEST_TIMEOUT", -1),
        ("LIVEKIT_ONBOARDING_URL_PREFIX", "livekit"),
        ("LIVEKIT_URL", "127.0.0.1:7880"),
        ("LIVEKIT_PUBLIC_URL", "ftp://example.com"),
    ],
)
def test_invalid_settings_fail_at_init_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=key):
        LiveKitOnboarding().init_app(configured_app(**{key: value}))


def test_dedupe_window_shorter_than_max_age_is_refused() -> None:
    # Otherwise a replay arriving after its id expired, but while still fresh, would be
    # delivered twice.
    app = configured_app(
        LIVEKIT_ONBOARDING_WEBHOOK_MAX_AGE=600, LIVEKIT_ONBOARDING_WEBHOOK_DEDUPE_WINDOW=300
    )
    with pytest.raises(ConfigurationError, match="WEBHOOK_DEDUPE_WINDOW"):
        LiveKitOnboarding().init_app(app)


def test_urls_are_handed_to_clients_as_websocket_urls(make_app) -> None:
    app = make_app(
        LIVEKIT_URL="https://lk.internal:7880/", LIVEKIT_PUBLIC_URL="https://rtc.example.com"
    )
    config = get_state(app).config
    assert config.url == "wss://lk.internal:7880"
    assert config.public_url == "wss://rtc.example.com"


def test_one_extension_serves_two_apps_with_their_own_config(make_app) -> None:
    first = make_app(LIVEKIT_ONBOARDING_URL_PREFIX="/rt", LIVEKIT_ONBOARDING_TOKEN_TTL=60)
    second = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    assert get_state(first).config.token_ttl == 60
    assert get_state(second).config.room_creation == "on_join"
    assert get_state(first).livekit is not get_state(second).livekit
    assert first.test_client().post("/rt/token", json={}).status_code != 404
    assert second.test_client().post("/rt/token", json={}).status_code == 404


def test_host_can_register_the_blueprint_itself(onboarding: LiveKitOnboarding) -> None:
    app = configured_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    onboarding.init_app(app, register_blueprint=False)
    app.register_blueprint(create_blueprint("onboarding_api"), url_prefix="/api/rt")
    try:
        response = app.test_client().post("/api/rt/token", json={})
        assert response.status_code == 201
        assert not any(rule.rule.startswith("/livekit") for rule in app.url_map.iter_rules())
    finally:
        get_state(app).close()


def test_secrets_stay_out_of_repr(app: Flask) -> None:
    state = get_state(app)
    assert UNIT_CONFIG["LIVEKIT_API_SECRET"] not in repr(state)
    assert UNIT_CONFIG["LIVEKIT_API_SECRET"] not in repr(state.config)


def test_hooks_decorators_return_the_function_unchanged() -> None:
    extension = LiveKitOnboarding()

    def loader() -> None:
        return None

    assert extension.identity_loader(loader) is loader
    assert extension.hooks.identity_loader is loader


def test_host_error_handler_for_api_error_takes_over_rendering(app: Flask) -> None:
    from flask_livekit_onboarding import ApiError

    @app.errorhandler(ApiError)
    def onboarding_error(error: ApiError) -> tuple[dict[str, object], int]:
        return {"problem": error.error_code, "detail": error.description}, error.code or 500

    with app.test_client() as client:
        signed_out = client.get("/livekit/rooms/onboarding-x")  # identity hook answers
        unknown = client.post("/livekit/token", data="x", content_type="text/plain")

    assert unknown.status_code == 415
    assert unknown.get_json() == {
        "problem": "unsupported_media_type",
        "detail": unknown.get_json()["detail"],
    }
    assert signed_out.get_json()["problem"] == "room_not_found"
    assert unknown.headers["Cache-Control"] == "no-store"


def test_host_per_status_handler_takes_over_rendering(app: Flask) -> None:
    @app.errorhandler(405)
    def wrong_method(error: Exception) -> tuple[str, int]:
        return "host page", 405

    response = app.test_client().get("/livekit/token")

    assert response.status_code == 405
    assert response.get_data(as_text=True) == "host page"


def test_errors_are_the_matching_werkzeug_exceptions() -> None:
    from werkzeug import exceptions

    from flask_livekit_onboarding import errors

    assert isinstance(errors.Forbidden(), exceptions.Forbidden)
    assert isinstance(errors.RoomNotFound(), exceptions.NotFound)
    assert isinstance(errors.ValidationFailed(), exceptions.UnprocessableEntity)
    assert isinstance(errors.LiveKitTimeout(), exceptions.GatewayTimeout)
    assert isinstance(errors.RequestEntityTooLarge(), exceptions.RequestEntityTooLarge)


def test_without_a_host_handler_errors_keep_the_json_shape(app: Flask) -> None:
    @app.errorhandler(exceptions_http := __import__("werkzeug").exceptions.HTTPException)
    def html_pages(error: Exception) -> tuple[str, int]:
        return "<h1>host html</h1>", 500

    del exceptions_http
    response = app.test_client().post("/livekit/token", data="x", content_type="text/plain")

    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"


def test_config_changed_after_init_app_is_reported_once(app: Flask) -> None:
    import pytest

    from flask_livekit_onboarding.config import ConfigurationWarning

    app.config["LIVEKIT_ONBOARDING_TOKEN_TTL"] = 5
    with pytest.warns(ConfigurationWarning, match="LIVEKIT_ONBOARDING_TOKEN_TTL changed after"):
        response = app.test_client().post("/livekit/token", json={})
    again = app.test_client().post("/livekit/token", json={})  # no second warning

    assert response.status_code == again.status_code == 201
    assert app.extensions["livekit_onboarding"].config.token_ttl == 60
