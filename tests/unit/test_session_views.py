"""Session routes with LiveKit stubbed: status, context updates, ending, access and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import Identity, LiveKitUnavailable, signals
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit
from tests.metadata import decode_metadata

ROOM = "onboarding-abc"
STANDARD = api.ParticipantInfo.Kind.STANDARD
AGENT = api.ParticipantInfo.Kind.AGENT


@pytest.fixture
def fake(app: Flask) -> FakeLiveKit:
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    livekit.add_room(
        ROOM,
        context={"plan": "pro", "profile": {"locale": "en", "tz": "UTC"}, "step": "welcome"},
        created_at=1_700_000_000,
        participants=[("user-1", "Ada Lovelace", STANDARD), ("agent-7", "Guide", AGENT)],
    )
    return livekit


@pytest.fixture
def staff(users: Any) -> None:
    """The room's owner is also staff: the authorizer lets them change the host's context."""
    users.staff.add("user-1")


def stored_record(fake: FakeLiveKit, name: str = ROOM) -> dict[str, Any]:
    record = decode_metadata(fake.room.rooms[name].metadata)
    assert record is not None
    return record


def patch(app: Flask, body: Any, name: str = ROOM, **kwargs: Any) -> Any:
    return app.test_client().patch(f"/livekit/rooms/{name}/context", json=body, **kwargs)


# --- GET status --------------------------------------------------------------------------------


def test_owner_sees_room_status_with_participants_and_context(
    app: Flask, fake: FakeLiveKit
) -> None:
    response = app.test_client().get(f"/livekit/rooms/{ROOM}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    session_id = stored_record(fake)["session_id"]
    assert response.json == {
        "room_name": ROOM,
        "started": True,
        "session_id": session_id,
        "room_sid": "RM_onboarding-abc",
        "client": {},
        "reports": {},
        "exists": True,
        "owner": "user-1",
        "created_at": 1_700_000_000,
        "context": {"plan": "pro", "profile": {"locale": "en", "tz": "UTC"}, "step": "welcome"},
        "num_participants": 2,
        "participants": [
            {
                "identity": "user-1",
                "name": "Ada Lovelace",
                "kind": "standard",
                "joined_at": 1_700_000_001,
                "role": None,
            },
            {
                "identity": "agent-7",
                "name": "Guide",
                "kind": "agent",
                "joined_at": 1_700_000_001,
                "role": "agent",
            },
        ],
    }


def test_empty_room_has_no_participants(app: Flask, fake: FakeLiveKit) -> None:
    fake.add_room("onboarding-empty")

    body = app.test_client().get("/livekit/rooms/onboarding-empty").json

    assert body["participants"] == []
    assert body["num_participants"] == 0


@pytest.mark.parametrize("name", ["onboarding-missing", "standup"])
def test_unknown_and_non_onboarding_rooms_are_not_found(
    app: Flask, fake: FakeLiveKit, name: str
) -> None:
    fake.add_room("standup", owner=None, metadata='{"topic": "daily"}')

    for method in ("get", "delete"):
        response = getattr(app.test_client(), method)(f"/livekit/rooms/{name}")
        assert response.status_code == 404
        assert response.json["error"]["code"] == "room_not_found"
    response = patch(app, {"context": {"step": "x"}}, name=name)
    assert response.status_code == 404
    assert fake.room.rooms["standup"].metadata == '{"topic": "daily"}'


def test_room_closing_between_lookup_and_call_is_not_found(app: Flask, fake: FakeLiveKit) -> None:
    fake.room.vanish_after_lookup = True

    response = app.test_client().get(f"/livekit/rooms/{ROOM}")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "room_not_found"


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"/livekit/rooms/{ROOM}", None),
        ("patch", f"/livekit/rooms/{ROOM}/context", {"context": {"step": "x"}}),
        ("delete", f"/livekit/rooms/{ROOM}", None),
    ],
)
def test_signed_out_caller_is_unauthorized(
    app: Flask, fake: FakeLiveKit, users: Any, method: str, path: str, body: Any
) -> None:
    users.current = None

    response = getattr(app.test_client(), method)(path, json=body)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert ROOM in fake.room.rooms
    assert stored_record(fake)["context"]["step"] == "welcome"


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        ("get", f"/livekit/rooms/{ROOM}", None, "view"),
        ("patch", f"/livekit/rooms/{ROOM}/context", {"context": {"step": "x"}}, "update_context"),
        ("delete", f"/livekit/rooms/{ROOM}", None, "end"),
    ],
)
def test_other_users_are_forbidden_and_staff_allowed(
    make_app: Any, onboarding: Any, users: Any, method: str, path: str, body: Any, action: str
) -> None:
    asked: list[tuple[str, str, str]] = []

    @onboarding.room_authorizer
    def staff_only(identity: Identity, room: Any, requested: str) -> bool:
        asked.append((identity.identity, room.name, requested))
        return identity.identity in users.staff

    app = make_app()
    fake = get_state(app).livekit
    fake.add_room(ROOM, context={"step": "welcome"})
    users.current = Identity("user-2", "Mallory")

    refused = getattr(app.test_client(), method)(path, json=body)

    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
    assert stored_record(fake)["context"] == {"step": "welcome"}

    users.current = Identity("staff-1", "Grace")
    users.staff.add("staff-1")
    allowed = getattr(app.test_client(), method)(path, json=body)

    assert allowed.status_code in (200, 204)
    assert asked == [("user-2", ROOM, action), ("staff-1", ROOM, action)]


def test_without_an_authorizer_only_the_owner_gets_in(
    make_app: Any, onboarding: Any, users: Any
) -> None:
    onboarding.hooks.room_authorizer = None
    app = make_app()
    get_state(app).livekit.add_room(ROOM)
    users.current = Identity("staff-1")
    users.staff.add("staff-1")

    assert app.test_client().get(f"/livekit/rooms/{ROOM}").status_code == 403


# --- PATCH context ------------------------------------------------------------------------------


def test_merge_follows_json_merge_patch_and_keeps_the_record(
    staff: None, app: Flask, fake: FakeLiveKit
) -> None:
    before = stored_record(fake)

    response = patch(
        app, {"context": {"step": "profile", "plan": None, "profile": {"tz": "CET", "dark": True}}}
    )

    expected = {"profile": {"locale": "en", "tz": "CET", "dark": True}, "step": "profile"}
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json == {"room_name": ROOM, "context": expected, "client": {}}
    after = stored_record(fake)
    assert after["context"] == expected
    assert {k: after[k] for k in ("v", "owner", "created_at")} == {
        k: before[k] for k in ("v", "owner", "created_at")
    }
    # The write, then the read-back that confirms it under the room's lock.
    assert [type(r) for r in fake.room.requests[-2:]] == [
        api.UpdateRoomMetadataRequest,
        api.ListRoomsRequest,
    ]


def test_merge_is_the_default_and_replace_swaps_the_whole_context(
    staff: None, app: Flask, fake: FakeLiveKit
) -> None:
    merged = patch(app, {"context": {"step": "tour"}}).json["context"]
    assert merged["plan"] == "pro"
    assert merged["step"] == "tour"

    response = patch(app, {"context": {"step": "done"}, "mode": "replace"})

    assert response.status_code == 200
    assert stored_record(fake)["context"] == {"step": "done"}
    assert app.test_client().get(f"/livekit/rooms/{ROOM}").json["context"] == {"step": "done"}


@pytest.mark.parametrize("forgery", ["unsigned", "other deployment", "tampered", "unprefixed"])
def test_a_room_this_deployment_did_not_sign_is_not_an_onboarding_room(
    staff: None, app: Flask, fake: FakeLiveKit, forgery: str
) -> None:
    from flask_livekit_onboarding.envelope import Envelope, RoomBinding

    name = "standup-room" if forgery == "unprefixed" else "onboarding-forged"
    envelope = Envelope.new("user-1", {"plan": "enterprise"}, 5)
    if forgery == "unsigned":
        metadata = envelope.to_metadata()
    elif forgery == "other deployment":
        metadata = RoomBinding("onboarding-", b"k" * 32).sign(name, envelope).to_metadata()
    else:
        signed = get_state(app).config.binding.sign(
            "onboarding-forged" if forgery == "tampered" else name, envelope
        )
        metadata = signed.to_metadata().replace("enterprise", "free")
    fake.add_room(name, metadata=metadata)
    client = app.test_client()

    assert client.get(f"/livekit/rooms/{name}").status_code == 404
    assert patch(app, {"context": {"b": 2}}, name=name).status_code == 404
    assert client.delete(f"/livekit/rooms/{name}").status_code == 404
    assert client.post("/livekit/token", json={"room_name": name}).status_code == 404
    assert fake.room.rooms[name].metadata == metadata


def test_update_sends_context_updated(staff: None, app: Flask, fake: FakeLiveKit) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Flask, **extra: Any) -> None:
        received.append({"sender": sender, **extra})

    with signals.context_updated.connected_to(receiver, app):
        patch(app, {"context": {"step": "done"}, "mode": "replace"})

    assert len(received) == 1
    assert received[0]["sender"] is app
    assert received[0]["room_name"] == ROOM
    assert received[0]["identity"].identity == "user-1"
    assert received[0]["context"] == {"step": "done"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "context"),
        ({"context": ["step"]}, "context"),
        ({"context": "welcome"}, "context"),
        ({"context": {"step": "x"}, "mode": "append"}, "mode"),
        ({"context": {"step": "x"}, "owner": "user-2"}, "owner"),
        ({"context": {"blob": "x" * (64 * 1024)}}, "context"),
    ],
)
def test_invalid_updates_are_refused_before_writing(
    staff: None, app: Flask, fake: FakeLiveKit, body: dict[str, Any], field: str
) -> None:
    before = fake.room.rooms[ROOM].metadata

    response = patch(app, body)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert response.json["error"]["field"] == field
    assert fake.room.rooms[ROOM].metadata == before
    assert not any(isinstance(r, api.UpdateRoomMetadataRequest) for r in fake.room.requests)


def test_context_just_under_the_limit_is_written(
    staff: None, app: Flask, fake: FakeLiveKit
) -> None:
    response = patch(app, {"context": {"blob": "x" * (60 * 1024)}, "mode": "replace"})

    assert response.status_code == 200
    assert len(fake.room.rooms[ROOM].metadata.encode()) <= 64 * 1024


def test_non_finite_numbers_are_refused(staff: None, app: Flask, fake: FakeLiveKit) -> None:
    response = app.test_client().patch(
        f"/livekit/rooms/{ROOM}/context",
        data='{"context": {"score": NaN}}',
        content_type="application/json",
    )

    assert response.status_code == 422
    assert response.json["error"]["field"] == "context.score"


def test_body_errors_match_the_token_endpoint(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_MAX_BODY_BYTES=1024)
    get_state(app).livekit.add_room(ROOM)
    client = app.test_client()
    bodies: list[dict[str, Any]] = [
        {"data": "context=x", "content_type": "text/plain"},
        {"data": "{", "content_type": "application/json"},
        {"json": [1]},
        {"json": {"context": {"blob": "x" * 2048}}},
    ]

    for body in bodies:
        session = client.patch(f"/livekit/rooms/{ROOM}/context", **body)
        token = client.post("/livekit/token", **body)
        assert session.status_code in (415, 400, 413)
        assert (session.status_code, session.json) == (token.status_code, token.json)


def test_merge_patch_content_type_is_accepted(staff: None, app: Flask, fake: FakeLiveKit) -> None:
    response = app.test_client().patch(
        f"/livekit/rooms/{ROOM}/context",
        data=json.dumps({"context": {"step": "tour"}}),
        content_type="application/merge-patch+json",
    )

    assert response.status_code == 200
    assert stored_record(fake)["context"]["step"] == "tour"


# --- DELETE -------------------------------------------------------------------------------------


def test_delete_ends_the_session_and_a_second_delete_is_not_found(
    app: Flask, fake: FakeLiveKit
) -> None:
    client = app.test_client()

    first = client.delete(f"/livekit/rooms/{ROOM}")
    second = client.delete(f"/livekit/rooms/{ROOM}")

    assert first.status_code == 204
    assert first.data == b""
    assert ROOM not in fake.room.rooms
    assert second.status_code == 404
    assert second.json["error"]["code"] == "room_not_found"
    assert client.get(f"/livekit/rooms/{ROOM}").status_code == 404


def test_delete_sends_session_ended(app: Flask, fake: FakeLiveKit) -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Flask, **extra: Any) -> None:
        received.append(extra)

    with signals.session_ended.connected_to(receiver, app):
        app.test_client().delete(f"/livekit/rooms/{ROOM}")
        app.test_client().delete(f"/livekit/rooms/{ROOM}")

    assert len(received) == 1
    assert received[0]["room_name"] == ROOM
    assert received[0]["identity"].identity == "user-1"


def test_room_closing_before_delete_is_not_found(app: Flask, fake: FakeLiveKit) -> None:
    fake.room.vanish_after_lookup = True

    response = app.test_client().delete(f"/livekit/rooms/{ROOM}")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "room_not_found"


# --- LiveKit failures and mounting --------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (LiveKitUnavailable(), 503, "livekit_unavailable"),
        (
            api.TwirpError(api.TwirpErrorCode.PERMISSION_DENIED, "no", status=403),
            502,
            "livekit_error",
        ),
    ],
)
def test_livekit_failures_are_json_errors(
    app: Flask, fake: FakeLiveKit, failure: Exception, status: int, code: str
) -> None:
    fake.fail_with = failure

    response = app.test_client().delete(f"/livekit/rooms/{ROOM}")

    assert response.status_code == status
    assert response.json["error"]["code"] == code


def test_refusal_from_livekit_on_the_room_call_is_a_502(
    staff: None, app: Flask, fake: FakeLiveKit
) -> None:
    async def refuse(request: Any) -> Any:
        raise api.TwirpError(api.TwirpErrorCode.PERMISSION_DENIED, "no", status=403)

    fake.room.update_room_metadata = refuse  # type: ignore[method-assign]

    response = patch(app, {"context": {"step": "x"}})

    assert response.status_code == 502
    assert response.json["error"]["code"] == "livekit_error"


def test_routes_follow_the_url_prefix(staff: None, make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_URL_PREFIX="/api/rt")
    get_state(app).livekit.add_room(ROOM)
    client = app.test_client()

    assert client.get(f"/api/rt/rooms/{ROOM}").status_code == 200
    assert client.patch(f"/api/rt/rooms/{ROOM}/context", json={"context": {}}).status_code == 200
    assert client.delete(f"/api/rt/rooms/{ROOM}").status_code == 204
    assert client.get(f"/livekit/rooms/{ROOM}").status_code == 404


def test_the_owner_cannot_rewrite_the_hosts_context(app: Flask, fake: FakeLiveKit) -> None:
    before = fake.room.rooms[ROOM].metadata

    response = patch(app, {"context": {"plan": "enterprise"}, "mode": "replace"})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert "client" in response.json["error"]["message"]
    assert fake.room.rooms[ROOM].metadata == before


def test_the_owner_writes_notes_apart_from_the_context(app: Flask, fake: FakeLiveKit) -> None:
    response = patch(app, {"client": {"favourite_color": "teal", "plan": "enterprise"}})

    assert response.status_code == 200
    record = stored_record(fake)
    assert record["client"] == {"favourite_color": "teal", "plan": "enterprise"}
    assert record["context"]["plan"] == "pro"
    status = app.test_client().get(f"/livekit/rooms/{ROOM}").json
    assert status["context"]["plan"] == "pro" and status["client"]["plan"] == "enterprise"


def test_the_host_updates_the_context_from_its_own_code(
    onboarding: Any, app: Flask, fake: FakeLiveKit
) -> None:
    with signals.context_updated.connected_to(lambda *a, **k: None):
        context = onboarding.update_context(ROOM, {"step": "billing"}, app=app)

    assert context["step"] == "billing"
    assert stored_record(fake)["context"]["step"] == "billing"
    assert app.test_client().get(f"/livekit/rooms/{ROOM}").json["context"]["step"] == "billing"
