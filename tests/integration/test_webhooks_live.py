"""Webhooks from a real livekit-server to the app served by pytest-flask's ``live_server``.

``live_server`` runs the app in a forked process, so the signals fire there: receivers connected
before the fork append what they saw to a JSON-lines file that the test reads back.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from livekit import api, rtc

from flask_livekit_onboarding import signals
from flask_livekit_onboarding.devserver import LiveKitDevServer

pytestmark = [
    pytest.mark.integration,
    # live_server forks; Python 3.12+ warns when the test process already runs threads.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

CONTEXT = {"user": "user-1", "plan": "pro", "locale": "en", "step": "welcome"}
SIGNALS = {
    "webhook_received": signals.webhook_received,
    "room_started": signals.room_started,
    "room_finished": signals.room_finished,
    "participant_joined": signals.participant_joined,
    "participant_left": signals.participant_left,
    "track_published": signals.track_published,
}

Record = dict[str, Any]


class SignalLog:
    """What the app's signal receivers saw, written by the server process, read by the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def receiver(self, name: str) -> Callable[..., None]:
        def record(sender: Flask, **kwargs: Any) -> None:
            event = kwargs["event"]
            line: Record = {
                "signal": name,
                "id": event.id,
                "event_id": kwargs["event_id"],
                "onboarding": kwargs["onboarding"],
                "event": event.event,
                "room_name": kwargs["room_name"],
                "context": kwargs["context"],
                "participant": kwargs["participant"].identity if "participant" in kwargs else None,
                "body": request.get_data(as_text=True),
                "authorization": request.headers.get("Authorization"),
            }
            with self.path.open("a") as log:
                log.write(json.dumps(line) + "\n")

        return record

    def records(self, **match: Any) -> list[Record]:
        lines = self.path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.endswith("}")]
        return [r for r in records if all(r[k] == v for k, v in match.items())]

    async def wait_for(self, timeout: float = 15.0, **match: Any) -> Record:
        deadline = time.monotonic() + timeout
        while not (found := self.records(**match)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {match} signal within {timeout}s: {self.records()}")
            await asyncio.sleep(0.05)
        return found[0]


@pytest.fixture
def signal_log(tmp_path: Path) -> SignalLog:
    return SignalLog(tmp_path / "signals.jsonl")


@pytest.fixture
def app(
    make_app: Callable[..., Flask],
    livekit_server: LiveKitDevServer,
    livekit_webhook_port: int,
    signal_log: SignalLog,
) -> Iterator[Flask]:
    """The app LiveKit's webhooks reach, with every webhook signal recorded."""
    app = make_app(
        LIVEKIT_URL=livekit_server.url,
        LIVEKIT_API_KEY=livekit_server.api_key,
        LIVEKIT_API_SECRET=livekit_server.api_secret,
        LIVESERVER_PORT=livekit_webhook_port,
    )
    receivers = [(signal, signal_log.receiver(name)) for name, signal in SIGNALS.items()]
    for signal, receiver in receivers:
        signal.connect(receiver, app, weak=False)
    yield app
    for signal, receiver in receivers:
        signal.disconnect(receiver, app)


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    outgoing = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(outgoing, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def request_token(live_server: Any) -> dict[str, Any]:
    status, body = http_post(
        live_server.url("/livekit/token"), b"{}", {"Content-Type": "application/json"}
    )
    assert status == 201, body
    return body


def post_webhook(live_server: Any, body: bytes, authorization: str) -> tuple[int, dict[str, Any]]:
    return http_post(
        live_server.url("/livekit/webhook"),
        body,
        {"Authorization": authorization, "Content-Type": "application/webhook+json"},
    )


def sign(
    server: LiveKitDevServer,
    body: bytes,
    *,
    secret: str | None = None,
    ttl: datetime.timedelta = datetime.timedelta(minutes=5),
) -> str:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(server.api_key, secret or server.api_secret)
    return token.with_ttl(ttl).with_sha256(digest).to_jwt()


async def delete_room(server: LiveKitDevServer, name: str) -> None:
    lkapi = api.LiveKitAPI(server.http_url, server.api_key, server.api_secret)
    try:
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))
    finally:
        await lkapi.aclose()


