"""One summary per session across app hosts: two LiveKit nodes, two app hosts sharing Redis.

Both nodes post every webhook to both hosts; a session ended through one host (``DELETE``)
or closed by LiveKit itself must reach the host's ``session_summarized`` receivers once in
all, with who took part and the reported outcome.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from livekit import api, rtc
from werkzeug.serving import make_server

from flask_livekit_onboarding import Identity, LiveKitOnboarding, signals
from flask_livekit_onboarding.devserver import LiveKitCluster
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.report_auth import sign_report
from flask_livekit_onboarding.state import get_state

pytestmark = pytest.mark.integration

HOSTS = ("a", "b")


class Hosts:
    """The app hosts, their URLs, and every summary any of them sent."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.apps: dict[str, Flask] = {}
        self.summaries: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def call(self, host: str, method: str, path: str, user: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        outgoing = urllib.request.Request(
            self.urls[host] + path,
            data=body,
            headers={"X-User": user, "Content-Type": "application/json", **(headers or {})},
            method=method,
        )
        try:
            with urllib.request.urlopen(outgoing, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                return error.code, json.loads(raw) if raw else None

    def summaries_of(self, room_name: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(h, s) for h, s in self.summaries if s.room_name == room_name]


@pytest.fixture(scope="module")
def hosts(
    livekit_cluster: LiveKitCluster, redis_server: str, cluster_webhook_ports: dict[str, int]
) -> Iterator[Hosts]:
    extension = LiveKitOnboarding()

    @extension.identity_loader
    def load_identity() -> Identity | None:
        user = request.headers.get("X-User")
        return Identity(identity=user, name=user.title()) if user else None

    @extension.context_provider
    def onboarding_context(identity: Identity) -> dict[str, Any]:
        return {"step": "welcome"}

    shared_redis = redis_server.rsplit("/", 1)[0] + "/1"
    built = Hosts()
    running: list[tuple[Flask, Any, threading.Thread, Any]] = []
    try:
        for index, name in enumerate(HOSTS):
            app = Flask(f"summary_host_{name}")
            app.config.update(
                LIVEKIT_URL=livekit_cluster.urls[index],
                LIVEKIT_API_KEY=livekit_cluster.api_key,
                LIVEKIT_API_SECRET=livekit_cluster.api_secret,
                LIVEKIT_ONBOARDING_REDIS_URL=shared_redis,
                LIVEKIT_ONBOARDING_SESSION_POLICY="new",
            )
            extension.init_app(app)
            built.apps[name] = app

            def record(sender: Flask, _host: str = name, **kwargs: Any) -> None:
                with built.lock:
                    built.summaries.append((_host, kwargs["summary"]))

            signals.session_summarized.connect(record, app, weak=False)
            server = make_server("127.0.0.1", cluster_webhook_ports[name], app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            running.append((app, server, thread, record))
            built.urls[name] = f"http://127.0.0.1:{cluster_webhook_ports[name]}/livekit"
        yield built
    finally:
        for app, server, thread, record in running:
            server.shutdown()
            server.server_close()
            thread.join(5)
            signals.session_summarized.disconnect(record, app)
            app.extensions["livekit_onboarding"].close()


async def wait_until(check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)
    return found


def report_outcome(
    hosts: Hosts, cluster: LiveKitCluster, host: str, room: str, session: str
) -> None:
    body = json.dumps(
        {"id": "o-1", "session_id": session, "kind": "outcome", "outcome": "handed_off"}
    ).encode()
    authorization = sign_report(
        cluster.api_key, cluster.api_secret, room=room, session=session, body=body
    )
    status, answer = hosts.call(
        host, "POST", f"/rooms/{room}/reports", "agent", body, {"Authorization": authorization}
    )
    assert status == 201, answer


@pytest.mark.parametrize("ended_by", ["ended", "room_finished"])
def test_each_session_is_summarized_once_across_hosts_sharing_redis(
    hosts: Hosts, livekit_cluster: LiveKitCluster, ended_by: str
) -> None:
    user = f"ada-{ended_by}"
    status, session = hosts.call("a", "POST", "/token", user, b"{}")
    assert status == 201, session
    name = session["room_name"]

    async def scenario() -> None:
        room = rtc.Room()
        await room.connect(session["server_url"], session["participant_token"])
        envelope = Envelope.from_metadata(room.metadata)
        assert envelope is not None
        # The outcome comes in through the other host.
        report_outcome(hosts, livekit_cluster, "b", name, envelope.session_id)
        # The shared ledger learns who took part from the participant_joined webhook.
        ledger = get_state(hosts.apps["a"]).ledger
        await wait_until(lambda: ledger.participants(envelope.session_id), "participant noted")
        if ended_by == "ended":
            assert hosts.call("b", "DELETE", f"/rooms/{name}", user)[0] == 204
        else:
            await room.disconnect()
            async with api.LiveKitAPI(
                livekit_cluster.urls[0], livekit_cluster.api_key, livekit_cluster.api_secret
            ) as lk:
                await lk.room.delete_room(api.DeleteRoomRequest(room=name))
        await wait_until(lambda: hosts.summaries_of(name), "a summary")
        # room_finished reaches both hosts from LiveKit; give it time to be (not) summarized.
        await asyncio.sleep(4)
        await room.disconnect()

    asyncio.run(scenario())
    summaries = hosts.summaries_of(name)
    assert len(summaries) == 1, summaries
    summary = summaries[0][1]
    assert summary.ended_by == ended_by
    assert summary.outcome == "handed_off"
    assert summary.owner == user and summary.users == [user]
    assert summary.to_dict()["duration"] >= 0
