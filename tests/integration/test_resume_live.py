"""One live session per user against a real livekit-server: reloads, two tabs, ending."""

from __future__ import annotations

import asyncio
import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from livekit import api, rtc

from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.devserver import LiveKitDevServer

AGENT = "onboarding-assistant"
_users = itertools.count()


@pytest.fixture
def app(make_app: Any, users: Any, request: pytest.FixtureRequest) -> Flask:
    # A user of their own per test: their room name is derived from the identity.
    users.current = Identity(f"resume-user-{next(_users)}", "Ada")
    mode = getattr(request, "param", "eager")
    return make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume",
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT,
    )


def token(app: Flask) -> dict[str, Any]:
    response = app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


async def dispatches(server: LiveKitDevServer, room: str) -> list[api.AgentDispatch]:
    lk = api.LiveKitAPI(server.http_url, server.api_key, server.api_secret)
    try:
        return list(await lk.agent_dispatch.list_dispatch(room))
    finally:
        await lk.aclose()


async def session_of(body: dict[str, Any]) -> tuple[str, str]:
    room = rtc.Room()
    await room.connect(body["server_url"], body["participant_token"])
    try:
        envelope = json.loads(room.metadata)["onboarding"]
        return envelope["session_id"], await room.sid
    finally:
        await room.disconnect()


@pytest.mark.parametrize("app", ["eager", "on_join"], indirect=True)
def test_a_reload_lands_in_the_same_room_with_one_agent(
    app: Flask, livekit_server: LiveKitDevServer
) -> None:
    first = token(app)
    first_session = asyncio.run(session_of(first))
    reload = token(app)
    second_session = asyncio.run(session_of(reload))

    assert reload["room_name"] == first["room_name"]
    assert second_session == first_session
    assert [d.agent_name for d in asyncio.run(dispatches(livekit_server, first["room_name"]))] == [
        AGENT
    ]
    if app.config["LIVEKIT_ONBOARDING_ROOM_CREATION"] == "eager":
        assert (first["resumed"], reload["resumed"]) == (False, True)
    app.test_client().delete(f"/livekit/rooms/{first['room_name']}")


def test_two_tabs_at_once_make_one_room_and_one_dispatch(
    app: Flask, livekit_server: LiveKitDevServer
) -> None:
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: token(app), range(4)))

    assert len({b["room_name"] for b in bodies}) == 1
    assert sorted(b["resumed"] for b in bodies) == [False, True, True, True]
    room = bodies[0]["room_name"]
    assert len(asyncio.run(dispatches(livekit_server, room))) == 1
    app.test_client().delete(f"/livekit/rooms/{room}")


def test_ending_the_session_starts_a_fresh_one(app: Flask, onboarding: Any) -> None:
    steps = iter(["welcome", "fresh-start"])

    @onboarding.context_provider
    def context(identity: Identity) -> dict[str, Any]:
        return {"step": next(steps)}

    first = token(app)
    old_session, _ = asyncio.run(session_of(first))
    assert app.test_client().delete(f"/livekit/rooms/{first['room_name']}").status_code == 204

    fresh = token(app)
    new_session, _ = asyncio.run(session_of(fresh))
    status = app.test_client().get(f"/livekit/rooms/{fresh['room_name']}").get_json()

    assert fresh["resumed"] is False
    assert new_session != old_session
    assert status["session_id"] == new_session
    assert status["context"] == {"step": "fresh-start"}
    app.test_client().delete(f"/livekit/rooms/{fresh['room_name']}")


def test_someone_elses_session_stays_refused(app: Flask, users: Any) -> None:
    mine = token(app)["room_name"]
    users.current = Identity("resume-intruder", "Eve")
    refused = app.test_client().post("/livekit/token", json={"room_name": mine})
    own = token(app)["room_name"]

    assert refused.status_code == 403
    assert own != mine
