"""What a token means over time, against a real livekit-server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flask import Flask
from livekit import rtc


def token(app: Flask) -> dict[str, Any]:
    response = app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_connected_participant_outlives_its_short_join_token(make_app: Any, users: Any) -> None:
    users.staff.add("user-1")
    app = make_app(LIVEKIT_ONBOARDING_TOKEN_TTL=2)
    body = token(app)

    async def scenario() -> None:
        room = rtc.Room()
        changed = asyncio.Event()
        room.on("room_metadata_changed", lambda old, new: changed.set())
        await room.connect(body["server_url"], body["participant_token"])
        try:
            await asyncio.sleep(6)  # three times the token's lifetime
            assert room.connection_state == rtc.ConnectionState.CONN_CONNECTED
            response = await asyncio.to_thread(
                app.test_client().patch,
                f"/livekit/rooms/{body['room_name']}/context",
                json={"context": {"step": "still-here"}},
            )
            assert response.status_code == 200
            await asyncio.wait_for(changed.wait(), 10)
            assert json.loads(room.metadata)["onboarding"]["context"]["step"] == "still-here"
        finally:
            await room.disconnect()

    asyncio.run(scenario())
    app.test_client().delete(f"/livekit/rooms/{body['room_name']}")


def test_with_resume_a_stale_token_opens_an_empty_room_and_the_next_request_a_new_session(
    make_app: Any, users: Any
) -> None:
    from flask_livekit_onboarding import Identity

    users.current = Identity("lifetime-user", "Ada")
    app = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume",
        LIVEKIT_ONBOARDING_AGENT_NAME="onboarding-assistant",
    )
    body = token(app)
    client = app.test_client()
    session_id = client.get(f"/livekit/rooms/{body['room_name']}").get_json()["session_id"]
    assert client.delete(f"/livekit/rooms/{body['room_name']}").status_code == 204

    async def rejoin() -> str:
        room = rtc.Room()
        await room.connect(body["server_url"], body["participant_token"])
        try:
            return room.metadata
        finally:
            await room.disconnect()

    # The ended session does not come back: the token carries no room configuration.
    assert "onboarding" not in json.loads(asyncio.run(rejoin()) or "{}")
    again = token(app)
    status = client.get(f"/livekit/rooms/{again['room_name']}").get_json()
    assert again["resumed"] is False and status["session_id"] != session_id
    assert status["context"]["step"] == "welcome"
    client.delete(f"/livekit/rooms/{body['room_name']}")


def test_with_the_new_policy_a_stale_token_does_not_bring_an_ended_session_back(
    make_app: Any,
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="new",
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join",
        LIVEKIT_ONBOARDING_AGENT_NAME="onboarding-assistant",
    )
    body = token(app)
    client = app.test_client()

    async def join() -> tuple[str, list[str]]:
        room = rtc.Room()
        await room.connect(body["server_url"], body["participant_token"])
        try:
            await asyncio.sleep(0.5)
            return room.metadata, [p.identity for p in room.remote_participants.values()]
        finally:
            await room.disconnect()

    first_metadata, _ = asyncio.run(join())
    assert json.loads(first_metadata)["onboarding"]["session_id"]
    assert client.delete(f"/livekit/rooms/{body['room_name']}").status_code == 204

    stale_metadata, _ = asyncio.run(join())

    assert "onboarding" not in json.loads(stale_metadata)
    assert json.loads(stale_metadata)["onboarding_ended"]["session_id"]
    assert client.get(f"/livekit/rooms/{body['room_name']}").status_code == 404
