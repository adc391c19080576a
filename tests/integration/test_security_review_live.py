"""What an ended session, a worker and a deployment guarantee, against a real livekit-server.

Each test reproduces one way a user, a kept token or a neighbouring deployment could get
more than the host meant, and checks it is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any

import jwt
import pytest
from flask import Flask
from livekit import api, rtc

from flask_livekit_onboarding import Identity
from flask_livekit_onboarding.devserver import LiveKitDevServer
from flask_livekit_onboarding.envelope import Envelope

pytestmark = pytest.mark.integration

AGENT = "onboarding-assistant"
_users = itertools.count()


@pytest.fixture
def user(users: Any) -> Identity:
    """A user of their own per test (with ``resume`` their room name derives from it)."""
    users.current = Identity(f"review-user-{next(_users)}", "Ada")
    users.staff.add("staff-1")
    return users.current


def token(app: Flask, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = app.test_client().post("/livekit/token", json=body or {})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def as_staff(users: Any, app: Flask, method: str, path: str, **kwargs: Any) -> Any:
    """A request by staff (the host's ``room_authorizer`` lets ``staff-1`` in)."""
    signed_in, users.current = users.current, Identity("staff-1", "Staff")
    try:
        return getattr(app.test_client(), method)(path, **kwargs)
    finally:
        users.current = signed_in


def refreshed(participant_token: str, server: LiveKitDevServer) -> str:
    """The refresh token LiveKit pushes to a connected participant: the same claims (grants,
    room configuration) signed again for ten minutes, as livekit-server's refreshToken does."""
    claims = jwt.decode(participant_token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(nbf=now, exp=now + 600)
    return jwt.encode(claims, server.api_secret, algorithm="HS256")


async def join(url: str, participant_token: str, stay: float = 0.3) -> str:
    """Join with ``participant_token`` (signalling only) and return the room's metadata."""
    room = rtc.Room()
    await room.connect(url, participant_token, rtc.RoomOptions(auto_subscribe=False))
    try:
        await asyncio.sleep(stay)
        return room.metadata
    finally:
        await room.disconnect()


def livekit_call(server: LiveKitDevServer, call: Any) -> Any:
    async def run() -> Any:
        lk = api.LiveKitAPI(server.http_url, server.api_key, server.api_secret)
        try:
            return await call(lk)
        finally:
            await lk.aclose()

    return asyncio.run(run())


def dispatches(server: LiveKitDevServer, room_name: str) -> list[api.AgentDispatch]:
    """The named agents dispatched into ``room_name`` (LiveKit's automatic one left out)."""
    jobs = livekit_call(server, lambda lk: lk.agent_dispatch.list_dispatch(room_name))
    return [job for job in jobs if job.agent_name]


def live_room(server: LiveKitDevServer, room_name: str) -> api.Room | None:
    request = api.ListRoomsRequest(names=[room_name])
    rooms = livekit_call(server, lambda lk: lk.room.list_rooms(request)).rooms
    return next((room for room in rooms if room.name == room_name), None)


def onboarding_record(metadata: str) -> Any:
    return json.loads(metadata or "{}").get("onboarding")


# Finding 2 (eager): a kept join token, or the refresh LiveKit pushed, re-created the ended
# room with its envelope (old context) and a new agent dispatch.
@pytest.mark.parametrize("policy", ["resume", "new"])
def test_eager_a_kept_or_refreshed_token_never_brings_an_ended_session_back(
    make_app: Any, users: Any, user: Identity, livekit_server: LiveKitDevServer, policy: str
) -> None:
    app = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY=policy, LIVEKIT_ONBOARDING_AGENT_NAME=AGENT)
    body = token(app)
    name = body["room_name"]
    assert onboarding_record(asyncio.run(join(body["server_url"], body["participant_token"])))
    kept = [body["participant_token"], refreshed(body["participant_token"], livekit_server)]

    users.current = None  # the host bans the user: the token endpoint refuses them
    assert app.test_client().post("/livekit/token", json={}).status_code == 401
    assert as_staff(users, app, "delete", f"/livekit/rooms/{name}").status_code == 204

    for participant_token in kept:
        metadata = asyncio.run(join(body["server_url"], participant_token))
        assert onboarding_record(metadata) is None  # an empty room: no context, no session
        assert dispatches(livekit_server, name) == []  # and no agent
        assert as_staff(users, app, "get", f"/livekit/rooms/{name}").status_code == 404
        time.sleep(1.5)  # whatever the join left behind has closed

    users.current = user  # the ban is lifted: the user starts afresh, not locked out
    again = token(app)
    assert again["resumed"] is False
    status = as_staff(users, app, "get", f"/livekit/rooms/{again['room_name']}").get_json()
    assert status["owner"] == user.identity
    as_staff(users, app, "delete", f"/livekit/rooms/{again['room_name']}")


# Findings 2 and 3 (on_join): within its join window a kept token re-created the ended
# session; with the `new` policy the marker closed a second after someone left it.
@pytest.mark.parametrize("policy", ["resume", "new"])
def test_on_join_an_ended_session_stays_ended_within_the_join_window(
    make_app: Any, users: Any, user: Identity, livekit_server: LiveKitDevServer, policy: str
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY=policy,
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join",
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT,
    )
    body = token(app)
    name = body["room_name"]
    assert onboarding_record(asyncio.run(join(body["server_url"], body["participant_token"])))
    kept = refreshed(body["participant_token"], livekit_server)
    assert as_staff(users, app, "delete", f"/livekit/rooms/{name}").status_code == 204

    for participant_token in (body["participant_token"], kept, kept):
        metadata = asyncio.run(join(body["server_url"], participant_token))
        assert onboarding_record(metadata) is None
        assert json.loads(metadata)["onboarding_ended"]["session_id"]
        time.sleep(1.5)  # longer than the marker's old departure timeout of one second
    assert as_staff(users, app, "get", f"/livekit/rooms/{name}").status_code == 404
    assert dispatches(livekit_server, name) == []

    # The owner's own next request is not locked out: their new session replaces the marker.
    again = token(app)
    record = onboarding_record(asyncio.run(join(again["server_url"], again["participant_token"])))
    assert record is not None and record["owner"] == user.identity
    if policy == "resume":
        assert again["room_name"] == name and again["resumed"] is False
    as_staff(users, app, "delete", f"/livekit/rooms/{again['room_name']}")


# Finding 2 (on_join, after the window): LiveKit's refresh token copies the room
# configuration for ten minutes at a time; a room it creates after the join deadline is no
# session: the library closes it and an agent's envelope reader refuses the job.
def test_on_join_a_refreshed_token_after_the_join_deadline_opens_no_session(
    make_app: Any, users: Any, user: Identity, livekit_server: LiveKitDevServer
) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_ROOM_CREATION="on_join",
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT,
        LIVEKIT_ONBOARDING_TOKEN_TTL=1,
    )
    body = token(app)
    name = body["room_name"]
    claims = jwt.decode(body["participant_token"], options={"verify_signature": False})
    join_by = onboarding_record(claims["roomConfig"]["metadata"])["join_by"]
    assert join_by <= int(time.time()) + 1 + 65
    assert onboarding_record(asyncio.run(join(body["server_url"], body["participant_token"])))
    kept = refreshed(body["participant_token"], livekit_server)
    assert as_staff(users, app, "delete", f"/livekit/rooms/{name}").status_code == 204

    # Past the deadline the marker is gone, and LiveKit re-creates the room from the token.
    while time.time() < join_by + 2 or live_room(livekit_server, name) is not None:
        time.sleep(1)

    async def rejoin() -> None:
        room = rtc.Room()
        await room.connect(body["server_url"], kept, rtc.RoomOptions(auto_subscribe=False))
        try:
            jobs = await asyncio.to_thread(dispatches, livekit_server, name)
            info = await asyncio.to_thread(live_room, livekit_server, name)
            # What LiveKit created is refused everywhere: the agent's reader and the routes.
            assert info is not None and jobs
            job_envelope = Envelope.from_metadata(jobs[0].metadata)
            assert job_envelope is not None and job_envelope.stale_for(info)
            room_envelope = Envelope.from_metadata(room.metadata)
            assert room_envelope is not None and room_envelope.stale_for(info)
            status = await asyncio.to_thread(as_staff, users, app, "get", f"/livekit/rooms/{name}")
            assert status.status_code == 404
            assert await asyncio.to_thread(live_room, livekit_server, name) is None
        finally:
            await room.disconnect()

    asyncio.run(rejoin())


