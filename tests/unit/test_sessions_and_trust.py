"""One session per user, and the trust rules where client data meets the server's decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import ConfigurationError, Identity, signals
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.testing import FakeLiveKit
from tests.conftest import UNIT_CONFIG


def post(app: Flask, body: Any = None) -> Any:
    return app.test_client().post("/livekit/token", json=body if body is not None else {})


def claims(body: dict[str, Any]) -> api.access_token.Claims:
    verifier = api.TokenVerifier(UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"])
    return verifier.verify(body["participant_token"])


def creates(fake: FakeLiveKit) -> list[api.CreateRoomRequest]:
    return [r for r in fake.room.requests if isinstance(r, api.CreateRoomRequest)]


def test_a_reload_resumes_the_live_session(app: Flask, fake: FakeLiveKit) -> None:
    resumed: list[dict[str, Any]] = []
    first = post(app).get_json()
    with signals.session_resumed.connected_to(lambda s, **kw: resumed.append(kw), app):
        again = post(app).get_json()

    assert (first["resumed"], again["resumed"]) == (False, True)
    assert again["room_name"] == first["room_name"]
    assert len(fake.room.rooms) == 1
    assert resumed[0]["room_name"] == first["room_name"] and resumed[0]["session_id"]
    # An eager token carries no room configuration: once the room is gone, it brings no
    # session back (LiveKit would copy a configuration into every refresh token).
    assert claims(first).room_config is None and claims(again).room_config is None


def test_ending_a_session_lets_the_next_request_start_fresh(app: Flask, fake: FakeLiveKit) -> None:
    first = post(app).get_json()
    session = Envelope.from_metadata(fake.room.rooms[first["room_name"]].metadata)
    assert app.test_client().delete(f"/livekit/rooms/{first['room_name']}").status_code == 204

    fresh = post(app).get_json()

    assert fresh["resumed"] is False
    new_session = Envelope.from_metadata(fake.room.rooms[fresh["room_name"]].metadata)
    assert session is not None and new_session is not None
    assert new_session.session_id != session.session_id


def test_the_new_policy_opens_a_room_per_request(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="new")
    names = {post(app).get_json()["room_name"] for _ in range(3)}
    assert len(names) == 3


def test_an_unknown_session_policy_is_refused_naming_the_key(make_app: Any) -> None:
    with pytest.raises(ConfigurationError, match="LIVEKIT_ONBOARDING_SESSION_POLICY"):
        make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="sometimes")


def test_room_names_are_per_user_and_unguessable_without_the_key(make_app: Any, users: Any) -> None:
    app = make_app()
    other_key = make_app(LIVEKIT_ONBOARDING_SIGNING_KEY="another-deployment-key-32-bytes-long!!")
    mine = post(app).get_json()["room_name"]
    users.current = Identity("user-2", "Grace")
    theirs = post(app).get_json()["room_name"]
    users.current = Identity("user-1", "Ada Lovelace", '{"plan":"pro"}', {"role": "customer"})
    elsewhere = post(other_key).get_json()["room_name"]
    assert len({mine, theirs, elsewhere}) == 3
    assert "user-1" not in mine


def test_on_join_resume_needs_no_livekit_call(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    first, again = post(app).get_json(), post(app).get_json()
    assert first["room_name"] == again["room_name"]
    assert first["resumed"] is None
    assert app.extensions["livekit_onboarding"].livekit.calls == 0
    # Until someone joins, the owner's status route says the session has not started.
    status = app.test_client().get(f"/livekit/rooms/{first['room_name']}")
    assert status.status_code == 200
    assert (status.json["exists"], status.json["started"]) == (False, False)


class TestClientIdentityNeverDecidesAccess:
    @pytest.fixture
    def app(self, make_app: Any) -> Flask:
        return make_app(LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY=True)

    def test_naming_another_user_does_not_open_their_room(
        self, app: Flask, fake: FakeLiveKit, users: Any
    ) -> None:
        users.current = Identity("user-2", "Grace")
        graces_room = post(app).get_json()["room_name"]
        users.current = Identity("user-1", "Ada")

        as_grace = post(app, {"room_name": graces_room, "participant_identity": "user-2"})
        own = post(app, {"participant_identity": "user-2"}).get_json()

        assert as_grace.status_code == 403
        assert own["room_name"] != graces_room
        assert claims(own).identity == "user-2"  # a claim of the token, nothing more
        record = Envelope.from_metadata(fake.room.rooms[own["room_name"]].metadata)
        assert record is not None and record.owner == "user-1"

    def test_client_attributes_do_not_pass_the_authorizer(
        self, app: Flask, fake: FakeLiveKit, users: Any, onboarding: Any
    ) -> None:
        seen: list[Identity] = []

        @onboarding.room_authorizer
        def staff_only(identity: Identity, room: Any, action: str) -> bool:
            seen.append(identity)
            return identity.attributes.get("role") == "staff"

        users.current = Identity("user-2", "Grace")
        graces_room = post(app).get_json()["room_name"]
        users.current = Identity("user-1", "Ada", attributes={"role": "customer"})

        response = post(
            app, {"room_name": graces_room, "participant_attributes": {"role": "staff"}}
        )

        assert response.status_code == 403
        assert seen and all(i.attributes == {"role": "customer"} for i in seen)

    def test_the_context_provider_sees_the_signed_in_user(
        self, app: Flask, fake: FakeLiveKit, onboarding: Any
    ) -> None:
        asked: list[str] = []

        @onboarding.context_provider
        def context(identity: Identity) -> dict[str, Any]:
            asked.append(identity.identity)
            return {"for": identity.identity}

        body = post(app, {"participant_identity": "user-2"}).get_json()

        assert asked == ["user-1"]
        room = fake.room.rooms[body["room_name"]]
        assert json.loads(room.metadata)["onboarding"]["context"] == {"for": "user-1"}


@pytest.mark.parametrize("value", ["ada\nINFO forged line", "ada\x1b]0;pwned\x07", "a\x85b"])
@pytest.mark.parametrize("field", ["participant_identity", "participant_name", "room_name"])
def test_control_characters_are_refused(make_app: Any, field: str, value: str) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ALLOW_CLIENT_IDENTITY=True)
    response = post(app, {field: value})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_the_cli_caps_the_token_lifetime(app: Flask, fake: FakeLiveKit) -> None:
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["livekit", "token", "--identity", "ada", "--ttl", "315360000"])
    help_text = runner.invoke(args=["livekit", "token", "--help"]).output
    assert refused.exit_code == 2
    assert "3600" in refused.output and "at most 3600" in help_text


def test_default_token_lifetime_only_covers_the_join(app: Flask, fake: FakeLiveKit) -> None:
    import jwt

    token = post(app).get_json()["participant_token"]
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["exp"] - decoded["nbf"] == 60


def test_a_rate_limited_token_route_answers_429_in_the_json_shape(make_app: Any) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    app = make_app(
        extension=__import__("flask_livekit_onboarding").LiveKitOnboarding(),
        LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True,
        LIVEKIT_ONBOARDING_SESSION_POLICY="new",
    )
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
    endpoint = "livekit_onboarding.token"
    app.view_functions[endpoint] = limiter.limit("2/minute")(app.view_functions[endpoint])
    client = app.test_client()

    statuses = [client.post("/livekit/token", json={}).status_code for _ in range(3)]
    limited = client.post("/livekit/token", json={})

    assert statuses == [201, 201, 429]
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "too_many_requests"
    assert limited.headers["Cache-Control"] == "no-store"
    assert len(app.extensions["livekit_onboarding"].livekit.room.rooms) == 2
