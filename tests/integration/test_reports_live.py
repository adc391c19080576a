"""Reports from a real agent worker to the app, recorded in a real livekit-server's room.

The example agent (a real ``livekit-agents`` worker) reports each step of its tour and the
outcome to the app served over HTTP in this process, on the port LiveKit posts its webhooks
to; a user (the ``livekit`` SDK) sees the room metadata change. Forged and replayed
credentials are posted over HTTP as an attacker would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from livekit import api
from werkzeug.serving import make_server

from examples.agent.runner import AgentWorker
from flask_livekit_onboarding import Identity, signals
from flask_livekit_onboarding.agent_reports import Reporter
from flask_livekit_onboarding.devserver import LiveKitDevServer
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.report_auth import sign_report
from flask_livekit_onboarding.testing import sign_webhook
from tests.conftest import HostUsers
from tests.integration.agent_support import ChatClient, close_rooms, start_worker

pytestmark = pytest.mark.integration

REPORT_AGENT = "reporting-onboarding-agent"
OUTPUT = Path(__file__).resolve().parents[2] / "tests" / "output"
SIGNALS = {
    "report": signals.report_received,
    "outcome": signals.outcome_reported,
    "summary": signals.session_summarized,
    "webhook": signals.webhook_received,
}


@dataclass
class Host:
    app: Flask
    url: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, signal: str, room_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for s, e in self.events if s == signal and e["room_name"] == room_name]

    def post_report(self, room: str, body: bytes, authorization: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.url}/rooms/{room}/reports",
            data=body,
            headers={"Authorization": authorization, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def report_worker(
    livekit_server: LiveKitDevServer,
    livekit_webhook_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AgentWorker]:
    """The example agent, reporting to the app served on the webhook port."""
    host_url = f"http://127.0.0.1:{livekit_webhook_port}/livekit"
    worker = start_worker(livekit_server, REPORT_AGENT, tmp_path_factory, host_url=host_url)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def ada(users: HostUsers) -> str:
    identity = f"ada-{secrets.token_hex(4)}"
    users.current = Identity(identity=identity, name="Ada Lovelace")
    return identity


@pytest.fixture
def serve(make_app: Any, livekit_webhook_port: int, ada: str) -> Iterator[Any]:
    """Serve an app on the port LiveKit's webhooks (and the agent's reports) go to."""
    started: list[tuple[Host, Any, threading.Thread, list[Any]]] = []

    def start(**config: Any) -> Host:
        app: Flask = make_app(**config)
        served = Host(app, f"http://127.0.0.1:{livekit_webhook_port}/livekit")
        receivers = []
        for name, signal in SIGNALS.items():

            def record(sender: Flask, _name: str = name, **kwargs: Any) -> None:
                with served.lock:
                    served.events.append((_name, kwargs))

            signal.connect(record, app, weak=False)
            receivers.append((signal, record))
        server = make_server("127.0.0.1", livekit_webhook_port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((served, server, thread, receivers))
        return served

    yield start
    for served, server, thread, receivers in started:
        server.shutdown()
        server.server_close()
        thread.join(5)
        for signal, receiver in receivers:
            signal.disconnect(receiver, served.app)


@pytest.fixture
def host(serve: Any) -> Host:
    """The app without an agent: reports come from the test itself."""
    return serve()  # type: ignore[no-any-return]


@pytest.fixture
def rooms(livekit_server: LiveKitDevServer) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    asyncio.run(close_rooms(livekit_server, names))


def start_session(host: Host) -> dict[str, Any]:
    response = host.app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def first_time_at(changes: list[tuple[float, str | None]], step: str) -> float | None:
    """When the room metadata first showed ``step`` as the current one, if it did yet."""
    return next((at for at, current in list(changes) if current == step), None)


def status_with_outcome(host: Host, name: str) -> dict[str, Any] | None:
    """The room's status once it shows an outcome."""
    status: dict[str, Any] = host.app.test_client().get(f"/livekit/rooms/{name}").get_json()
    return status if "outcome" in status["reports"] else None


def current_step(metadata: str) -> str | None:
    envelope = Envelope.from_metadata(metadata)
    return None if envelope is None else envelope.reports.get("current")


async def until(check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.01)
    return found


