"""Scale-out on real servers: two LiveKit nodes sharing Redis, and app hosts on loopback.

Every host is its own Flask app built on one extension and served over HTTP in this process,
as a separate machine would serve it. Host "a" calls LiveKit through node 0 and hands clients
node 1's URL; host "b" does the opposite. Whichever node LiveKit places a room on, each scenario
therefore crosses nodes. Both nodes post every webhook of their rooms to every host: "a" and
"b" share Redis for de-duplication (database 1; LiveKit uses database 0), while "solo-a" and
"solo-b" keep the in-process default. The node-loss test runs last and restarts the node.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from flask import Flask, request
from livekit import rtc
from werkzeug.serving import BaseWSGIServer, make_server

from flask_livekit_onboarding import Identity, LiveKitOnboarding, signals
from flask_livekit_onboarding.devserver import LiveKitCluster, free_port

pytestmark = pytest.mark.integration

#: Upper bound on waiting for something LiveKit pushes (events, webhooks, reconnection).
EVENT_WAIT = 15.0
#: Slack on top of a host's request timeout before an answer counts as late.
MARGIN = 2.0
#: The extension's default bound on LiveKit calls, above LiveKit's own 3 s RPC timeout.
DEFAULT_TIMEOUT = 5.0
#: A bound below LiveKit's RPC timeout: such a host answers 504 before LiveKit answers.
SHORT_TIMEOUT = 1.5
#: Seconds after which LiveKit stops placing rooms on a node that stopped reporting.
NODE_STALE_AFTER = 6.0
SIGNALS = {
    "webhook_received": signals.webhook_received,
    "room_started": signals.room_started,
    "room_finished": signals.room_finished,
    "participant_joined": signals.participant_joined,
    "participant_left": signals.participant_left,
}
#: Staff: the room authorizer lets them join, read, steer and end anybody's onboarding room.
COACH = "coach"


@dataclass
class Host:
    """One app host: its Flask app, its HTTP server and what reached it."""

    name: str
    app: Flask
    url: str = ""
    signals: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any, float]:
        """Send a request as *user*; return the status, the JSON answer and the seconds taken."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-User": user}
        if data is not None:
            headers["Content-Type"] = "application/json"
        outgoing = urllib.request.Request(
            self.url + path, data=data, headers=headers, method=method
        )
        start = time.monotonic()
        try:
            with urllib.request.urlopen(outgoing, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                status = error.code
        return status, json.loads(raw) if raw else None, time.monotonic() - start

    def start_session(self, user: str, room_name: str | None = None) -> dict[str, Any]:
        body = {"room_name": room_name} if room_name else {}
        status, answer, _ = self.call("POST", "/livekit/token", user, body)
        assert status == 201, answer
        return answer  # type: ignore[no-any-return]

    def signals_for(self, room_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.signals if s["room_name"] == room_name]


def record_deliveries(host: Host) -> None:
    """Log each webhook POST (event id, answer) as a load balancer's access log would."""
    inner = host.app.wsgi_app

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/livekit/webhook":
            return inner(environ, start_response)  # type: ignore[no-any-return]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def capture(code: str, headers: list[Any], *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        answer = b"".join(inner(environ, capture))
        event = json.loads(body)
        with host.lock:
            host.deliveries.append(
                {
                    "id": event["id"],
                    "event": event["event"],
                    "room_name": event.get("room", {}).get("name"),
                    "http_status": int(status[0].split()[0]),
                    "status": json.loads(answer).get("status"),
                }
            )
        return [answer]

    host.app.wsgi_app = middleware  # type: ignore[method-assign]


def make_extension() -> LiveKitOnboarding:
    """The host's wiring: login from a header, a small context, a coach who may join anywhere."""
    extension = LiveKitOnboarding()

    @extension.identity_loader
    def load_identity() -> Identity | None:
        user = request.headers.get("X-User")
        return Identity(identity=user, name=user.title()) if user else None

    @extension.context_provider
    def onboarding_context(identity: Identity) -> dict[str, Any]:
        return {"user": identity.identity, "step": "welcome"}

    @extension.room_authorizer
    def coach_may_help(identity: Identity, room: Any, action: str) -> bool:
        return identity.identity == COACH

    return extension


@pytest.fixture(scope="module")
def hosts(
    livekit_cluster: LiveKitCluster, redis_server: str, cluster_webhook_ports: dict[str, int]
) -> Iterator[dict[str, Host]]:
    extension = make_extension()
    first, second = livekit_cluster.urls
    shared_redis = redis_server.rsplit("/", 1)[0] + "/1"
    layout = {
        # name: (LIVEKIT_URL, LIVEKIT_PUBLIC_URL, port, extra config)
        "a": (first, second, cluster_webhook_ports["a"], {"REDIS_URL": shared_redis}),
        "b": (second, first, cluster_webhook_ports["b"], {"REDIS_URL": shared_redis}),
        "solo-a": (first, second, cluster_webhook_ports["solo-a"], {}),
        "solo-b": (second, first, cluster_webhook_ports["solo-b"], {}),
        "short-timeout": (first, second, free_port(), {"REQUEST_TIMEOUT": SHORT_TIMEOUT}),
    }
    built: dict[str, Host] = {}
    servers: list[tuple[BaseWSGIServer, threading.Thread]] = []
    receivers: list[tuple[Any, Callable[..., None], Flask]] = []
    try:
        for name, (url, public_url, port, extra) in layout.items():
            app = Flask(f"cluster_host_{name.replace('-', '_')}")
            app.config.update(
                LIVEKIT_URL=url,
                LIVEKIT_PUBLIC_URL=public_url,
                LIVEKIT_API_KEY=livekit_cluster.api_key,
                LIVEKIT_API_SECRET=livekit_cluster.api_secret,
                **{f"LIVEKIT_ONBOARDING_{key}": value for key, value in extra.items()},
            )
            extension.init_app(app)
            host = built[name] = Host(name, app)
            for signal_name, signal in SIGNALS.items():
                receiver = _recorder(host, signal_name)
                signal.connect(receiver, app, weak=False)
                receivers.append((signal, receiver, app))
            record_deliveries(host)
            server = make_server("127.0.0.1", port, app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            servers.append((server, thread))
            host.url = f"http://127.0.0.1:{port}"
        yield built
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(5)
        for signal, receiver, app in receivers:
            signal.disconnect(receiver, app)
        for host in built.values():
            host.app.extensions["livekit_onboarding"].close()


def _recorder(host: Host, name: str) -> Callable[..., None]:
    def record(sender: Flask, **kwargs: Any) -> None:
        participant = kwargs.get("participant")
        with host.lock:
            host.signals.append(
                {
                    "signal": name,
                    "id": kwargs["event"].id,
                    "room_name": kwargs["room_name"],
                    "context": kwargs["context"],
                    "participant": participant.identity if participant else None,
                }
            )

    return record


async def connect(session: dict[str, Any]) -> rtc.Room:
    room = rtc.Room()
    await room.connect(session["server_url"], session["participant_token"])
    return room


async def wait_until(check: Callable[[], Any], what: str, timeout: float = EVENT_WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await asyncio.to_thread(check)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)
    return result


def test_token_from_one_host_joins_through_either_node(hosts: dict[str, Host]) -> None:
    a, b = hosts["a"], hosts["b"]
    session = a.start_session("ada")
    name = session["room_name"]
    coach_session = b.start_session(COACH, room_name=name)

    # Each host hands out the other node's URL, so the two clients enter through different
    # nodes: at least one of them reaches the room through a node that does not host it.
    assert session["server_url"] != coach_session["server_url"]

    async def scenario() -> None:
        ada = await connect(session)
        coach = await connect(coach_session)
        try:
            await wait_until(lambda: COACH in ada.remote_participants, "ada sees the coach")
            await wait_until(lambda: "ada" in coach.remote_participants, "the coach sees ada")
            for room in (ada, coach):
                assert room.name == name
                envelope = json.loads(room.metadata)["onboarding"]
                assert (envelope["owner"], envelope["context"]) == (
                    "ada",
                    {"user": "ada", "step": "welcome"},
                )
        finally:
            await ada.disconnect()
            await coach.disconnect()

    asyncio.run(scenario())
    assert b.call("DELETE", f"/livekit/rooms/{name}", "ada")[0] == 204


def test_session_routes_on_one_host_act_on_a_room_made_through_the_other(
    hosts: dict[str, Host],
) -> None:
    a, b = hosts["a"], hosts["b"]
    session = b.start_session("grace")
    path = f"/livekit/rooms/{session['room_name']}"

    async def scenario() -> None:
        room = rtc.Room()
        loop = asyncio.get_running_loop()
        metadata: asyncio.Queue[str] = asyncio.Queue()
        disconnected: asyncio.Future[Any] = loop.create_future()
        room.on("room_metadata_changed", lambda old, new: metadata.put_nowait(new))
        room.on(
            "disconnected",
            lambda reason: disconnected.done() or disconnected.set_result(reason),
        )
        await room.connect(session["server_url"], session["participant_token"])
        try:
            status, view, _ = await asyncio.to_thread(a.call, "GET", path, "grace")
            assert status == 200, view
            assert (view["owner"], view["context"]) == (
                "grace",
                {"user": "grace", "step": "welcome"},
            )
            assert [p["identity"] for p in view["participants"]] == ["grace"]

            status, patched, _ = await asyncio.to_thread(
                a.call, "PATCH", f"{path}/context", COACH, {"context": {"step": "profile"}}
            )
            assert status == 200, patched
            pushed = json.loads(await asyncio.wait_for(metadata.get(), EVENT_WAIT))
            assert pushed["onboarding"]["context"] == {"user": "grace", "step": "profile"}
            status, view, _ = await asyncio.to_thread(b.call, "GET", path, "grace")
            assert view["context"] == {"user": "grace", "step": "profile"}

            status, _, _ = await asyncio.to_thread(a.call, "DELETE", path, "grace")
            assert status == 204
            await asyncio.wait_for(disconnected, EVENT_WAIT)
        finally:
            await room.disconnect()

    asyncio.run(scenario())
    for host in (a, b):
        assert_ended(host, path, "grace")


def assert_ended(host: Host, path: str, user: str) -> None:
    """The host reports the session as over: no live room (a 404, or a view saying so)."""
    status, answer, _ = host.call("GET", path, user)
    if status == 200:
        assert answer["exists"] is False, answer
    else:
        assert (status, answer["error"]["code"]) == (404, "room_not_found")


def test_webhooks_to_every_host_fire_each_signal_once_with_shared_redis(
    hosts: dict[str, Host],
) -> None:
    a, b, solo_a, solo_b = hosts["a"], hosts["b"], hosts["solo-a"], hosts["solo-b"]
    session = b.start_session("linus")
    name = session["room_name"]

    async def scenario() -> None:
        room = await connect(session)
        try:
            await wait_until(
                lambda: any(
                    s["signal"] == "participant_joined" for h in (a, b) for s in h.signals_for(name)
                ),
                "participant_joined signal",
            )
        finally:
            await room.disconnect()
        await wait_until(
            lambda: any(
                s["signal"] == "participant_left" for h in (a, b) for s in h.signals_for(name)
            ),
            "participant_left signal",
        )
        status, _, _ = await asyncio.to_thread(a.call, "DELETE", f"/livekit/rooms/{name}", "linus")
        assert status == 204

        def every_event_reached_every_host() -> bool:
            per_host = [
                {d["id"] for d in h.deliveries if d["room_name"] == name}
                for h in (a, b, solo_a, solo_b)
            ]
            finished = {d["id"] for d in a.deliveries if d["event"] == "room_finished"}
            ids = set.union(*per_host)
            return bool(ids & finished) and all(seen == ids for seen in per_host)

        await wait_until(every_event_reached_every_host, "every event delivered to every host")

    asyncio.run(scenario())

    deliveries = [d for h in (a, b) for d in h.deliveries if d["room_name"] == name]
    kinds = {d["id"]: d["event"] for d in deliveries}
    assert sorted(kinds.values()) == [
        "participant_joined",
        "participant_left",
        "room_finished",
        "room_started",
    ]
    # Each event reached both hosts sharing Redis: exactly one accepted it. The other saw a
    # duplicate, or (arriving while the first was still delivering) answered 503 so that
    # LiveKit retries it, and the retry is a duplicate.
    for event_id in kinds:
        answers = [(d["http_status"], d["status"]) for d in deliveries if d["id"] == event_id]
        assert [status for code, status in answers if code == 200].count("accepted") == 1
        assert {code for code, _ in answers} <= {200, 503}, answers
        assert {status for code, status in answers if code == 200} <= {"accepted", "duplicate"}
    fired = a.signals_for(name) + b.signals_for(name)
    assert sorted((s["signal"], s["id"]) for s in fired) == sorted(
        [("webhook_received", event_id) for event_id in kinds]
        + [(kind, event_id) for event_id, kind in kinds.items()]
    )
    assert all(s["context"] == {"user": "linus", "step": "welcome"} for s in fired)
    assert {s["participant"] for s in fired if s["signal"].startswith("participant_")} == {"linus"}

    # Without a shared store, each host keeps its own record: every event fires on both.
    for host in (solo_a, solo_b):
        alone = [s for s in host.signals_for(name) if s["signal"] != "webhook_received"]
        assert sorted(s["id"] for s in alone) == sorted(kinds)


def hosting_node(cluster: LiveKitCluster, redis_url: str, room_name: str) -> int:
    """Index of the node LiveKit placed *room_name* on, from LiveKit's routing table in Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        node_id = client.hget("room_node_map", room_name)
    finally:
        client.close()
    ids = [node.node_id for node in cluster.nodes]
    assert node_id is not None and node_id.decode() in ids, (room_name, node_id, ids)
    return ids.index(node_id.decode())


def test_losing_a_node_answers_503_or_504_in_time_and_recovers(
    hosts: dict[str, Host], livekit_cluster: LiveKitCluster, redis_server: str
) -> None:
    """Node 1 crashes under a live session; the apps keep running and recover unaided."""
    a, b, short = hosts["a"], hosts["b"], hosts["short-timeout"]
    doomed = livekit_cluster.nodes[1]
    # A session LiveKit placed on node 1, created through node 0 (host "a").
    for attempt in range(20):
        user = f"hopper-{attempt}"
        session = a.start_session(user)
        name = session["room_name"]
        if hosting_node(livekit_cluster, redis_server, name) == 1:
            break
        assert a.call("DELETE", f"/livekit/rooms/{name}", user)[0] == 204
    else:
        pytest.fail("LiveKit placed none of 20 rooms on node 1")
    path = f"/livekit/rooms/{name}"
    killed_at: list[float] = []
    old_node_id = doomed.node_id
    # The user is connected through node 0 (host "b" hands out node 0's URL).
    rejoin = b.start_session(user, room_name=name)

    async def scenario() -> None:
        room = rtc.Room()
        metadata: asyncio.Queue[str] = asyncio.Queue()
        room.on("room_metadata_changed", lambda old, new: metadata.put_nowait(new))
        await room.connect(rejoin["server_url"], rejoin["participant_token"])
        try:
            doomed.kill()
            killed_at.append(time.monotonic())

            # At once, before LiveKit notices the loss (it takes about 5 s):
            # - host "b" calls LiveKit through the dead node and is refused at once;
            # - host "a" reaches node 0, which forwards to the dead node until LiveKit's own
            #   3 s RPC timeout: LiveKit's 503 comes within the default 5 s bound;
            # - a host whose bound is below 3 s gives up first with a 504;
            # - reading the room still works: LiveKit answers it from Redis.
            change = {"context": {"step": "during-outage"}}
            answers = await asyncio.gather(
                asyncio.to_thread(b.call, "GET", path, user),
                asyncio.to_thread(a.call, "PATCH", f"{path}/context", COACH, change),
                asyncio.to_thread(short.call, "PATCH", f"{path}/context", COACH, change),
                asyncio.to_thread(a.call, "GET", path, user),
            )
            status, view, took = answers.pop()
            assert (status, view["owner"]) == (200, user)
            assert took < DEFAULT_TIMEOUT + MARGIN
            expected = [
                (503, "livekit_unavailable", DEFAULT_TIMEOUT),
                (503, "livekit_unavailable", DEFAULT_TIMEOUT),
                (504, "livekit_timeout", SHORT_TIMEOUT),
            ]
            for (status, error, took), (code, error_code, bound) in zip(
                answers, expected, strict=True
            ):
                assert (status, error["error"]["code"]) == (code, error_code)
                assert took < bound + MARGIN

            # The client's SDK reconnects through node 0; once node 1 has gone stale LiveKit
            # moves the room to node 0 with its metadata, and the same apps manage it again.
            recovered = {"context": {"step": "recovered"}}

            def patched() -> bool:
                return a.call("PATCH", f"{path}/context", COACH, recovered)[0] == 200

            await wait_until(patched, "PATCH after the room moved", timeout=30)
            while True:
                seen = json.loads(await asyncio.wait_for(metadata.get(), EVENT_WAIT))
                if seen["onboarding"]["context"]["step"] == "recovered":
                    break
            status, view, _ = await asyncio.to_thread(a.call, "GET", path, user)
            assert status == 200, view
            assert [p["identity"] for p in view["participants"]] == [user]
            assert view["owner"] == user
        finally:
            await room.disconnect()

    try:
        asyncio.run(scenario())
        # New sessions land on the surviving node.
        for index in range(3):
            fresh = a.start_session(f"lovelace-{index}")
            assert hosting_node(livekit_cluster, redis_server, fresh["room_name"]) == 0
            assert (
                a.call("DELETE", f"/livekit/rooms/{fresh['room_name']}", f"lovelace-{index}")[0]
                == 204
            )

        # The node comes back on its URL, as a new node; host "b" works again unrestarted.
        doomed.start()
        assert doomed.node_id not in (None, old_node_id)
        status, view, _ = b.call("GET", path, user)
        assert status == 200, view
        assert b.call("DELETE", path, user)[0] == 204
    finally:
        if not doomed.running:
            # Until its entry goes stale, LiveKit may still place rooms on the dead node's
            # old ID; a restart after that drops the entry, so later tests get a sound cluster.
            down_for = time.monotonic() - killed_at[-1] if killed_at else NODE_STALE_AFTER
            time.sleep(max(0.0, NODE_STALE_AFTER - down_for))
            doomed.start()
