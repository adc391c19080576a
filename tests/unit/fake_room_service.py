"""The fake RoomService extended with the calls the session routes and the CLI make."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask import Flask
from livekit import api

from flask_livekit_onboarding.room_metadata import encode_metadata
from flask_livekit_onboarding.state import get_state

from .fakes import FakeBridge, FakeRoomService


def not_found(what: str) -> api.TwirpError:
    return api.TwirpError(api.TwirpErrorCode.NOT_FOUND, f"{what} not found", status=404)


class SessionRoomService(FakeRoomService):
    """Adds participants, metadata updates and deletion, answered like livekit-server does."""

    def __init__(self) -> None:
        super().__init__()
        self.participants: dict[str, list[api.ParticipantInfo]] = {}
        #: Drop a room right after it was looked up, as if it closed in between.
        self.vanish_after_lookup = False

    async def list_rooms(self, request: api.ListRoomsRequest) -> api.ListRoomsResponse:
        response = await super().list_rooms(request)
        if self.vanish_after_lookup:
            for room in response.rooms:
                self.rooms.pop(room.name, None)
        return response

    async def list_participants(
        self, request: api.ListParticipantsRequest
    ) -> api.ListParticipantsResponse:
        self.requests.append(request)
        if request.room not in self.rooms:
            raise not_found("room")
        return api.ListParticipantsResponse(participants=self.participants.get(request.room, []))

    async def update_room_metadata(self, request: api.UpdateRoomMetadataRequest) -> api.Room:
        self.requests.append(request)
        if request.room not in self.rooms:
            raise not_found("room")
        self.rooms[request.room].metadata = request.metadata
        return self.rooms[request.room]

    async def delete_room(self, request: api.DeleteRoomRequest) -> api.DeleteRoomResponse:
        self.requests.append(request)
        if request.room not in self.rooms:
            raise not_found("room")
        del self.rooms[request.room]
        self.participants.pop(request.room, None)
        return api.DeleteRoomResponse()


class SessionBridge(FakeBridge):
    """A :class:`FakeBridge` whose LiveKit knows :class:`SessionRoomService`; records timeouts."""

    def __init__(self) -> None:
        super().__init__()
        self.livekit.room = SessionRoomService()
        self.timeouts: list[float | None] = []

    @property
    def rooms(self) -> SessionRoomService:
        room_service: SessionRoomService = self.livekit.room  # type: ignore[assignment]
        return room_service

    @classmethod
    def install(cls, app: Flask) -> SessionBridge:
        bridge = cls()
        get_state(app).bridge.close()
        get_state(app).bridge = bridge  # type: ignore[assignment]
        return bridge

    def call(self, fn: Any, *, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().call(fn, timeout=timeout)

    def add_room(
        self,
        name: str,
        *,
        owner: str | None = "user-1",
        context: dict[str, Any] | None = None,
        created_at: int | None = None,
        metadata: str | None = None,
        participants: Iterable[tuple[str, str, int]] = (),
    ) -> api.Room:
        """A live room; an onboarding room unless ``owner`` is None or ``metadata`` is given."""
        created = int(time.time()) if created_at is None else created_at
        if metadata is None:
            metadata = "" if owner is None else encode_metadata(owner, context or {}, created)
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
        self.rooms.rooms[name] = room
        self.rooms.participants[name] = people
        return room
