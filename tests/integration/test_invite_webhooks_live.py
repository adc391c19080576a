"""Webhook signals say who joined as what: LiveKit's webhooks reach the app's live server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding import LiveKitOnboarding, signals
from flask_livekit_onboarding.devserver import LiveKitDevServer
from flask_livekit_onboarding.invites import INVITE_HEADER

from .invite_support import connect, header_login_extension

pytestmark = [
    pytest.mark.integration,
    # live_server forks; Python 3.12+ warns when the test process already runs threads.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@pytest.fixture
def onboarding() -> LiveKitOnboarding:
    return header_login_extension()


@pytest.fixture
def joined_log(tmp_path: Path) -> Path:
    path = tmp_path / "joined.jsonl"
    path.touch()
    return path


@pytest.fixture
def app(
    make_app: Callable[..., Flask],
    livekit_server: LiveKitDevServer,
    livekit_webhook_port: int,
    joined_log: Path,
) -> Iterator[Flask]:
    app = make_app(LIVESERVER_PORT=livekit_webhook_port)

    def record(sender: Flask, **kwargs: Any) -> None:
        line = {"room_name": kwargs["room_name"], "who": kwargs["participant"].identity}
        with joined_log.open("a") as log:
            log.write(json.dumps({**line, "role": kwargs["role"]}) + "\n")

    signals.participant_joined.connect(record, app, weak=False)
    yield app
    signals.participant_joined.disconnect(record, app)


def post(live_server: Any, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    outgoing = urllib.request.Request(
        live_server.url(path),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(outgoing, timeout=10) as response:
        assert response.status == 201
        answer: dict[str, Any] = json.loads(response.read())
        return answer


async def joined(log: Path, room_name: str, count: int) -> dict[str, str | None]:
    deadline = time.monotonic() + 20
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line]
        found = {r["who"]: r["role"] for r in lines if r["room_name"] == room_name}
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def test_participant_joined_receivers_know_who_joined_as_what(
    live_server: Any, joined_log: Path
) -> None:
    owner = post(live_server, "/livekit/token", {}, **{"X-User": "ada"})
    room_name = owner["room_name"]
    created = post(
        live_server, f"/livekit/rooms/{room_name}/invites", {"role": "viewer"}, **{"X-User": "ada"}
    )
    viewer = post(
        live_server,
        "/livekit/token",
        {"room_name": room_name},
        **{"X-User": "grace", INVITE_HEADER: created["code"]},
    )
    staff = post(live_server, "/livekit/token", {"room_name": room_name}, **{"X-User": "sam"})

    async def scenario() -> dict[str, str | None]:
        rooms = [await connect(body) for body in (owner, viewer, staff)]
        try:
            return await joined(joined_log, room_name, 3)
        finally:
            for room in rooms:
                await room.disconnect()

    assert asyncio.run(scenario()) == {"ada": "owner", "grace": "viewer", "sam": "staff"}
    try:
        outgoing = urllib.request.Request(
            live_server.url(f"/livekit/rooms/{room_name}"),
            headers={"X-User": "ada"},
            method="DELETE",
        )
        urllib.request.urlopen(outgoing, timeout=10).close()
    except urllib.error.HTTPError:
        pass
