"""A room squatting a user's onboarding name, and the agent dispatches an end cancels."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from livekit import api

from flask_livekit_onboarding.errors import RoomOccupied
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit
from tests.conftest import HostUsers, MakeApp

AGENT = api.ParticipantInfo.Kind.AGENT
PERSON = api.ParticipantInfo.Kind.STANDARD


def own_name(app: Flask, identity: str = "user-1") -> str:
    return get_state(app).config.binding.room_name_for(identity)


def envelope_of(fake: FakeLiveKit, name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(fake.room.rooms[name].metadata)["onboarding"]
    return record


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["livekit", *args])


@pytest.fixture
def agent_app(make_app: MakeApp) -> Flask:
    return make_app(LIVEKIT_ONBOARDING_AGENT_NAME="onboarding-agent")


@pytest.fixture
def agent_fake(agent_app: Flask) -> FakeLiveKit:
    livekit = get_state(agent_app).livekit
    assert isinstance(livekit, FakeLiveKit)
    return livekit


def test_a_room_left_under_the_users_name_by_a_late_agent_is_cleared_by_their_next_start(
    agent_app: Flask, agent_fake: FakeLiveKit
) -> None:
    name = own_name(agent_app)
    agent_fake.add_room(name, metadata="", participants=[("agent-AJ_1", "agent", AGENT)])

    response = agent_app.test_client().post("/livekit/token", json={})

    assert response.status_code == 201, response.json
    assert response.json["room_name"] == name
    assert envelope_of(agent_fake, name)["owner"] == "user-1"
    assert [d.agent_name for d in agent_fake.room.dispatches[name]] == ["onboarding-agent"]
    assert agent_fake.room.participants.get(name, []) == []


def test_the_users_own_stray_connection_does_not_lock_them_out(
    app: Flask, fake: FakeLiveKit
) -> None:
    name = own_name(app)
    fake.add_room(name, metadata="", participants=[("user-1", "Ada", PERSON)])

    response = app.test_client().post("/livekit/token", json={})

    assert response.status_code == 201, response.json
    assert envelope_of(fake, name)["owner"] == "user-1"


def test_a_room_under_the_users_name_holding_other_people_is_reported_not_closed(
    app: Flask, fake: FakeLiveKit
) -> None:
    name = own_name(app)
    fake.add_room(name, metadata="", participants=[("mallory", "M", PERSON)])

    response = app.test_client().post("/livekit/token", json={})

    assert response.status_code == 409
    error = response.json["error"]
    assert error["code"] == "room_occupied"
    assert "1 person is in it" in error["message"]
    assert "clears when they leave" in error["message"]
    assert "flask livekit end --force" in error["message"]
    assert fake.room.rooms[name].metadata == ""


def test_the_owner_ends_what_squats_their_name_instead_of_hearing_not_found(
    app: Flask, fake: FakeLiveKit
) -> None:
    name = own_name(app)
    fake.add_room(name, metadata="", participants=[("agent-AJ_1", "agent", AGENT)])

    response = app.test_client().delete(f"/livekit/rooms/{name}")

    assert response.status_code == 204
    assert name not in fake.room.rooms


def test_someone_else_never_learns_of_a_room_squatting_a_users_name(
    app: Flask, fake: FakeLiveKit, users: HostUsers
) -> None:
    name = own_name(app, "user-2")
    fake.add_room(name, metadata="")

    response = app.test_client().delete(f"/livekit/rooms/{name}")

    assert response.status_code == 404
    assert name in fake.room.rooms


def test_ending_a_session_cancels_its_agent_dispatches(
    agent_app: Flask, agent_fake: FakeLiveKit
) -> None:
    client = agent_app.test_client()
    name = client.post("/livekit/token", json={}).json["room_name"]
    dispatched = [d.id for d in agent_fake.room.dispatches[name]]

    assert client.delete(f"/livekit/rooms/{name}").status_code == 204

    assert dispatched and agent_fake.agent_dispatch.deleted == dispatched
    assert name not in agent_fake.room.rooms


def test_the_cli_lists_rooms_squatting_the_prefix_and_ends_them_by_force(
    app: Flask, fake: FakeLiveKit
) -> None:
    name = own_name(app)
    fake.add_room(name, metadata="", participants=[("mallory", "M", PERSON)])

    plain = run(app, "rooms")
    listed = run(app, "rooms", "--all")
    as_json = run(app, "rooms", "--all", "--json")
    refused = run(app, "end", name)

    assert name not in plain.stdout
    assert "1 other room(s) under the onboarding prefix" in plain.stdout
    assert "flask livekit rooms --all" in plain.stdout
    assert name in listed.stdout and "not-onboarding" in listed.stdout
    assert "users=1" in listed.stdout
    assert json.loads(as_json.stdout) == [
        {
            "room_name": name,
            "kind": "not-onboarding",
            "what": "a room without an onboarding session of this deployment",
            "users": 1,
            "agents": 0,
            "age_seconds": json.loads(as_json.stdout)[0]["age_seconds"],
        }
    ]
    assert refused.exit_code == 1
    assert "--force" in refused.stderr and "No onboarding room" not in refused.stderr
    assert name in fake.room.rooms

    forced = run(app, "end", "--force", name)

    assert forced.exit_code == 0, forced.output
    assert name not in fake.room.rooms
    assert run(app, "end", "--force", name).exit_code == 1


def test_an_ended_session_marker_is_not_ended_twice_by_its_owner(make_app: MakeApp) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    fake = get_state(app).livekit
    assert isinstance(fake, FakeLiveKit)
    name = own_name(app)
    fake.add_room(name, app=app)
    client = app.test_client()
    assert client.delete(f"/livekit/rooms/{name}").status_code == 204
    assert "onboarding_ended" in fake.room.rooms[name].metadata

    again = client.delete(f"/livekit/rooms/{name}")
    restarted = client.post("/livekit/token", json={})

    assert again.status_code == 404
    assert "already ended" in again.json["error"]["message"]
    assert restarted.status_code == 201
    assert envelope_of(fake, name)["owner"] == "user-1"


def test_the_host_ends_a_session_from_its_own_code(
    onboarding: Any, agent_app: Flask, agent_fake: FakeLiveKit
) -> None:
    name = agent_app.test_client().post("/livekit/token", json={}).json["room_name"]
    squatted = own_name(agent_app, "user-2")
    agent_fake.add_room(squatted, metadata="", participants=[("bob", "Bob", PERSON)])

    onboarding.end_session(name, app=agent_app)
    with pytest.raises(RoomOccupied) as refused:
        onboarding.end_session(squatted, app=agent_app)
    onboarding.end_session(squatted, force=True, app=agent_app)

    assert agent_fake.agent_dispatch.deleted
    assert "without an onboarding session" in str(refused.value.description)
    assert agent_fake.room.rooms == {}


def test_the_status_of_the_users_own_name_never_says_not_found_for_what_blocks_them(
    app: Flask, fake: FakeLiveKit
) -> None:
    name = own_name(app)
    client = app.test_client()
    fake.add_room(name, metadata="", participants=[("agent-AJ_1", "agent", AGENT)])

    cleared_next = client.get(f"/livekit/rooms/{name}")
    fake.room.participants[name] = [api.ParticipantInfo(identity="mallory", kind=PERSON)]
    blocked = client.get(f"/livekit/rooms/{name}")

    assert cleared_next.status_code == 200
    assert (cleared_next.json["exists"], cleared_next.json["started"]) == (False, False)
    assert blocked.status_code == 409
    assert blocked.json["error"]["code"] == "room_occupied"