#: (word typed, step the tour is then at): the whole tour, back to the start, on again.
TOUR = [
    ("next", "connect-data-source"),
    ("next", "invite-team"),
    ("next", "first-dashboard"),
    ("next", "done"),
    ("back", "first-dashboard"),
    ("back", "invite-team"),
    ("back", "connect-data-source"),
    ("back", "welcome"),
    ("next", "connect-data-source"),
    ("next", "invite-team"),
]


def test_the_agents_reports_advance_the_room_and_end_in_one_summary(
    report_worker: AgentWorker, serve: Any, ada: str, rooms: list[str]
) -> None:
    host = serve(LIVEKIT_ONBOARDING_AGENT_NAME=REPORT_AGENT)
    body = start_session(host)
    name = body["room_name"]
    rooms.append(name)
    latencies: list[float] = []

    async def scenario() -> None:
        user = await ChatClient().join(body)
        changes: list[tuple[float, str | None]] = []
        user.room.on(
            "room_metadata_changed",
            lambda old, new: changes.append((time.monotonic(), current_step(new))),
        )
        try:
            await user.message_containing("Step 1 of 5")
            await until(lambda: current_step(user.room.metadata) == "welcome", "welcome reported")
            for word, step in TOUR:
                changes.clear()
                await user.say(word)
                reply = await user.message_containing("Step")
                seen = await until(partial(first_time_at, changes, step), f"{step} reported")
                latencies.append(seen - reply.at)
                if step == "done":
                    # The outcome is the agent's next report, just after the last step's.
                    status = await until(partial(status_with_outcome, host, name), "outcome")
                    assert status["reports"]["current"] == "done"
                    assert status["reports"]["outcome"]["outcome"] == "completed"
                    assert [s["step"] for s in status["reports"]["steps"]] == [
                        "welcome",
                        "connect-data-source",
                        "invite-team",
                        "first-dashboard",
                        "done",
                    ]
                    assert {s["state"] for s in status["reports"]["steps"]} == {"done"}
        finally:
            await user.leave()

    asyncio.run(scenario())
    status = host.app.test_client().get(f"/livekit/rooms/{name}").get_json()
    assert status["reports"]["current"] == "invite-team"
    assert len(host.seen("outcome", name)) == 1
    assert host.seen("outcome", name)[0]["outcome"] == "completed"
    progress = [e["payload"] for e in host.seen("report", name) if e["kind"] == "progress"]
    assert progress[0] == {"step": "welcome", "state": "started"}

    assert host.app.test_client().delete(f"/livekit/rooms/{name}").status_code == 204
    asyncio.run(
        until(
            lambda: any(e["event"].event == "room_finished" for e in host.seen("webhook", name)),
            "room_finished webhook",
        )
    )
    summaries = host.seen("summary", name)
    assert len(summaries) == 1
    summary = summaries[0]["summary"]
    assert summary.outcome == "completed"
    assert summary.owner == ada and summary.users == [ada]
    assert len(summary.agents) == 1 and summary.agents[0].startswith("agent-")
    assert [s["step"] for s in summary.steps][-1] == "done"
    assert summary.ended_at >= summary.started_at

    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "report-to-page-latency.json").write_text(
        json.dumps(
            {"seconds": [round(x, 4) for x in latencies], "median": statistics.median(latencies)},
            indent=2,
        )
        + "\n"
    )


