"""The token endpoint against a real livekit-server, joined by the real `livekit` SDK."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from livekit import api, rtc

from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.devserver import LiveKitDevServer, ensure_livekit_server

pytestmark = pytest.mark.integration


def request_token(
    app: Flask, body: dict[str, Any] | None = None, prefix: str = "/livekit"
) -> dict[str, Any]:
    response = app.test_client().post(f"{prefix}/token", json=body or {})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


async def join(body: dict[str, Any]) -> rtc.Room:
    room = rtc.Room()
    await room.connect(body["server_url"], body["participant_token"])
    return room


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def server_api(server: LiveKitDevServer) -> api.LiveKitAPI:
    return api.LiveKitAPI(server.http_url, server.api_key, server.api_secret)


@pytest.mark.parametrize("mode", ["eager", "on_join"])
def test_sdk_joins_the_new_room_and_reads_the_hosts_context(make_app, mode: str) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION=mode)
    body = request_token(app)

    async def scenario() -> None:
        room = await join(body)
        try:
            await wait_for(lambda: room.metadata != "")
            record = json.loads(room.metadata)["onboarding"]
            assert room.name == body["room_name"]
            assert record["owner"] == "user-1"
            assert record["context"] == {
                "user": "user-1",
                "plan": "pro",
                "locale": "en",
                "step": "welcome",
            }
            me = room.local_participant
            assert (me.identity, me.name) == ("user-1", "Ada Lovelace")
            assert me.metadata == '{"plan":"pro"}'
            assert me.attributes == {"role": "customer", "onboarding.role": "owner"}
        finally:
            await room.disconnect()

    asyncio.run(scenario())


def test_eager_room_exists_before_anyone_joins(make_app, livekit_server: LiveKitDevServer) -> None:
    name = request_token(make_app())["room_name"]

    async def rooms() -> list[str]:
        async with await server_api(livekit_server) as lk:
            listed = await lk.room.list_rooms(api.ListRoomsRequest(names=[name]))
        return [r.name for r in listed.rooms]

    assert asyncio.run(rooms()) == [name]


@pytest.mark.parametrize("mode", ["eager", "on_join"])
def test_configured_agent_is_dispatched_into_the_room(
    make_app, livekit_server: LiveKitDevServer, mode: str
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode, LIVEKIT_ONBOARDING_AGENT_NAME="onboarding-assistant"
    )
    body = request_token(app)

    async def scenario() -> list[str]:
        room = await join(body)
        try:
            async with await server_api(livekit_server) as lk:
                dispatches = await lk.agent_dispatch.list_dispatch(body["room_name"])
        finally:
            await room.disconnect()
        return [d.agent_name for d in dispatches]

    assert asyncio.run(scenario()) == ["onboarding-assistant"]


def test_owner_rejoins_and_others_are_refused_unless_allowed(make_app, users) -> None:
    app = make_app()
    first = request_token(app)
    again = request_token(app, {"room_name": first["room_name"]})
    users.current = Identity("user-2", "Grace")
    stranger = app.test_client().post("/livekit/token", json={"room_name": first["room_name"]})
    assert stranger.status_code == 403
    users.staff.add("user-2")
    staff = request_token(app, {"room_name": first["room_name"]})

    async def scenario() -> None:
        owner_room = await join(again)
        staff_room = await join(staff)
        try:
            await wait_for(lambda: "user-2" in owner_room.remote_participants)
            assert owner_room.name == staff_room.name == first["room_name"]
        finally:
            await staff_room.disconnect()
            await owner_room.disconnect()

    asyncio.run(scenario())


def test_two_apps_with_different_configs_share_one_process(make_app) -> None:
    eager = make_app(LIVEKIT_ONBOARDING_URL_PREFIX="/a", LIVEKIT_ONBOARDING_ROOM_PREFIX="welcome-")
    lazy = make_app(LIVEKIT_ONBOARDING_URL_PREFIX="/b", LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    first = request_token(eager, prefix="/a")
    second = request_token(lazy, prefix="/b")
    assert first["room_name"].startswith("welcome-")
    assert second["room_name"].startswith("onboarding-")

    async def scenario() -> None:
        rooms = [await join(first), await join(second)]
        try:
            assert [r.name for r in rooms] == [first["room_name"], second["room_name"]]
        finally:
            for room in rooms:
                await room.disconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"data": "{oops", "content_type": "application/json"}, 400),
        ({"json": {"participant_identity": "someone-else"}}, 403),
        ({"json": {"room_name": "onboarding-does-not-exist"}}, 404),
        ({"data": "x" * 300_000, "content_type": "application/json"}, 413),
        ({"data": "room_name=x", "content_type": "text/plain"}, 415),
        ({"json": {"participant_name": "x" * 300}}, 422),
    ],
)
def test_every_client_error_is_json_with_its_status(
    make_app, request_kwargs: dict[str, Any], status: int
) -> None:
    response = make_app().test_client().post("/livekit/token", **request_kwargs)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.get_json()["error"]) >= {"code", "message"}


def test_signed_out_user_gets_401_from_the_live_app(make_app, users) -> None:
    users.current = None
    response = make_app().test_client().post("/livekit/token", json={})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.fixture
def outage_server() -> Iterator[LiveKitDevServer]:
    """A livekit-server of this test's own, so stopping it disturbs no other test."""
    server = LiveKitDevServer(ensure_livekit_server())
    server.start()
    try:
        yield server
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        server.close()


def wait_until_stopped(pid: int) -> None:
    """SIGSTOP takes effect asynchronously; wait until every thread of ``pid`` is stopped."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = [
            Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            for tid in os.listdir(f"/proc/{pid}/task")
        ]
        if all(state == "T" for state in states):
            return
        time.sleep(0.01)
    raise AssertionError("livekit-server did not stop")


def test_outage_maps_to_503_and_504_within_the_timeout_then_recovers(
    make_app, outage_server: LiveKitDevServer
) -> None:
    app = make_app(
        LIVEKIT_URL=outage_server.url,
        LIVEKIT_API_KEY=outage_server.api_key,
        LIVEKIT_API_SECRET=outage_server.api_secret,
        LIVEKIT_ONBOARDING_REQUEST_TIMEOUT=1.5,
    )
    client = app.test_client()
    assert client.post("/livekit/token", json={}).status_code == 201

    outage_server.stop()
    started = time.monotonic()
    down = client.post("/livekit/token", json={})
    assert down.status_code == 503
    assert down.get_json()["error"]["code"] == "livekit_unavailable"
    assert time.monotonic() - started < 3.0

    outage_server.start()
    assert client.post("/livekit/token", json={}).status_code == 201

    assert outage_server.pid is not None
    os.kill(outage_server.pid, signal.SIGSTOP)  # alive but not answering
    wait_until_stopped(outage_server.pid)
    try:
        started = time.monotonic()
        frozen = client.post("/livekit/token", json={})
        elapsed = time.monotonic() - started
    finally:
        os.kill(outage_server.pid, signal.SIGCONT)
    assert frozen.status_code == 504
    assert frozen.get_json()["error"]["code"] == "livekit_timeout"
    assert elapsed < 3.0

    recovered = client.post("/livekit/token", json={})
    assert recovered.status_code == 201

    async def scenario() -> None:
        room = await join(recovered.get_json())
        await room.disconnect()

    asyncio.run(scenario())