def test_real_client_joining_and_leaving_reaches_the_hosts_signals(
    live_server: Any, livekit_server: LiveKitDevServer, signal_log: SignalLog
) -> None:
    token = request_token(live_server)
    name = token["room_name"]

    async def scenario() -> None:
        started = await signal_log.wait_for(signal="room_started", room_name=name)
        assert started["context"] == CONTEXT
        room = rtc.Room()
        await room.connect(token["server_url"], token["participant_token"])
        try:
            joined = await signal_log.wait_for(signal="participant_joined", room_name=name)
            assert joined["participant"] == "user-1"
            assert joined["context"] == CONTEXT
            assert signal_log.records(signal="participant_left", room_name=name) == []
        finally:
            await room.disconnect()
        left = await signal_log.wait_for(signal="participant_left", room_name=name)
        assert left["participant"] == "user-1"
        assert left["context"] == CONTEXT
        assert signal_log.records(signal="room_finished", room_name=name) == []

        await delete_room(livekit_server, name)
        finished = await signal_log.wait_for(signal="room_finished", room_name=name)
        assert finished["context"] == CONTEXT
        assert finished["participant"] is None

    asyncio.run(scenario())

    for kind in ("room_started", "participant_joined", "participant_left", "room_finished"):
        (specific,) = signal_log.records(signal=kind, room_name=name)
        (received,) = signal_log.records(signal="webhook_received", id=specific["id"])
        assert received["event"] == kind
        assert received["authorization"] and not received["authorization"].startswith("Bearer")


def test_forged_replayed_and_duplicated_webhooks_emit_nothing(
    live_server: Any, livekit_server: LiveKitDevServer, signal_log: SignalLog
) -> None:
    name = request_token(live_server)["room_name"]
    genuine = asyncio.run(signal_log.wait_for(signal="webhook_received", room_name=name))
    body, authorization = genuine["body"].encode(), genuine["authorization"]
    fresh = json.loads(body)
    fresh["id"] = f"EV_{uuid.uuid4().hex[:12]}"
    fresh["createdAt"] = str(int(time.time()))
    fresh_body = json.dumps(fresh).encode()

    attempts = {
        "replayed": (body, authorization),
        "retried": (body, sign(livekit_server, body, ttl=datetime.timedelta(minutes=7))),
        "forged": (fresh_body, sign(livekit_server, fresh_body, secret="f" * 48)),
        "tampered": (body.replace(name.encode(), b"onboarding-other"), authorization),
        "new event, old signature": (fresh_body, authorization),
        "expired": (fresh_body, sign(livekit_server, fresh_body, ttl=-datetime.timedelta(hours=1))),
        "unsigned": (fresh_body, ""),
    }
    outcomes = {what: post_webhook(live_server, *attempt) for what, attempt in attempts.items()}

    assert outcomes["replayed"] == (200, {"status": "duplicate"})
    assert outcomes["retried"] == (200, {"status": "duplicate"})
    for what in ("forged", "tampered", "new event, old signature", "expired", "unsigned"):
        status, error = outcomes[what]
        assert (status, error["error"]["code"]) == (401, "unauthorized"), what
    assert len(signal_log.records(id=genuine["id"], signal="webhook_received")) == 1
    assert signal_log.records(id=fresh["id"]) == []

    # The same fresh event, properly signed, is delivered: the refusals were not a broken path.
    valid = post_webhook(live_server, fresh_body, sign(livekit_server, fresh_body))
    duplicate = post_webhook(live_server, fresh_body, sign(livekit_server, fresh_body))
    assert valid == (200, {"status": "accepted"})
    assert duplicate == (200, {"status": "duplicate"})
    assert len(signal_log.records(id=fresh["id"], signal="webhook_received")) == 1
    asyncio.run(delete_room(livekit_server, name))


