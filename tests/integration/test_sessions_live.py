"""Session routes against a real livekit-server, watched by a connected `livekit` SDK client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from flask import Flask
from livekit import api, rtc

from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.devserver import LiveKitDevServer

pytestmark = pytest.mark.integration

#: Upper bound on waiting for an event pushed by LiveKit to the client.
EVENT_WAIT = 10.0


def start_session(app: Flask) -> dict[str, Any]:
    response = app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


async def call(app: Flask, method: str, path: str, **kwargs: Any) -> Any:
    """Make a request without blocking the event loop that delivers the client's events."""
    return await asyncio.to_thread(getattr(app.test_client(), method), path, **kwargs)


def test_connected_client_sees_context_updates_and_is_disconnected_at_the_end(
    app: Flask, users: Any
) -> None:
    users.staff.add("user-1")  # the host's context is staff's to change, even for the owner
    session = start_session(app)
    path = f"/livekit/rooms/{session['room_name']}"

    async def scenario() -> None:
        room = rtc.Room()
        loop = asyncio.get_running_loop()
        metadata_changed: asyncio.Future[str] = loop.create_future()
        disconnected: asyncio.Future[Any] = loop.create_future()

        @room.on("room_metadata_changed")
        def on_metadata(old: str, new: str) -> None:
            if not metadata_changed.done():
                metadata_changed.set_result(new)

        @room.on("disconnected")
        def on_disconnected(reason: Any) -> None:
            if not disconnected.done():
                disconnected.set_result(reason)

        await room.connect(session["server_url"], session["participant_token"])
        try:
            status = (await call(app, "get", path)).get_json()
            assert status["participants"] == [
                {
                    "identity": "user-1",
                    "name": "Ada Lovelace",
                    "kind": "standard",
                    "joined_at": status["participants"][0]["joined_at"],
                    "role": "owner",
                }
            ]
            assert status["num_participants"] == 1

            patched = await call(
                app, "patch", f"{path}/context", json={"context": {"step": "profile"}}
            )
            assert patched.status_code == 200

            seen = json.loads(await asyncio.wait_for(metadata_changed, EVENT_WAIT))
            assert seen["onboarding"]["context"] == {
                "user": "user-1",
                "plan": "pro",
                "locale": "en",
                "step": "profile",
            }
            assert seen["onboarding"]["owner"] == "user-1"
            assert json.loads(room.metadata) == seen

            ended = await call(app, "delete", path)
            assert ended.status_code == 204
            await asyncio.wait_for(disconnected, EVENT_WAIT)
            assert room.connection_state == rtc.ConnectionState.CONN_DISCONNECTED
        finally:
            await room.disconnect()

    asyncio.run(scenario())

    client = app.test_client()
    assert client.get(path).status_code == 404
    again = client.delete(path)
    assert again.status_code == 404
    assert again.get_json()["error"]["code"] == "room_not_found"


def test_status_and_replace_read_back_from_livekit(app: Flask, users: Any) -> None:
    users.staff.add("user-1")
    session = start_session(app)
    path = f"/livekit/rooms/{session['room_name']}"
    client = app.test_client()
    before = client.get(path).get_json()

    response = client.patch(
        f"{path}/context", json={"context": {"step": "done"}, "mode": "replace"}
    )

    assert response.status_code == 200
    after = client.get(path).get_json()
    assert after["context"] == {"step": "done"}
    assert (after["owner"], after["created_at"]) == (before["owner"], before["created_at"])
    assert (after["session_id"], after["room_sid"]) == (before["session_id"], before["room_sid"])
    assert before["session_id"] and before["room_sid"].startswith("RM_")
    assert before == {
        "room_name": session["room_name"],
        "exists": True,
        "started": True,
        "session_id": before["session_id"],
        "room_sid": before["room_sid"],
        "client": {},
        "reports": {},
        "owner": "user-1",
        "created_at": before["created_at"],
        "context": {"user": "user-1", "plan": "pro", "locale": "en", "step": "welcome"},
        "num_participants": 0,
        "participants": [],
    }
    assert client.delete(path).status_code == 204


