"""The test harness itself: LiveKitDevServer runs a server that real clients can use."""

from __future__ import annotations

import asyncio
import http.server
import queue
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from livekit import api, rtc
from livekit.protocol.webhook import WebhookEvent

from flask_livekit_onboarding.devserver import (
    LiveKitCluster,
    LiveKitDevServer,
    LiveKitServerError,
    free_port,
)

pytestmark = pytest.mark.integration


def _token(server: LiveKitDevServer, room: str, identity: str, *, secret: str = "") -> str:
    return (
        api.AccessToken(server.api_key, secret or server.api_secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )


async def _join(url: str, token: str) -> str:
    room = rtc.Room()
    try:
        await room.connect(url, token)
        return room.name
    finally:
        await room.disconnect()


def test_health_check_answers(livekit_server: LiveKitDevServer) -> None:
    with urllib.request.urlopen(livekit_server.http_url + "/", timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"OK"


def test_sdk_client_joins_with_the_server_credentials(livekit_server: LiveKitDevServer) -> None:
    token = _token(livekit_server, "harness-join", "alice")

    assert asyncio.run(_join(livekit_server.url, token)) == "harness-join"


def test_token_signed_with_another_secret_is_refused(livekit_server: LiveKitDevServer) -> None:
    token = _token(livekit_server, "harness-refused", "mallory", secret="x" * 48)

    with pytest.raises(rtc.ConnectError):
        asyncio.run(_join(livekit_server.url, token))


def test_restart_keeps_the_url_and_accepts_clients(livekit_server: LiveKitDevServer) -> None:
    with LiveKitDevServer(livekit_server.binary) as server:
        url = server.url
        server.stop()
        assert not server.running
        assert not server.healthy()

        server.start()

        assert server.url == url
        assert server.healthy()
        token = _token(server, "harness-restart", "bob")
        assert asyncio.run(_join(server.url, token)) == "harness-restart"


def test_killed_server_restarts_on_its_url(livekit_server: LiveKitDevServer) -> None:
    with LiveKitDevServer(livekit_server.binary) as server:
        server.kill()
        assert not server.running
        assert server.node_id is None
        assert not server.healthy()

        server.start()

        assert server.healthy()
        assert server.node_id is not None and server.node_id.startswith("ND_")
        token = _token(server, "harness-killed", "dave")
        assert asyncio.run(_join(server.url, token)) == "harness-killed"


def test_redis_url_becomes_the_node_redis_config(livekit_server: LiveKitDevServer) -> None:
    node = LiveKitDevServer(
        livekit_server.binary, redis_url="rediss://lk:p%40ss@redis.internal:6380/2"
    )

    assert node.config()["redis"] == {
        "address": "redis.internal:6380",
        "db": 2,
        "username": "lk",
        "password": "p@ss",
        "use_tls": True,
    }
    assert "redis" not in LiveKitDevServer(livekit_server.binary).config()
    with pytest.raises(LiveKitServerError) as refused:
        LiveKitDevServer(livekit_server.binary, redis_url="http://:hunter2@redis.internal/0")
    assert "hunter2" not in str(refused.value)


def test_cluster_nodes_share_one_key_and_route_to_each_other(
    livekit_cluster: LiveKitCluster,
) -> None:
    first, second = livekit_cluster.nodes
    assert livekit_cluster.running
    assert first.url != second.url
    assert first.node_id != second.node_id
    assert (first.api_key, first.api_secret) == (second.api_key, second.api_secret)

    async def meet() -> tuple[set[str], set[str]]:
        rooms = [rtc.Room(), rtc.Room()]
        try:
            for room, node, identity in zip(rooms, (first, second), ("erin", "frank"), strict=True):
                await room.connect(node.url, _token(node, "harness-cluster", identity))
            deadline = asyncio.get_running_loop().time() + 10
            while not all(room.remote_participants for room in rooms):
                assert asyncio.get_running_loop().time() < deadline, "the clients never met"
                await asyncio.sleep(0.05)
            return set(rooms[0].remote_participants), set(rooms[1].remote_participants)
        finally:
            for room in rooms:
                await room.disconnect()

    assert asyncio.run(meet()) == ({"frank"}, {"erin"})


@pytest.fixture
def webhook_inbox() -> Iterator[tuple[str, queue.Queue[tuple[str, str]]]]:
    """A loopback HTTP endpoint collecting (body, Authorization) of each POST."""
    inbox: queue.Queue[tuple[str, str]] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            inbox.put((body.decode(), self.headers.get("Authorization", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", inbox
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


async def _join_until_webhook(
    server: LiveKitDevServer, room_name: str, inbox: queue.Queue[tuple[str, str]], event: str
) -> list[WebhookEvent]:
    """Stay in *room_name* until the server has posted *event*; return the events seen."""
    receiver = api.WebhookReceiver(api.TokenVerifier(server.api_key, server.api_secret))
    events: list[WebhookEvent] = []
    room = rtc.Room()
    try:
        await room.connect(server.url, _token(server, room_name, "carol"))
        while event not in [seen.event for seen in events]:
            try:
                body, auth = await asyncio.to_thread(inbox.get, timeout=10)
            except queue.Empty:
                pytest.fail(f"no {event} webhook; server log:\n{server.log_tail()}")
            events.append(receiver.receive(body, auth))
    finally:
        await room.disconnect()
    return events


def test_webhooks_are_signed_with_the_server_key(
    livekit_server: LiveKitDevServer,
    webhook_inbox: tuple[str, queue.Queue[tuple[str, str]]],
) -> None:
    url, inbox = webhook_inbox
    with LiveKitDevServer(livekit_server.binary, webhook_urls=[url]) as server:
        events = asyncio.run(
            _join_until_webhook(server, "harness-webhook", inbox, "participant_joined")
        )

    assert {event.room.name for event in events} == {"harness-webhook"}