# Finding 6: the owner's notes, grown toward 64 KiB, made staff's context update, staff's join
# token and the owner's own resume fail with a 422 that blamed something else.
def test_the_owners_notes_never_lock_the_host_out(
    make_app: Any, users: Any, user: Identity, livekit_server: LiveKitDevServer
) -> None:
    app = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="resume")
    name = token(app)["room_name"]
    notes = app.test_client().patch(
        f"/livekit/rooms/{name}/context", json={"client": {"notes": "n" * 9000}}
    )
    assert notes.status_code == 422 and notes.get_json()["error"]["field"] == "client"
    assert "client notes" in notes.get_json()["error"]["message"]
    kept = app.test_client().patch(
        f"/livekit/rooms/{name}/context", json={"client": {"notes": "n" * 8000}}
    )
    assert kept.status_code == 200, kept.get_json()

    big_context = {"catalogue": "c" * 50_000}
    patched = as_staff(
        users, app, "patch", f"/livekit/rooms/{name}/context", json={"context": big_context}
    )
    assert patched.status_code == 200, patched.get_json()
    staff_join = as_staff(users, app, "post", "/livekit/token", json={"room_name": name})
    assert staff_join.status_code == 201, staff_join.get_json()
    resumed = token(app)
    assert resumed["resumed"] is True and resumed["room_name"] == name
    metadata = asyncio.run(join(resumed["server_url"], resumed["participant_token"]))
    assert onboarding_record(metadata)["context"]["catalogue"] == big_context["catalogue"]
    as_staff(users, app, "delete", f"/livekit/rooms/{name}")


