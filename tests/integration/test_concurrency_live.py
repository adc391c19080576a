"""Concurrent context updates of one room against a real livekit-server: none acknowledged is lost.

Twenty merges of distinct keys race on one room, through a threaded HTTP server in one process,
and through two app processes that share a real redis-server. Every update answered 200 must
be in the stored context afterwards; any other answer must be a 409 or 503 that says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from livekit import api
from werkzeug.serving import make_server

from flask_livekit_onboarding.devserver import LiveKitDevServer
from flask_livekit_onboarding.envelope import Envelope

pytestmark = pytest.mark.integration

UPDATES = 20
ROUNDS = 3


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def stored_context(server: LiveKitDevServer, room_name: str) -> dict[str, Any]:
    """The context in the room's metadata, read straight from LiveKit."""

    async def read() -> str:
        lkapi = api.LiveKitAPI(server.http_url, server.api_key, server.api_secret)
        try:
            response = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room_name]))
        finally:
            await lkapi.aclose()
        (room,) = response.rooms
        return room.metadata

    envelope = Envelope.from_metadata(asyncio.run(read()))
    assert envelope is not None
    return dict(envelope.context)


def race(base_urls: list[str], room_name: str, round_no: int) -> dict[str, int]:
    """Send UPDATES concurrent merges of distinct keys, spread over ``base_urls``."""
    barrier = threading.Barrier(UPDATES)

    def update(index: int) -> tuple[str, int]:
        key = f"r{round_no}k{index:02d}"
        url = f"{base_urls[index % len(base_urls)]}/livekit/rooms/{room_name}/context"
        barrier.wait()
        status, body = http("PATCH", url, {"context": {key: index}})
        assert status in (200, 409, 503), (status, body)
        if status != 200:
            assert body["error"]["code"] in ("context_conflict", "context_busy"), body
        return key, status

    with ThreadPoolExecutor(UPDATES) as pool:
        return dict(pool.map(update, range(UPDATES)))


def check(server: LiveKitDevServer, room_name: str, outcomes: list[dict[str, int]]) -> None:
    context = stored_context(server, room_name)
    sent = sum(len(o) for o in outcomes)
    acknowledged = [key for o in outcomes for key, status in o.items() if status == 200]
    kept = [key for key in acknowledged if key in context]
    print(f"sent={sent} acknowledged={len(acknowledged)} kept={len(kept)}")
    assert sorted(kept) == sorted(acknowledged)
    assert len(acknowledged) == sent  # no contention here lasts past the lock's bound


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], str]]:
    """Serve an app with a threaded werkzeug server on a free loopback port; its base URL."""
    servers: list[Any] = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def start_room(base_url: str) -> str:
    status, body = http("POST", f"{base_url}/livekit/token", {})
    assert status == 201, body
    return str(body["room_name"])


def test_concurrent_merges_in_one_process_are_all_kept(
    make_app: Callable[..., Flask],
    users: Any,
    serve: Callable[[Flask], str],
    livekit_server: LiveKitDevServer,
) -> None:
    users.staff.add("user-1")
    base_url = serve(make_app())
    room_name = start_room(base_url)

    outcomes = [race([base_url], room_name, n) for n in range(ROUNDS)]

    check(livekit_server, room_name, outcomes)
    http("DELETE", f"{base_url}/livekit/rooms/{room_name}")


# One app host: its own process, app, LiveKit client and Redis connection, serving a threaded
# werkzeug server. It prints its port, then serves until its stdin closes.
HOST = """
import sys, threading
from flask import Flask
from werkzeug.serving import make_server
from flask_livekit_onboarding import Identity, LiveKitOnboarding

url, key, secret, redis_url = sys.argv[1:5]
onboarding = LiveKitOnboarding()
onboarding.identity_loader(lambda: Identity(identity="user-1", name="Ada"))
onboarding.room_authorizer(lambda identity, room, action: True)
app = Flask("host")
app.config.update(LIVEKIT_URL=url, LIVEKIT_API_KEY=key, LIVEKIT_API_SECRET=secret,
                  LIVEKIT_ONBOARDING_REDIS_URL=redis_url)
onboarding.init_app(app)
server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
sys.stdin.read()
server.shutdown()
app.extensions["livekit_onboarding"].close()
"""


def test_concurrent_merges_across_two_processes_sharing_redis_are_all_kept(
    livekit_server: LiveKitDevServer, redis_server: str
) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    args = [livekit_server.url, livekit_server.api_key, livekit_server.api_secret, redis_server]
    hosts = [
        subprocess.Popen(
            [sys.executable, "-c", HOST, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        base_urls = []
        for host in hosts:
            assert host.stdout is not None
            base_urls.append(f"http://127.0.0.1:{int(host.stdout.readline())}")
        room_name = start_room(base_urls[0])

        outcomes = [race(base_urls, room_name, n) for n in range(ROUNDS)]

        check(livekit_server, room_name, outcomes)
        http("DELETE", f"{base_urls[1]}/livekit/rooms/{room_name}")
    finally:
        for host in hosts:
            assert host.stdin is not None
            host.stdin.close()
            try:
                host.wait(30)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
            if host.stdout is not None:
                host.stdout.close()