def test_forged_replayed_and_misdirected_reports_are_refused_with_nothing_recorded(
    livekit_server: LiveKitDevServer, host: Host, ada: str, rooms: list[str]
) -> None:
    body = start_session(host)
    name = body["room_name"]
    rooms.append(name)
    key, secret = livekit_server.api_key, livekit_server.api_secret
    session = Envelope.from_metadata(_metadata(livekit_server, name))
    assert session is not None
    report = {"id": "r-1", "session_id": session.session_id, "kind": "progress", "step": "welcome"}
    raw = json.dumps(report).encode()

    def signed(room: str = name, data: bytes = raw, **options: Any) -> str:
        return sign_report(key, secret, room=room, session=session.session_id, body=data, **options)

    attempts = {
        "participant token": (name, raw, f"Bearer {body['participant_token']}", 401),
        "webhook header": (name, raw, sign_webhook(raw, key, secret), 401),
        "expired": (name, raw, signed(now=time.time() - 600), 401),
        "tampered body": (name, raw.replace(b"welcome", b"done"), signed(), 401),
        "another room's": (name, raw, signed(room="onboarding-elsewhere"), 403),
        "replayed to another room": (
            "onboarding-elsewhere",
            raw,
            signed(),
            403,
        ),
    }
    for what, (room, data, authorization, status) in attempts.items():
        answer = host.post_report(room, data, authorization)
        assert answer[0] == status, (what, answer)
        assert body["participant_token"] not in json.dumps(answer[1])

    asyncio.run(_plain_room(livekit_server, "meeting-" + secrets.token_hex(3), rooms))
    plain = rooms[-1]
    assert host.post_report(plain, raw, signed(room=plain))[0] == 404
    assert Envelope.from_metadata(_metadata(livekit_server, name)).reports == {}  # type: ignore[union-attr]
    assert host.seen("report", name) == []

    first = host.post_report(name, raw, signed())
    replayed = host.post_report(name, raw, signed())
    assert first[0] == 201 and first[1]["status"] == "accepted"
    assert replayed[0] == 200 and replayed[1]["status"] == "duplicate"
    assert len(host.seen("report", name)) == 1
    recorded = Envelope.from_metadata(_metadata(livekit_server, name))
    assert recorded is not None and [s["step"] for s in recorded.reports["steps"]] == ["welcome"]

    assert host.app.test_client().delete(f"/livekit/rooms/{name}").status_code == 204
    late = json.dumps({**report, "id": "r-2"}).encode()
    assert host.post_report(name, late, signed(data=late))[0] == 409


def test_twenty_concurrent_reports_to_one_room_lose_none(
    livekit_server: LiveKitDevServer, host: Host, ada: str, rooms: list[str]
) -> None:
    body = start_session(host)
    name = body["room_name"]
    rooms.append(name)
    session = Envelope.from_metadata(_metadata(livekit_server, name))
    assert session is not None

    def send(index: int) -> int:
        report = {
            "id": f"c-{index}",
            "session_id": session.session_id,
            "kind": "progress",
            "step": f"step-{index}",
            "state": "done",
        }
        raw = json.dumps(report).encode()
        authorization = sign_report(
            livekit_server.api_key,
            livekit_server.api_secret,
            room=name,
            session=session.session_id,
            body=raw,
        )
        return host.post_report(name, raw, authorization)[0]

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(send, range(20)))

    assert statuses == [201] * 20
    recorded = Envelope.from_metadata(_metadata(livekit_server, name))
    assert recorded is not None
    assert sorted(s["step"] for s in recorded.reports["steps"]) == sorted(
        f"step-{i}" for i in range(20)
    )
    assert len(host.seen("report", name)) == 20


def _metadata(server: LiveKitDevServer, name: str) -> str:
    async def read() -> str:
        async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
            response = await lk.room.list_rooms(api.ListRoomsRequest(names=[name]))
        return response.rooms[0].metadata if response.rooms else ""

    return asyncio.run(read())


async def _plain_room(server: LiveKitDevServer, name: str, rooms: list[str]) -> None:
    async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=name))
    rooms.append(name)


def test_the_helper_retries_a_report_whose_required_receiver_failed_and_it_lands_once(
    livekit_server: LiveKitDevServer, host: Host, ada: str, rooms: list[str]
) -> None:
    body = start_session(host)
    name = body["room_name"]
    rooms.append(name)
    session = Envelope.from_metadata(_metadata(livekit_server, name))
    assert session is not None
    calls: list[str] = []

    @signals.required
    def flaky(sender: Flask, *, report_id: str, **extra: Any) -> None:
        calls.append(report_id)
        if len(calls) == 1:
            raise RuntimeError("the host's database is down")

    async def report() -> bool:
        reporter = Reporter(
            host.url,
            name,
            session.session_id,
            api_key=livekit_server.api_key,
            api_secret=livekit_server.api_secret,
            backoff=0.05,
        )
        delivered = await reporter.report_progress("welcome", "done")
        await reporter.aclose()
        return delivered

    with signals.report_received.connected_to(flaky, host.app):
        assert asyncio.run(report()) is True

    assert len(calls) == 2 and calls[0] == calls[1]
    recorded = Envelope.from_metadata(_metadata(livekit_server, name))
    assert recorded is not None
    assert recorded.reports["steps"] == [
        {"step": "welcome", "state": "done", "at": recorded.reports["steps"][0]["at"]}
    ]
    assert recorded.reports["ids"] == [calls[0]]
