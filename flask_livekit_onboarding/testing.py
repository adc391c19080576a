"""Helpers for testing a host app that uses flask-livekit-onboarding.

- :class:`FakeLiveKit`: an in-memory LiveKit room service, plugged in with
  ``onboarding.init_app(app, livekit=FakeLiveKit())``, so unit tests need no server.
- :func:`sign_webhook`: the ``Authorization`` header LiveKit would send with a webhook body.
- :func:`check_invite_store`: checks a host's own invite store against the contract.
- A real LiveKit server for integration tests: :class:`LiveKitDevServer` and
  :func:`ensure_livekit_server`, re-exported from :mod:`flask_livekit_onboarding.devserver`
  and loaded only when first used, so unit tests that import :class:`FakeLiveKit` do not.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask
from livekit import api

from .dedupe import WebhookDedupe
from .envelope import Envelope, RoomBinding
from .invite_store import Invite, InviteStore
from .livekit_bridge import server_error
from .state import get_state

if TYPE_CHECKING:
    from .devserver import (
        LIVEKIT_SERVER_VERSION,
        LiveKitDevServer,
        LiveKitServerError,
        ensure_livekit_server,
        free_port,
    )

_DEVSERVER_EXPORTS = frozenset(
    {
        "LIVEKIT_SERVER_VERSION",
        "LiveKitDevServer",
        "LiveKitServerError",
        "ensure_livekit_server",
        "free_port",
    }
)

__all__ = [
    "LIVEKIT_SERVER_VERSION",
    "FakeAgentDispatchService",
    "FakeLiveKit",
    "FakeRoomService",
    "check_dedupe_store",
    "check_invite_store",
    "LiveKitDevServer",
    "LiveKitServerError",
    "ensure_livekit_server",
    "free_port",
    "sign_webhook",
    "webhook_body",
]

T = TypeVar("T")


def _not_found(what: str) -> api.TwirpError:
    return api.TwirpError(api.TwirpErrorCode.NOT_FOUND, f"{what} not found", status=404)


class FakeRoomService:
    """Rooms and participants in memory, answering like livekit-server's RoomService."""

    def __init__(self) -> None:
        self.rooms: dict[str, api.Room] = {}
        self.participants: dict[str, list[api.ParticipantInfo]] = {}
        #: The agent dispatches each room was created with, until cancelled or closed.
        self.dispatches: dict[str, list[api.AgentDispatch]] = {}
        #: Every request received, in order.
        self.requests: list[Any] = []
        #: Drop a room right after it was looked up, as if it closed in between.
        self.vanish_after_lookup = False

    async def create_room(self, request: api.CreateRoomRequest) -> api.Room:
        self.requests.append(request)
        room = self.rooms.get(request.name)
        if room is None:
            room = api.Room(
                name=request.name,
                sid=f"RM_{len(self.rooms)}_{request.name[-6:]}",
                metadata=request.metadata,
                empty_timeout=request.empty_timeout,
                departure_timeout=request.departure_timeout,
                max_participants=request.max_participants,
                creation_time=int(time.time()),
            )
            self.rooms[request.name] = room
            self.dispatches[request.name] = [
                api.AgentDispatch(
                    id=f"AD_{request.name[-6:]}_{index}",
                    agent_name=agent.agent_name,
                    room=request.name,
                    metadata=agent.metadata,
                )
                for index, agent in enumerate(request.agents)
            ]
        return room

    async def list_rooms(self, request: api.ListRoomsRequest) -> api.ListRoomsResponse:
        self.requests.append(request)
        names = set(request.names)
        rooms = [r for r in self.rooms.values() if not names or r.name in names]
        if self.vanish_after_lookup:
            for room in rooms:
                self.rooms.pop(room.name, None)
        return api.ListRoomsResponse(rooms=rooms)

    async def list_participants(
        self, request: api.ListParticipantsRequest
    ) -> api.ListParticipantsResponse:
        self.requests.append(request)
        if request.room not in self.rooms:
            raise _not_found("room")
        return api.ListParticipantsResponse(participants=self.participants.get(request.room, []))

    async def update_room_metadata(self, request: api.UpdateRoomMetadataRequest) -> api.Room:
        self.requests.append(request)
        if request.room not in self.rooms:
            raise _not_found("room")
        self.rooms[request.room].metadata = request.metadata
        return self.rooms[request.room]

    async def delete_room(self, request: api.DeleteRoomRequest) -> api.DeleteRoomResponse:
        self.requests.append(request)
        if request.room not in self.rooms:
            raise _not_found("room")
        del self.rooms[request.room]
        self.participants.pop(request.room, None)
        self.dispatches.pop(request.room, None)
        return api.DeleteRoomResponse()


