"""POST /livekit/token with LiveKit stubbed: validation, identity rules, grants, errors."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import LiveKitOnboarding, LiveKitTimeout, LiveKitUnavailable, signals
from flask_livekit_onboarding.errors import LiveKitError
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit
from tests.conftest import UNIT_CONFIG

SECRET = UNIT_CONFIG["LIVEKIT_API_SECRET"]


def claims_of(body: dict[str, Any]) -> api.access_token.Claims:
    return api.TokenVerifier(UNIT_CONFIG["LIVEKIT_API_KEY"], SECRET).verify(
        body["participant_token"]
    )


def post(app: Flask, body: Any = None, **kwargs: Any):
    return app.test_client().post("/livekit/token", json=body if body is not None else {}, **kwargs)


def test_new_room_token_has_the_standard_shape(app: Flask, fake: FakeLiveKit) -> None:
    response = post(app)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {
        "server_url",
        "participant_token",
        "serverUrl",
        "participantToken",
        "room_name",
        "participant_name",
        "resumed",
    }
    assert body["server_url"] == "ws://127.0.0.1:9"
    assert body["room_name"].startswith("onboarding-")
    assert body["participant_name"] == "Ada Lovelace"


def test_token_grants_join_of_that_room_only(app: Flask, fake: FakeLiveKit) -> None:
    body = post(app).get_json()
    claims = claims_of(body)
    video = claims.video
    assert claims.identity == "user-1"
    assert claims.name == "Ada Lovelace"
    assert claims.metadata == '{"plan":"pro"}'
    assert claims.attributes == {"role": "customer", "onboarding.role": "owner"}
    assert video.room_join and video.room == body["room_name"]
    assert video.can_publish and video.can_subscribe and video.can_publish_data
    assert not (video.room_admin or video.room_create or video.room_list or video.room_record)


def test_token_lifetime_comes_from_config(make_app) -> None:
    app = make_app(LIVEKIT_ONBOARDING_TOKEN_TTL=120, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    token = post(app).get_json()["participant_token"]
    decoded = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=UNIT_CONFIG["LIVEKIT_API_KEY"])
    assert decoded["exp"] - decoded["nbf"] == 120


def test_eager_mode_creates_the_room_with_context_and_owner(app: Flask, fake: FakeLiveKit) -> None:
    body = post(app).get_json()
    room = fake.room.rooms[body["room_name"]]
    record = json.loads(room.metadata)["onboarding"]
    assert record["owner"] == "user-1"
    assert record["context"] == {"user": "user-1", "plan": "pro", "locale": "en", "step": "welcome"}
    assert room.empty_timeout == 30 and room.departure_timeout == 20
    # The token carries no room configuration: kept past the session, it brings nothing back.
    assert claims_of(body).room_config is None


def test_on_join_mode_calls_nothing_and_puts_the_room_in_the_token(make_app) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join", LIVEKIT_ONBOARDING_MAX_PARTICIPANTS=3
    )
    fake = get_state(app).livekit
    body = post(app).get_json()
    assert fake.calls == 0
    room_config = claims_of(body).room_config
    assert room_config is not None and room_config.name == body["room_name"]
    assert json.loads(room_config.metadata)["onboarding"]["context"]["step"] == "welcome"
    assert room_config.max_participants == 3


def test_configured_agent_is_dispatched_into_new_rooms(make_app) -> None:
    app = make_app(LIVEKIT_ONBOARDING_AGENT_NAME="onboarding-assistant")
    fake = get_state(app).livekit
    name = post(app).get_json()["room_name"]
    (request,) = [r for r in fake.room.requests if isinstance(r, api.CreateRoomRequest)]
    assert request.name == name
    assert [a.agent_name for a in request.agents] == ["onboarding-assistant"]


def test_client_may_ask_for_an_allowed_agent_only(make_app) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join",
        LIVEKIT_ONBOARDING_ALLOWED_AGENTS="tour-guide, translator",
    )
    allowed = post(app, {"room_config": {"agents": [{"agent_name": "translator"}]}})
    assert allowed.status_code == 201
    room_config = claims_of(allowed.get_json()).room_config
    ((agent,),) = [room_config.agents]
    assert agent.agent_name == "translator"
    # The agent gets the server's envelope as job metadata, the same as the room metadata.
    assert json.loads(agent.metadata) == json.loads(room_config.metadata)
    with_metadata = post(
        app, {"room_config": {"agents": [{"agent_name": "translator", "metadata": "fr"}]}}
    )
    assert with_metadata.status_code == 403
    assert with_metadata.get_json()["error"]["field"] == "room_config.agents[0].metadata"
    refused = post(app, {"room_config": {"agents": [{"agent_name": "root-shell"}]}})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["field"] == "room_config.agents[0].agent_name"


@pytest.mark.parametrize(
    ("room_config", "field"),
    [
        ({"max_participants": 100}, "room_config.max_participants"),
        ({"metadata": "{}"}, "room_config.metadata"),
        (
            {"agents": [{"agent_name": "a", "attributes": {"x": "y"}}]},
            "room_config.agents[0].attributes",
        ),
        ({"no_such_thing": 1}, "room_config"),
        ("not an object", "room_config"),
    ],
)
def test_room_config_fields_the_client_may_not_set_are_refused(
    app: Flask, fake: FakeLiveKit, room_config: Any, field: str
) -> None:
    response = post(app, {"room_config": room_config})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field
    assert fake.calls == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"room_name": "r" * 257}, "room_name"),
        ({"participant_name": "n" * 257}, "participant_name"),
        ({"participant_identity": "i" * 257}, "participant_identity"),
        ({"participant_name": 7}, "participant_name"),
        ({"participant_metadata": "m" * (64 * 1024 + 1)}, "participant_metadata"),
        ({"participant_attributes": {"a": "b" * (64 * 1024)}}, "participant_attributes"),
        ({"participant_attributes": {"a": 1}}, "participant_attributes"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_limits_are_checked_before_anything_happens(
    make_app, body: dict[str, Any], field: str
) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY=True)
    fake = get_state(app).livekit
    with signals.token_issued.connected_to(lambda *a, **k: pytest.fail("token issued")):
        response = post(app, body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and error["field"] == field
    assert field in error["message"]
    assert fake.calls == 0


def test_a_different_client_identity_is_refused(app: Flask, fake: FakeLiveKit) -> None:
    response = post(app, {"participant_identity": "admin"})
    assert response.status_code == 403
    assert response.get_json()["error"]["field"] == "participant_identity"
    assert post(app, {"participant_identity": "user-1"}).status_code == 201


def test_client_identity_is_used_when_the_deployment_allows_it(make_app) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY=True, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join"
    )
    body = post(app, {"participant_identity": "kiosk-7", "participant_name": "Kiosk"}).get_json()
    claims = claims_of(body)
    assert (claims.identity, claims.name) == ("kiosk-7", "Kiosk")


def test_signed_out_user_gets_401(app: Flask, fake: FakeLiveKit, users) -> None:
    users.current = None
    response = post(app)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert fake.calls == 0


def test_without_identity_hook_requests_are_refused_with_what_to_configure(make_app) -> None:
    app = make_app(extension=LiveKitOnboarding())
    response = post(app)
    assert response.status_code == 401
    message = response.get_json()["error"]["message"]
    assert "identity_loader" in message and "LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS" in message


def test_anonymous_demo_mode_gives_each_caller_a_guest_identity(make_app) -> None:
    app = make_app(
        extension=LiveKitOnboarding(),
        LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True,
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join",
    )
    browser = app.test_client()
    first = claims_of(browser.post("/livekit/token", json={}).get_json())
    again = claims_of(browser.post("/livekit/token", json={}).get_json())
    other = claims_of(app.test_client().post("/livekit/token", json={}).get_json())
    assert first.identity.startswith("guest-")
    assert again.identity == first.identity and other.identity != first.identity
    assert (first.name, other.name) == ("Guest", "Guest")
    assert browser.post("/livekit/token", json={"participant_identity": "ceo"}).status_code == 403
    named = browser.post("/livekit/token", json={"participant_name": "LiveKit Support"})
    assert named.status_code == 403
    assert named.get_json()["error"]["field"] == "participant_name"


def test_owner_rejoins_their_room(app: Flask, fake: FakeLiveKit) -> None:
    room_name = post(app).get_json()["room_name"]
    again = post(app, {"room_name": room_name})
    assert again.status_code == 201
    assert again.get_json()["room_name"] == room_name
    assert len(fake.room.rooms) == 1


def test_someone_elses_room_is_refused_unless_the_host_allows(
    app: Flask, fake: FakeLiveKit, users
) -> None:
    from flask_livekit_onboarding import Identity

    room_name = post(app).get_json()["room_name"]
    users.current = Identity("user-2", "Grace")
    assert post(app, {"room_name": room_name}).status_code == 403
    users.staff.add("user-2")
    assert claims_of(post(app, {"room_name": room_name}).get_json()).identity == "user-2"


def test_unknown_and_non_onboarding_rooms_are_404(app: Flask, fake: FakeLiveKit) -> None:
    fake.room.rooms["team-standup"] = api.Room(name="team-standup", metadata="{}")
    for name in ("nope", "team-standup"):
        response = post(app, {"room_name": name})
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "room_not_found"


def test_agents_cannot_be_requested_for_an_existing_room(make_app) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ALLOWED_AGENTS=["guide"])
    room_name = post(app).get_json()["room_name"]
    response = post(
        app, {"room_name": room_name, "room_config": {"agents": [{"agent_name": "guide"}]}}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400, "bad_request"),
        (
            {"data": "room_name=x", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "bad_request"),
        (
            {"data": "{}" + " " * 300_000, "content_type": "application/json"},
            413,
            "request_entity_too_large",
        ),
    ],
)
def test_malformed_requests_get_a_json_error(
    app: Flask, fake: FakeLiveKit, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = app.test_client().post("/livekit/token", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert fake.calls == 0


def test_empty_json_body_is_a_request_with_every_field_omitted(
    app: Flask, fake: FakeLiveKit
) -> None:
    client = app.test_client()
    assert (
        client.post("/livekit/token", data="", content_type="application/json").status_code == 201
    )


@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_a_cross_site_form_cannot_start_a_session(
    app: Flask, fake: FakeLiveKit, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = app.test_client().post("/livekit/token", data="", headers=headers)
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert fake.calls == 0 and fake.room.rooms == {}


def test_wrong_method_is_a_json_405(app: Flask) -> None:
    response = app.test_client().get("/livekit/token")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("error", "status"),
    [(LiveKitUnavailable(), 503), (LiveKitTimeout(), 504), (LiveKitError(), 502)],
)
def test_livekit_failures_map_to_gateway_errors(
    app: Flask, fake: FakeLiveKit, error: Exception, status: int
) -> None:
    fake.fail_with = error
    response = post(app)
    assert response.status_code == status
    assert response.get_json()["error"]["code"].startswith("livekit_")


def test_signals_notify_without_carrying_the_token(app: Flask, fake: FakeLiveKit) -> None:
    created: list[dict[str, Any]] = []
    issued: list[dict[str, Any]] = []
    with (
        signals.room_created.connected_to(lambda sender, **kw: created.append(kw), app),
        signals.token_issued.connected_to(lambda sender, **kw: issued.append(kw), app),
    ):
        body = post(app).get_json()
    assert created[0]["room_name"] == body["room_name"]
    assert created[0]["context"]["step"] == "welcome"
    assert issued[0]["identity"].identity == "user-1"
    assert issued[0]["expires_in"] == 60
    assert body["participant_token"] not in repr(issued)


def test_tokens_and_secrets_never_reach_the_logs(
    app: Flask, fake: FakeLiveKit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    token = post(app).get_json()["participant_token"]
    assert token not in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "PUT"])
@pytest.mark.parametrize("path", ["/livekit/token", "/livekit/rooms/onboarding-x"])
def test_unusual_methods_get_the_json_405(app: Flask, method: str, path: str) -> None:
    response = app.test_client().open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert method not in response.headers["Allow"]