def test_other_users_are_kept_out_and_staff_let_in(app: Flask, users: Any) -> None:
    session = start_session(app)
    path = f"/livekit/rooms/{session['room_name']}"
    client = app.test_client()

    users.current = Identity("user-2", "Mallory")
    assert client.get(path).status_code == 403
    assert client.patch(f"{path}/context", json={"context": {"step": "x"}}).status_code == 403
    assert client.delete(path).status_code == 403

    users.current = Identity("staff-1", "Grace")
    users.staff.add("staff-1")
    assert client.get(path).get_json()["context"]["step"] == "welcome"
    assert client.delete(path).status_code == 204


def test_rooms_that_are_not_onboarding_rooms_are_left_alone(
    app: Flask, livekit_server: LiveKitDevServer
) -> None:
    async def livekit(fn: Any) -> Any:
        async with api.LiveKitAPI(
            livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
        ) as lk:
            return await fn(lk)

    asyncio.run(
        livekit(
            lambda lk: lk.room.create_room(
                api.CreateRoomRequest(name="sessions-standup", metadata='{"topic":"daily"}')
            )
        )
    )
    client = app.test_client()
    try:
        assert client.get("/livekit/rooms/sessions-standup").status_code == 404
        patched = client.patch(
            "/livekit/rooms/sessions-standup/context", json={"context": {"step": "x"}}
        )
        assert patched.status_code == 404
        assert client.delete("/livekit/rooms/sessions-standup").status_code == 404

        rooms = asyncio.run(
            livekit(lambda lk: lk.room.list_rooms(api.ListRoomsRequest(names=["sessions-standup"])))
        ).rooms
        assert [r.metadata for r in rooms] == ['{"topic":"daily"}']
    finally:
        asyncio.run(
            livekit(lambda lk: lk.room.delete_room(api.DeleteRoomRequest(room="sessions-standup")))
        )


def test_on_join_room_is_managed_once_the_first_participant_is_in(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    session = start_session(app)
    path = f"/livekit/rooms/{session['room_name']}"
    client = app.test_client()

    assert client.get(path).status_code == 404

    async def scenario() -> None:
        room = rtc.Room()
        await room.connect(session["server_url"], session["participant_token"])
        try:
            status = await call(app, "get", path)
            assert status.status_code == 200
            assert [p["identity"] for p in status.get_json()["participants"]] == ["user-1"]
            assert (await call(app, "delete", path)).status_code == 204
        finally:
            await room.disconnect()

    asyncio.run(scenario())


def test_the_hosts_background_job_moves_and_ends_a_live_session(
    app: Flask, onboarding: Any
) -> None:
    """Host code outside any app context (a worker thread) updates and ends a session on the
    real server; the connected client sees both, and receivers run in the app's context."""
    from threading import Thread

    from flask import current_app

    from flask_livekit_onboarding import signals

    session = start_session(app)
    name = session["room_name"]
    received: list[tuple[str, Any]] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        received.append((kwargs["room_name"], current_app._get_current_object()))  # type: ignore[attr-defined]

    def host_job(action: str) -> None:
        def run() -> None:
            if action == "update":
                onboarding.update_context(name, {"step": "invite-team"}, app=app)
            else:
                onboarding.end_session(name, app=app)

        thread = Thread(target=run)
        thread.start()
        thread.join(EVENT_WAIT)

    async def scenario() -> None:
        room = rtc.Room()
        loop = asyncio.get_running_loop()
        metadata_changed: asyncio.Future[str] = loop.create_future()
        disconnected: asyncio.Future[Any] = loop.create_future()

        @room.on("room_metadata_changed")
        def on_metadata(old: str, new: str) -> None:
            if not metadata_changed.done():
                metadata_changed.set_result(new)

        @room.on("disconnected")
        def on_disconnected(reason: Any) -> None:
            if not disconnected.done():
                disconnected.set_result(reason)

        await room.connect(session["server_url"], session["participant_token"])
        await asyncio.to_thread(host_job, "update")
        seen = json.loads(await asyncio.wait_for(metadata_changed, EVENT_WAIT))
        assert seen["onboarding"]["context"]["step"] == "invite-team"
        await asyncio.to_thread(host_job, "end")
        await asyncio.wait_for(disconnected, EVENT_WAIT)

    signals.context_updated.connect(receiver, app)
    signals.session_ended.connect(receiver, app)
    try:
        asyncio.run(scenario())
    finally:
        signals.context_updated.disconnect(receiver)
        signals.session_ended.disconnect(receiver)
    assert received == [(name, app), (name, app)]
    assert app.test_client().get(f"/livekit/rooms/{name}").status_code == 404