# Finding 7: the context lock was taken before authorization, so callers that end in 403 made
# staff's updates fail with 503 context_busy.
def test_a_refused_context_update_never_waits_for_the_rooms_lock(
    make_app: Any, users: Any, user: Identity, redis_server: str
) -> None:
    from flask_livekit_onboarding.state import get_state

    app = make_app(LIVEKIT_ONBOARDING_REDIS_URL=redis_server)
    name = token(app)["room_name"]
    locks = get_state(app).locks
    handle = locks.acquire(name, wait=1, lease=60)  # an update in progress elsewhere
    assert handle is not None
    try:
        refused = app.test_client().patch(
            f"/livekit/rooms/{name}/context", json={"context": {"plan": "free"}}
        )
        # Before: it waited for the lock and answered 503 context_busy.
        assert refused.status_code == 403, refused.get_json()
    finally:
        locks.release(name, handle)
    patched = as_staff(
        users, app, "patch", f"/livekit/rooms/{name}/context", json={"context": {"plan": "pro"}}
    )
    assert patched.status_code == 200
    as_staff(users, app, "delete", f"/livekit/rooms/{name}")


# Finding 9: LiveKit counts identity bytes; a 200-character, 400-byte identity got a 201 and
# a live room with an agent dispatch, and then LiveKit refused the join.
def test_an_identity_over_livekits_byte_limit_is_refused_before_any_room_exists(
    make_app: Any, users: Any, livekit_server: LiveKitDevServer
) -> None:
    from flask_livekit_onboarding.state import get_state

    users.current = Identity("é" * 200, "Ada")  # 200 characters, 400 bytes
    app = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="resume", LIVEKIT_ONBOARDING_AGENT_NAME=AGENT)
    response = app.test_client().post("/livekit/token", json={})

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "participant_identity" and "bytes" in error["message"]
    name = get_state(app).config.binding.room_name_for(users.current.identity)
    assert live_room(livekit_server, name) is None


# Finding 8: room_config.agents[].deployment was passed to LiveKit unchecked.
def test_an_agent_deployment_must_be_allowed(make_app: Any, users: Any, user: Identity) -> None:
    agents = {"agents": [{"agent_name": AGENT, "deployment": "internal-debug"}]}
    app = make_app(LIVEKIT_ONBOARDING_ALLOWED_AGENTS=AGENT)
    refused = app.test_client().post("/livekit/token", json={"room_config": agents})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["field"] == "room_config.agents[0].deployment"

    allowing = make_app(
        LIVEKIT_ONBOARDING_ALLOWED_AGENTS=AGENT,
        LIVEKIT_ONBOARDING_ALLOWED_AGENT_DEPLOYMENTS="internal-debug",
    )
    name = token(allowing, {"room_config": agents})["room_name"]
    as_staff(users, allowing, "delete", f"/livekit/rooms/{name}")