class FailingOnce:
    """A required ``room_started`` receiver that fails the first time for each room (its
    database was down).

    It logs each call to a file, since the app is served from a fork.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def __call__(self, sender: Flask, *, event_id: str, room_name: str, **kwargs: Any) -> None:
        with self.path.open("a") as log:
            log.write(f"{event_id} {room_name}\n")
        if len(self.calls(room_name)) == 1:
            raise RuntimeError("the host's database is down")

    def calls(self, room_name: str) -> list[str]:
        return [line for line in self.path.read_text().splitlines() if line.endswith(room_name)]


@pytest.fixture
def failing_once(app: Flask, live_server: Any, tmp_path: Path) -> Iterator[FailingOnce]:
    receiver = signals.required(FailingOnce(tmp_path / "required.log"))
    signals.room_started.connect(receiver, app, weak=False)
    # live_server forked the app before this receiver was connected: fork it again.
    live_server.stop()
    live_server.start()
    yield receiver
    signals.room_started.disconnect(receiver, app)


def test_required_receiver_failing_once_gets_the_event_again_from_livekit(
    failing_once: FailingOnce,
    live_server: Any,
    livekit_server: LiveKitDevServer,
    signal_log: SignalLog,
) -> None:
    name = request_token(live_server)["room_name"]

    async def both_attempts() -> list[Record]:
        deadline = time.monotonic() + 30  # generous: the machine may be busy
        while len(records := signal_log.records(signal="room_started", room_name=name)) < 2:
            assert time.monotonic() < deadline, records
            await asyncio.sleep(0.05)
        return records

    first, second = asyncio.run(both_attempts())
    event_id = first["event_id"]
    # LiveKit got a 503 for the first attempt and sent the very same event again.
    assert second["event_id"] == event_id
    assert failing_once.calls(name) == [f"{event_id} {name}"] * 2
    assert second["onboarding"] is True and second["context"] == CONTEXT
    time.sleep(3)  # a further retry would have come by now (LiveKit waits 1 s, 2 s, 4 s)
    assert len(failing_once.calls(name)) == 2
    assert len(signal_log.records(signal="room_started", room_name=name)) == 2
    asyncio.run(delete_room(livekit_server, name))


def test_track_events_of_an_onboarding_room_say_so(
    live_server: Any, livekit_server: LiveKitDevServer, signal_log: SignalLog
) -> None:
    token = request_token(live_server)
    name = token["room_name"]

    async def scenario() -> Record:
        room = rtc.Room()
        await room.connect(token["server_url"], token["participant_token"])
        try:
            source = rtc.AudioSource(48000, 1)
            track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
            await room.local_participant.publish_track(track)
            # LiveKit sends track_published with the room's name and sid only.
            return await signal_log.wait_for(signal="track_published", room_name=name)
        finally:
            await room.disconnect()

    published = asyncio.run(scenario())
    assert '"metadata"' not in json.loads(published["body"])["room"]
    assert published["onboarding"] is True
    assert published["context"] == CONTEXT
    (received,) = signal_log.records(signal="webhook_received", id=published["id"])
    assert received["onboarding"] is True
    asyncio.run(delete_room(livekit_server, name))


def broken_receiver(sender: Flask, **kwargs: Any) -> None:
    raise RuntimeError("the host's receiver is broken")


def test_failing_receivers_do_not_fail_changes_made_on_livekit(
    make_app: Callable[..., Flask], users: Any, livekit_server: LiveKitDevServer
) -> None:
    users.staff.add("user-1")
    app = make_app()
    client = app.test_client()
    connected = [
        signals.room_created,
        signals.token_issued,
        signals.context_updated,
        signals.session_ended,
    ]
    for signal in connected:
        signal.connect(broken_receiver, app)
    try:
        issued = client.post("/livekit/token", json={})
        name = issued.get_json()["room_name"]
        updated = client.patch(f"/livekit/rooms/{name}/context", json={"context": {"step": "2"}})
        shown = client.get(f"/livekit/rooms/{name}")
        ended = client.delete(f"/livekit/rooms/{name}")
        gone = client.get(f"/livekit/rooms/{name}")
    finally:
        for signal in connected:
            signal.disconnect(broken_receiver, app)

    assert issued.status_code == 201
    assert updated.status_code == 200
    assert shown.get_json()["context"]["step"] == "2"
    assert ended.status_code == 204
    assert gone.status_code == 404
