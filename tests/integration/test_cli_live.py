"""``flask livekit`` commands against a real livekit-server and a real SDK client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from livekit import rtc

from flask_livekit_onboarding.devserver import LiveKitDevServer, free_port

pytestmark = pytest.mark.integration

EVENT_WAIT = 10.0


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["livekit", *args])


def room_names(app: Flask) -> list[str]:
    result = run(app, "rooms")
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_check_passes_with_the_servers_credentials(
    app: Flask, livekit_server: LiveKitDevServer
) -> None:
    result = run(app, "check")

    assert result.exit_code == 0, result.output
    assert f"LiveKit at {livekit_server.url} accepted API key" in result.stdout
    assert livekit_server.api_secret not in result.output


def test_check_fails_with_a_wrong_secret(make_app: Any, livekit_server: LiveKitDevServer) -> None:
    wrong = "w" * 48
    app = make_app(LIVEKIT_API_SECRET=wrong)

    result = run(app, "check")

    assert result.exit_code == 1
    assert "refused the credentials" in result.stderr
    assert wrong not in result.output + result.stderr
    assert livekit_server.api_secret not in result.output + result.stderr


def test_check_fails_when_nothing_listens(make_app: Any) -> None:
    app = make_app(LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}")

    result = run(app, "check", "--timeout", "3")

    assert result.exit_code == 1
    assert "Cannot reach LiveKit" in result.stderr


def test_token_joins_a_client_listed_by_rooms_and_end_disconnects_it(app: Flask) -> None:
    minted = run(app, "token", "--identity", "cli-tester", "--context", '{"step": "demo"}')
    assert minted.exit_code == 0, minted.output
    token = minted.stdout.strip()
    room_name = minted.stderr.split("room: ", 1)[1].split()[0]
    url = app.config["LIVEKIT_URL"]

    assert room_name in room_names(app)

    async def scenario() -> None:
        room = rtc.Room()
        loop = asyncio.get_running_loop()
        disconnected: asyncio.Future[Any] = loop.create_future()

        @room.on("disconnected")
        def on_disconnected(reason: Any) -> None:
            if not disconnected.done():
                disconnected.set_result(reason)

        await room.connect(url, token)
        try:
            assert room.name == room_name
            assert room.local_participant.identity == "cli-tester"
            # LiveKit refreshes a room's participant count a moment after a join.
            deadline = loop.time() + EVENT_WAIT
            while True:
                listing = await asyncio.to_thread(run, app, "rooms")
                row = next(line for line in listing.stdout.splitlines() if room_name in line)
                if row.split()[2] == "1" or loop.time() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert row.split()[1:3] == ["cli-tester", "1"]

            ended = await asyncio.to_thread(run, app, "end", room_name)
            assert ended.exit_code == 0, ended.output
            await asyncio.wait_for(disconnected, EVENT_WAIT)
        finally:
            await room.disconnect()

    asyncio.run(scenario())

    assert room_name not in room_names(app)
    again = run(app, "end", room_name)
    assert again.exit_code == 1
    assert f"No onboarding room named {room_name!r}" in again.stderr


def test_token_for_an_existing_room_lets_a_second_participant_in(app: Flask) -> None:
    first = run(app, "token", "--identity", "owner-1", "--json")
    assert first.exit_code == 0, first.output
    room_name = first.stdout.split('"room_name": "', 1)[1].split('"', 1)[0]

    second = run(app, "token", "--identity", "staff-1", "--room", room_name)
    assert second.exit_code == 0, second.output

    async def scenario() -> list[str]:
        room = rtc.Room()
        await room.connect(app.config["LIVEKIT_URL"], second.stdout.strip())
        try:
            return [room.name, room.local_participant.identity]
        finally:
            await room.disconnect()

    assert asyncio.run(scenario()) == [room_name, "staff-1"]
    assert run(app, "end", room_name).exit_code == 0