class FakeAgentDispatchService:
    """The agent dispatches of the fake rooms, answering like LiveKit's AgentDispatchService."""

    def __init__(self, rooms: FakeRoomService) -> None:
        self._rooms = rooms
        #: Dispatch ids cancelled, in order.
        self.deleted: list[str] = []

    async def list_dispatch(self, room_name: str) -> list[api.AgentDispatch]:
        if room_name not in self._rooms.rooms:
            raise _not_found("room")
        return list(self._rooms.dispatches.get(room_name, []))

    async def delete_dispatch(self, dispatch_id: str, room_name: str) -> api.AgentDispatch:
        dispatches = self._rooms.dispatches.get(room_name, [])
        for dispatch in dispatches:
            if dispatch.id == dispatch_id:
                dispatches.remove(dispatch)
                self.deleted.append(dispatch_id)
                return dispatch
        raise _not_found("dispatch")


class FakeLiveKit:
    """An in-memory stand-in for the app's LiveKit client, for unit tests of a host app.

    ``fail_with`` makes every call raise that exception instead (e.g.
    :class:`~flask_livekit_onboarding.LiveKitUnavailable`), as the real client does when
    LiveKit is unreachable or slow; LiveKit's own error answers are translated as the real
    client translates them.
    """

    def __init__(self, binding: RoomBinding | None = None) -> None:
        self.room = FakeRoomService()
        self.agent_dispatch = FakeAgentDispatchService(self.room)
        #: Signs the rooms :meth:`add_room` puts in place (the app's ``config.binding``).
        self.binding = binding
        self.fail_with: Exception | None = None
        #: How many calls were made, and the timeout each asked for.
        self.calls = 0
        self.timeouts: list[float | None] = []

    def __repr__(self) -> str:
        return f"<FakeLiveKit rooms={len(self.room.rooms)}>"

    def call(self, fn: Callable[[Any], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Run ``fn`` against the in-memory services, as the real client runs it on LiveKit."""
        self.calls += 1
        self.timeouts.append(timeout)
        try:
            if self.fail_with is not None:
                raise self.fail_with
            return asyncio.run(_awaited(fn(self)))
        except api.TwirpError as error:
            raise server_error(error) from None

    def close(self) -> None:
        """Nothing to release."""

    def add_room(
        self,
        name: str,
        *,
        owner: str | None = "user-1",
        context: Mapping[str, Any] | None = None,
        created_at: int | None = None,
        metadata: str | None = None,
        participants: Iterable[tuple[str, str, Any]] = (),
        app: Flask | None = None,
    ) -> api.Room:
        """Put a live room in place: an onboarding room of ``app`` (signed as that app signs
        its rooms) unless ``owner`` is None or ``metadata`` is given. ``participants`` are
        ``(identity, name, kind)`` triples, ``kind`` a ``livekit.api.ParticipantInfo.Kind``.
        """
        created = int(time.time()) if created_at is None else created_at
        if app is not None:
            self.binding = get_state(app).config.binding
        if metadata is None and owner is not None:
            if self.binding is None:
                raise RuntimeError("FakeLiveKit.add_room(..., app=app) signs rooms as app does")
            envelope = Envelope.new(owner, context or {}, created)
            metadata = self.binding.sign(name, envelope).to_metadata()
        metadata = metadata or ""
        people = [
            api.ParticipantInfo(identity=identity, name=pname, kind=kind, joined_at=created + 1)
            for identity, pname, kind in participants
        ]
        room = api.Room(
            name=name,
            sid=f"RM_{name}",
            metadata=metadata,
            creation_time=created,
            num_participants=len(people),
        )
        self.room.rooms[name] = room
        self.room.participants[name] = people
        return room


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def webhook_body(event: str, *, room: api.Room | None = None, **fields: Any) -> bytes:
    """A webhook body as LiveKit sends it: a JSON ``WebhookEvent`` with a fresh id and time."""
    document: dict[str, Any] = {
        "event": event,
        "id": fields.pop("id", f"EV_{time.time_ns()}"),
        "createdAt": str(fields.pop("created_at", int(time.time()))),
    }
    if room is not None:
        from google.protobuf.json_format import MessageToDict

        document["room"] = MessageToDict(room)
    document.update(fields)
    return json.dumps(document).encode()


def sign_webhook(body: bytes, api_key: str, api_secret: str) -> str:
    """The ``Authorization`` header value LiveKit sends with ``body``, signed with the key pair."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(api_key, api_secret).with_sha256(digest)
    return token.with_ttl(datetime.timedelta(minutes=5)).to_jwt()


def __getattr__(name: str) -> Any:
    if name not in _DEVSERVER_EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import devserver

    return getattr(devserver, name)


def check_invite_store(store: InviteStore) -> None:
    """Check that ``store`` keeps the contract of :class:`InviteStore`; raise if it does not.

    For a host's own store: call it on a fresh, empty instance in a test. It adds, redeems
    and revokes invites of a made-up session, under ids no real invite has.
    """
    now = time.time()
    session = f"conformance-{secrets.token_hex(6)}"

    def make(suffix: str, **fields: Any) -> Invite:
        base: dict[str, Any] = {
            "id": f"{session[-8:]}{suffix}"[:12].ljust(12, "x"),
            "room_name": "onboarding-conformance",
            "session_id": session,
            "role": "participant",
            "max_uses": 1,
            "expires_at": int(now) + 60,
            "created_at": int(now),
            "created_by": "owner",
            "inviter_name": "Owner",
            "code_hash": "hash",
        }
        return Invite(**{**base, **fields})

    one, two, old = make("a1"), make("b2", max_uses=2), make("c3", expires_at=int(now) - 1)
    assert store.add(one, 2, now), "add must keep an invite under the limit"
    assert store.add(two, 2, now), "add must keep a second invite under the limit"
    assert not store.add(make("d4"), 2, now), "add must refuse past the limit of live invites"
    assert store.get(one.id) == one, "get must return the invite as added"
    assert store.get("nosuchinvite") is None, "get must return None for an unknown id"
    assert store.redeem("nosuchinvite", "x", now)[0] == "unknown"
    assert store.redeem(one.id, "ann", now)[0] == "ok", "the first use must be taken"
    verdict, redeemed = store.redeem(one.id, "ann", now)
    assert verdict == "again" and redeemed is not None and redeemed.uses == 1
    assert store.redeem(one.id, "bob", now)[0] == "used_up", "a used-up invite must be refused"
    assert [i.id for i in store.for_session(session, now)] == [two.id], "only live invites list"
    assert store.add(make("e5"), 2, now), "a used-up invite must not count as live"
    revoked = store.revoke(two.id)
    assert revoked is not None and revoked.revoked, "revoke must return the revoked invite"
    assert store.redeem(two.id, "ann", now)[0] == "revoked", "a revoked invite must be refused"
    assert store.revoke("nosuchinvite") is None
    assert store.add(old, 5, now)
    assert store.redeem(old.id, "ann", now)[0] == "expired", "an expired invite must be refused"


def check_dedupe_store(store: WebhookDedupe) -> None:
    """Check that ``store`` keeps the contract of :class:`WebhookDedupe`; raise if it does not.

    For a host's own store: call it on a fresh instance in a test (it uses made-up event ids).
    It checks what at-least-once delivery relies on: a claimed id is busy for others, a
    released claim can be taken again (LiveKit's retry), a completed id stays done, and a
    stale release does not drop a claim another delivery took since.
    """
    run = f"conformance-{secrets.token_hex(6)}"

    def expect(condition: bool, what: str) -> None:
        if not condition:
            raise AssertionError(f"{type(store).__name__}: {what}")

    first = store.claim(f"{run}-a", 60, 30)
    expect(first.state == "new", "claim must take an id never seen")
    busy = store.claim(f"{run}-a", 60, 30)
    expect(busy.state == "busy", "claim must answer busy while another claim holds the id")
    expect(busy.retry_after >= 1, "a busy claim must say when to retry")
    store.release(f"{run}-a", first)
    retry = store.claim(f"{run}-a", 60, 30)
    expect(retry.state == "new", "after release, the id must be taken again (LiveKit's retry)")
    store.release(f"{run}-a", first)  # the first delivery's claim, long gone
    expect(
        store.claim(f"{run}-a", 60, 30).state == "busy",
        "release of an old claim must not drop the claim another delivery took since",
    )
    store.complete(f"{run}-a", 60, retry)
    expect(store.claim(f"{run}-a", 60, 30).state == "done", "a completed id must stay done")
    expect(store.first_time(f"{run}-b", 60), "first_time must be True for a new id")
    expect(not store.first_time(f"{run}-b", 60), "first_time must be False for a repeat")
    forgotten = store.claim(f"{run}-c", 60, 30)
    store.complete(f"{run}-c", 60, forgotten)
    store.release(f"{run}-c")
    expect(store.claim(f"{run}-c", 60, 30).state == "new", "release without a claim forgets")
