"""Hostile input gets the JSON 4xx, and what a room stores stays readable by every route."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.config import DEFAULTS, load_config
from flask_livekit_onboarding.errors import ConfigurationError
from flask_livekit_onboarding.jsondepth import nesting_depth, too_deep
from flask_livekit_onboarding.livekit_limits import MAX_BODY_DEPTH, json_problem
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit, sign_webhook, webhook_body
from tests.conftest import UNIT_CONFIG, HostUsers

ROOM = "onboarding-abc"
DEEP = "[" * 10_000 + "]" * 10_000


def assert_json_error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error: dict[str, Any] = response.get_json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if field is not None:
        assert error.get("field") == field, error
    return error


def send(app: Flask, method: str, path: str, data: str | bytes) -> Any:
    return app.test_client().open(path, method=method, data=data, content_type="application/json")


@pytest.fixture
def staff(users: HostUsers) -> None:
    users.staff.add("user-1")


# --- 1. deep nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/livekit/token"), ("PATCH", f"/livekit/rooms/{ROOM}/context")]
)
@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        '{"context": ' + DEEP + "}",
        "[" * 100_000,
        '{"room_config": {"agents": ' + "[" * 5000 + "]" * 5000 + "}}",
    ],
)
def test_deep_nesting_is_a_400_not_a_recursion_error(
    app: Flask, fake: FakeLiveKit, staff: None, method: str, path: str, body: str
) -> None:
    fake.add_room(ROOM)
    error = assert_json_error(send(app, method, path, body), 400)
    assert (
        "nested deeper than 64 levels" in error["message"] or "not valid JSON" in error["message"]
    )


def test_the_depth_scan_agrees_with_the_parser() -> None:
    for depth in (1, 63, 64, 65, 500):
        text = ("[" * depth + "]" * depth).encode()
        assert too_deep(text, MAX_BODY_DEPTH) == (depth > MAX_BODY_DEPTH)
    # Brackets inside strings are text, not nesting.
    assert not too_deep(json.dumps({"a": "[" * 1000, "b": '\\"{' * 100}).encode(), 64)
    assert not too_deep(json.dumps([[1, 2]] * 1000).encode(), 64)


def test_the_depth_scan_is_linear_on_an_unterminated_string_of_escaped_quotes() -> None:
    # Once quadratic: every escaped quote restarted a string match that ran to the end.
    hostile = b"[" * 65 + b'"' + b'\\"' * 200_000
    assert nesting_depth(hostile) == 65
    assert too_deep(hostile, MAX_BODY_DEPTH)
    assert nesting_depth('{"a": "[[[", "b": [{"c": "\\"]"}]}') == 3


def test_a_hostile_body_of_the_body_limit_is_refused_as_too_deep(app: Flask) -> None:
    body = b"[" * 65 + b'"' + b'\\"' * 100_000
    error = assert_json_error(send(app, "POST", "/livekit/token", body), 400)
    assert "nested deeper than 64 levels" in error["message"]


def test_a_caller_who_is_not_signed_in_is_refused_before_the_body_is_read(
    make_app: Any, users: HostUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    users.current = None
    scanned: list[int] = []
    monkeypatch.setattr(
        "flask_livekit_onboarding.http.bodies.too_deep",
        lambda document, depth: scanned.append(len(document)) or False,
    )
    body = b"[" * 65 + b'"' + b'\\"' * 100_000
    assert_json_error(send(app, "POST", "/livekit/token", body), 401)
    assert scanned == []


# --- 2. lone surrogates ------------------------------------------------------------------------

SURROGATE = "\\ud800"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"participant_metadata": "{SURROGATE}"}}', "participant_metadata"),
        (f'{{"room_name": "x{SURROGATE}"}}', "room_name"),
        (f'{{"participant_name": "{SURROGATE}"}}', "participant_name"),
        (f'{{"participant_attributes": {{"k": "{SURROGATE}"}}}}', "participant_attributes.k"),
        (
            f'{{"room_config": {{"agents": [{{"agent_name": "{SURROGATE}"}}]}}}}',
            "room_config.agents[0].agent_name",
        ),
        (f'{{"room_config": {{"{SURROGATE}": 1}}}}', "room_config.\\ud800"),
        (f'{{"{SURROGATE}": 1}}', "\\ud800"),
    ],
)
def test_lone_surrogates_in_a_token_request_are_a_422_naming_the_field(
    app: Flask, fake: FakeLiveKit, body: str, field: str
) -> None:
    assert_json_error(send(app, "POST", "/livekit/token", body), 422, field)
    assert not fake.room.requests


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"context": {{"step": "{SURROGATE}"}}}}', "context.step"),
        (f'{{"context": {{"{SURROGATE}x": 1}}}}', "context.\\ud800x"),
        (f'{{"context": {{"a": [1, {{"b": "{SURROGATE}"}}]}}}}', "context.a[1].b"),
    ],
)
def test_lone_surrogates_in_a_context_update_are_a_422_naming_the_field(
    app: Flask, fake: FakeLiveKit, staff: None, body: str, field: str
) -> None:
    fake.add_room(ROOM)
    path = f"/livekit/rooms/{ROOM}/context"
    assert_json_error(send(app, "PATCH", path, body), 422, field)
    assert not any(isinstance(r, api.UpdateRoomMetadataRequest) for r in fake.room.requests)


def test_a_signed_webhook_with_a_surrogate_key_is_a_400(app: Flask) -> None:
    body = webhook_body("room_started").replace(b'"event"', b'"\\ud800": 1, "event"')
    config = get_state(app).config
    response = app.test_client().post(
        "/livekit/webhook",
        data=body,
        content_type="application/webhook+json",
        headers={"Authorization": sign_webhook(body, config.api_key, config.api_secret)},
    )
    assert_json_error(response, 400)


# --- 3. what a room stores stays readable ------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_a_context_deeper_than_the_limit_is_refused_and_nothing_is_written(
    app: Flask, fake: FakeLiveKit, staff: None
) -> None:
    fake.add_room(ROOM)
    path = f"/livekit/rooms/{ROOM}/context"
    for depth in (17, 60, 980):
        deep = '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)
        response = send(app, "PATCH", path, '{"context": {"deep": ' + deep + "}}")
        status = 400 if depth + 2 > MAX_BODY_DEPTH else 422
        error = assert_json_error(response, status)
        if status == 422:
            assert error["field"] == "context.deep"
            assert "nested deeper than 16 levels" in error["message"]
    assert not any(isinstance(r, api.UpdateRoomMetadataRequest) for r in fake.room.requests)
    ok = send(app, "PATCH", path, json.dumps({"context": {"deep": nested(15)}}))
    assert ok.status_code == 200, ok.get_json()
    assert app.test_client().get(f"/livekit/rooms/{ROOM}").status_code == 200


def test_the_context_depth_is_configurable_within_what_readers_accept(
    make_app: Any, staff: None
) -> None:
    app = make_app(LIVEKIT_ONBOARDING_MAX_CONTEXT_DEPTH=40)
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    livekit.add_room(ROOM)
    path = f"/livekit/rooms/{ROOM}/context"
    assert send(app, "PATCH", path, json.dumps({"context": nested(40)})).status_code == 200
    assert app.test_client().get(f"/livekit/rooms/{ROOM}").status_code == 200
    assert_json_error(send(app, "PATCH", path, json.dumps({"context": nested(41)})), 422)
    with pytest.raises(ConfigurationError, match="MAX_CONTEXT_DEPTH must be at most 62"):
        load_config({**DEFAULTS, **UNIT_CONFIG, "LIVEKIT_ONBOARDING_MAX_CONTEXT_DEPTH": 63})


@pytest.mark.parametrize(
    "metadata",
    [
        '{"onboarding":{"v":2,"owner":"user-1","session_id":"s","context":'
        + "[" * 980
        + "]" * 980
        + ',"created_at":1}}',
        '{"onboarding":{"v":2,"owner":"user-1","context":{},"created_at":1e999}}',
        '{"onboarding":{"v":NaN,"owner":"user-1","context":{"x":"\\ud800"}}}',
        '{"onboarding":' * 2000,
    ],
    ids=["nested-980", "infinite-time", "nan-and-surrogate", "unclosed"],
)
def test_a_room_whose_metadata_cannot_be_read_is_not_an_onboarding_room(
    app: Flask, fake: FakeLiveKit, metadata: str
) -> None:
    fake.add_room(ROOM, metadata=metadata)
    client = app.test_client()
    assert_json_error(client.get(f"/livekit/rooms/{ROOM}"), 404)
    assert_json_error(client.delete(f"/livekit/rooms/{ROOM}"), 404)
    assert_json_error(client.post("/livekit/token", json={"room_name": ROOM}), 404)
    assert_json_error(client.patch(f"/livekit/rooms/{ROOM}/context", json={"context": {}}), 404)
    body = webhook_body("room_finished", room=fake.room.rooms[ROOM])
    config = get_state(app).config
    response = client.post(
        "/livekit/webhook",
        data=body,
        content_type="application/webhook+json",
        headers={"Authorization": sign_webhook(body, config.api_key, config.api_secret)},
    )
    assert response.status_code == 200, response.get_data(as_text=True)


# --- 6. unknown paths under the prefix ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/livekit/rooms/a%2Fb"),
        ("GET", "/livekit/rooms/a/b"),
        ("GET", "/livekit/nope"),
        ("POST", "/livekit//token"),
        ("POST", "/livekit/token/"),
        ("GET", "/livekit/rooms/"),
        ("GET", "/livekit/rooms//context"),
        ("PATCH", "/livekit/rooms/x/context/"),
        ("DELETE", "/livekit/"),
        ("GET", "/livekit"),
        ("PUT", "/livekit/webhook/extra"),
    ],
)
def test_unknown_paths_under_the_prefix_get_the_json_404(
    app: Flask, method: str, path: str
) -> None:
    response = app.test_client().open(path, method=method)
    error = assert_json_error(response, 404)
    assert error["code"] == "not_found"
    assert "Location" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_paths_outside_the_prefix_are_left_to_the_app(app: Flask) -> None:
    @app.get("/livekit-help")
    def help_page() -> str:
        return "help"

    client = app.test_client()
    assert client.get("/livekit-help").get_data(as_text=True) == "help"
    assert client.get("/elsewhere").mimetype == "text/html"


def test_without_a_prefix_the_app_keeps_its_own_404(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_URL_PREFIX="")

    @app.get("/")
    def index() -> str:
        return "home"

    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == "home"
    assert client.get("/elsewhere").mimetype == "text/html"
    assert client.post("/token", json={}).status_code == 201


# --- 8. values from the host's hooks meet the same limits --------------------------------------


@pytest.mark.parametrize(
    ("identity", "field"),
    [
        (Identity("u" * 5000), "participant_identity"),
        (Identity("user-1", name="n" * 300), "participant_name"),
        (Identity("user-1", metadata="m" * 70_000), "participant_metadata"),
        (Identity("user-1", attributes={"a": "v" * 200_000}), "participant_attributes"),
        (Identity("user-1", name="Ada\ud800"), "participant_name"),
        (Identity("user-1\nforged log line"), "participant_identity"),
    ],
)
def test_an_identity_hook_value_over_a_limit_is_refused_and_logged(
    app: Flask,
    fake: FakeLiveKit,
    users: HostUsers,
    caplog: pytest.LogCaptureFixture,
    identity: Identity,
    field: str,
) -> None:
    users.current = identity
    with caplog.at_level(logging.ERROR):
        response = app.test_client().post("/livekit/token", json={})
    assert_json_error(response, 422, field)
    assert not fake.room.requests
    assert any("identity_loader returned" in r.getMessage() for r in caplog.records)


def test_a_context_provider_value_deeper_than_the_limit_is_refused_and_logged(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: Identity("user-1"))
    extension.context_provider(lambda identity: {"deep": nested(20)})
    app = make_app(extension)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().post("/livekit/token", json={})
    assert_json_error(response, 422, "context.deep")
    assert not get_state(app).livekit.room.requests  # type: ignore[attr-defined]
    assert any("context_provider returned" in r.getMessage() for r in caplog.records)


def test_no_token_is_larger_than_the_bound(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: Identity("user-1"))
    extension.context_provider(lambda identity: {"notes": "x" * 60_000})
    app = make_app(extension, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    with caplog.at_level(logging.ERROR):
        response = app.test_client().post("/livekit/token", json={})
    error = assert_json_error(response, 422, "context")
    assert "over the limit of 6144" in error["message"]
    assert not get_state(app).livekit.room.requests  # type: ignore[attr-defined]
    assert any("MAX_TOKEN_BYTES" in r.getMessage() for r in caplog.records)


def test_a_token_within_the_bound_is_issued(make_app: Any) -> None:
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: Identity("user-1", metadata="m" * 1000))
    extension.context_provider(lambda identity: {"notes": "x" * 1000})
    app = make_app(extension, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    response = app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201, response.get_json()
    assert len(response.get_json()["participant_token"]) <= 6144


def test_json_problem_finds_what_json_cannot_carry() -> None:
    assert json_problem({"a": [1, {"b": float("nan")}]}, 10) == ("a[1].b", "is not a finite number")
    assert json_problem({"a": {1, 2}}, 10) == ("a", "is not JSON (a set)")
    assert json_problem({"a": [[[]]]}, 3) == ("a", "is nested deeper than 3 levels")
    assert json_problem({"a": [[[]]]}, 4) is None