class FanOut:
    """Two deployments behind the one webhook URL of the session's livekit-server: each
    delivery reaches both, and what each answered is recorded."""

    def __init__(self, apps: dict[str, Flask], port: int) -> None:
        from werkzeug.serving import make_server

        self.apps = apps
        self.answers: dict[str, list[tuple[str, str, str]]] = {key: [] for key in apps}
        self._server = make_server("127.0.0.1", port, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _wsgi(self, environ: Any, start_response: Any) -> list[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        body = request.get_data()
        event = json.loads(body)
        for key, app in self.apps.items():
            response = app.test_client().post(
                "/livekit/webhook",
                data=body,
                headers={"Authorization": request.headers.get("Authorization", "")},
                content_type=request.content_type,
            )
            status = (response.get_json() or {}).get("status", str(response.status_code))
            room = event.get("room", {}).get("name", "")
            self.answers[key].append((event["event"], room, status))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    def seen(self, key: str, event: str, rooms: set[str]) -> dict[str, str]:
        return {
            room: status
            for kind, room, status in self.answers[key]
            if kind == event and room in rooms
        }

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


# Findings 4 and 5: two deployments sharing a Redis took each other's events for duplicates
# (no namespace could be set), and the store kept each room's full metadata, the owner's
# notes included, for a day.
def test_deployments_sharing_a_redis_each_get_every_event_and_the_store_keeps_no_notes(
    make_app: Any,
    users: Any,
    user: Identity,
    redis_server: str,
    livekit_webhook_port: int,
) -> None:
    import redis

    apps = {
        key: make_app(LIVEKIT_ONBOARDING_REDIS_URL=redis_server, LIVEKIT_ONBOARDING_NAMESPACE=key)
        for key in ("deployment-a", "deployment-b")
    }
    fanout = FanOut(apps, livekit_webhook_port)
    try:
        app = apps["deployment-a"]
        sessions = [token(app) for _ in range(4)]
        rooms = {session["room_name"] for session in sessions}
        first = sessions[0]
        notes = app.test_client().patch(
            f"/livekit/rooms/{first['room_name']}/context", json={"client": {"notes": "n" * 8000}}
        )
        assert notes.status_code == 200
        asyncio.run(join(first["server_url"], first["participant_token"], stay=1))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            len(fanout.seen(key, "room_started", rooms)) == len(rooms)
            and fanout.seen(key, "participant_joined", rooms)
            for key in apps
        ):
            time.sleep(0.2)
        for key in apps:
            assert fanout.seen(key, "room_started", rooms) == dict.fromkeys(rooms, "accepted")
            assert set(fanout.seen(key, "participant_joined", rooms).values()) == {"accepted"}

        stored = redis.Redis.from_url(redis_server).get(
            f"livekit-onboarding:deployment-a:room:{first['room_name']}"
        )
        assert stored is not None and b"nnnn" not in stored and len(stored) < 1024
        for session in sessions:
            as_staff(users, app, "delete", f"/livekit/rooms/{session['room_name']}")
    finally:
        fanout.close()


# Finding 11: a copied guest cookie was honoured for 31 days with no way to revoke it.
def test_a_copied_guest_cookie_stops_counting_once_revoked_or_expired(
    make_app: Any, livekit_server: LiveKitDevServer
) -> None:
    from flask_livekit_onboarding import LiveKitOnboarding

    extension = LiveKitOnboarding()
    app = make_app(
        extension,
        LIVEKIT_ONBOARDING_ALLOW_ANONYMOUS=True,
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume",
        LIVEKIT_ONBOARDING_GUEST_TTL=3,
    )
    browser = app.test_client()
    name = browser.post("/livekit/token", json={}).get_json()["room_name"]
    copy = app.test_client()
    copy.set_cookie("session", browser.get_cookie("session").value)
    assert copy.get(f"/livekit/rooms/{name}").status_code == 200  # the copy is the guest

    assert browser.delete(f"/livekit/rooms/{name}").status_code == 204  # the session ends
    assert copy.get(f"/livekit/rooms/{name}").status_code == 404
    assert copy.post("/livekit/token", json={}).get_json()["room_name"] != name

    again = browser.post("/livekit/token", json={}).get_json()["room_name"]
    time.sleep(3.5)  # past LIVEKIT_ONBOARDING_GUEST_TTL
    assert browser.post("/livekit/token", json={}).get_json()["room_name"] != again
    livekit_call(livekit_server, lambda lk: lk.room.delete_room(api.DeleteRoomRequest(room=again)))


# Finding 11: methods outside the extension's list got Flask's HTML 405 without no-store.
@pytest.mark.parametrize("method", ["FOO", "PURGE", "LINK"])
@pytest.mark.parametrize(
    "path", ["/livekit/token", "/livekit/rooms/onboarding-x", "/livekit/rooms/onboarding-x/context"]
)
def test_every_method_on_every_route_answers_json_without_caching(
    app: Flask, method: str, path: str
) -> None:
    response = app.test_client().open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert response.headers["Cache-Control"] == "no-store"


# Finding 11: `flask livekit token --identity` accepted control characters.
@pytest.mark.parametrize("option", ["--identity", "--name"])
def test_the_cli_refuses_control_characters_like_the_routes(app: Flask, option: str) -> None:
    args = ["livekit", "token", "--identity", "ada"]
    args += [option, "ada\nINFO forged line"] if option == "--name" else []
    if option == "--identity":
        args[3] = "ada\x1b]0;pwned\x07"
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2
    assert f"Invalid value for {option}: must not contain control characters" in result.output


KEY_A = "a-signing-key-of-deployment-a-0000000000"
KEY_B = "b-signing-key-of-deployment-b-1111111111"


# Finding 10: deployments on one LiveKit key pair with the derived default signing key could
# resume and end each other's users' rooms, with no warning.
def test_deployments_sharing_a_key_pair_are_warned_and_kept_apart_by_their_keys(
    make_app: Any, users: Any, user: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.WARNING, logger="flask_livekit_onboarding"):
        make_app()
    assert any("SIGNING_KEY is not set" in r.getMessage() for r in caplog.records)

    a = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="resume", LIVEKIT_ONBOARDING_SIGNING_KEY=KEY_A)
    b = make_app(LIVEKIT_ONBOARDING_SESSION_POLICY="resume", LIVEKIT_ONBOARDING_SIGNING_KEY=KEY_B)
    name = token(a)["room_name"]
    assert token(b)["room_name"] != name  # B's user does not land in A's room
    assert as_staff(users, b, "get", f"/livekit/rooms/{name}").status_code == 404
    assert as_staff(users, b, "delete", f"/livekit/rooms/{name}").status_code == 404
    assert as_staff(users, a, "get", f"/livekit/rooms/{name}").status_code == 200
    for app in (a, b):
        as_staff(users, app, "delete", f"/livekit/rooms/{token(app)['room_name']}")


# Finding 10: rotating the signing key orphaned every live session (staff 404, a second room
# for the owner while the old one lived on with its agent).
def test_a_signing_key_rotation_keeps_live_sessions_and_signs_them_anew(
    make_app: Any, users: Any, user: Identity
) -> None:
    before = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume", LIVEKIT_ONBOARDING_SIGNING_KEY=KEY_A
    )
    name = token(before)["room_name"]
    rotating = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume",
        LIVEKIT_ONBOARDING_SIGNING_KEY=KEY_B,
        LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS=KEY_A,
        LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS_UNTIL=time.time() + 3600,
    )
    assert as_staff(users, rotating, "get", f"/livekit/rooms/{name}").status_code == 200
    resumed = token(rotating)
    assert resumed["room_name"] == name and resumed["resumed"] is True

    after = make_app(
        LIVEKIT_ONBOARDING_SESSION_POLICY="resume", LIVEKIT_ONBOARDING_SIGNING_KEY=KEY_B
    )
    # Touched during the overlap, the session is signed with the new key alone.
    assert as_staff(users, after, "get", f"/livekit/rooms/{name}").status_code == 200
    assert as_staff(users, after, "delete", f"/livekit/rooms/{name}").status_code == 204
