"""Talking to LiveKit about rooms: create, find, list, update metadata, delete."""

from __future__ import annotations

from typing import TypeVar

from livekit import api

from .envelope import OnboardingRoom
from .errors import RoomNotFound
from .livekit_bridge import LiveKitCall, LiveKitClient

T = TypeVar("T")


def create_room(livekit: LiveKitClient, settings: api.RoomConfiguration) -> api.Room:
    """Create the room on LiveKit now, with its metadata, timeouts and agents.

    LiveKit returns a live room of that name unchanged.
    """
    request = api.CreateRoomRequest(
        name=settings.name,
        metadata=settings.metadata,
        empty_timeout=settings.empty_timeout,
        departure_timeout=settings.departure_timeout,
        max_participants=settings.max_participants,
        agents=settings.agents,
    )
    return livekit.call(lambda lk: lk.room.create_room(request))


def live_room(livekit: LiveKitClient, name: str) -> api.Room | None:
    """The LiveKit room called ``name`` as LiveKit reports it, onboarding room or not."""
    request = api.ListRoomsRequest(names=[name])
    response = _room_call(livekit, name, lambda lk: lk.room.list_rooms(request))
    return next((room for room in response.rooms if room.name == name), None)


def find_room(livekit: LiveKitClient, name: str) -> OnboardingRoom | None:
    """The onboarding room called ``name``, or None if LiveKit has no such onboarding room."""
    room = live_room(livekit, name)
    return None if room is None else OnboardingRoom.from_room(room)


def list_rooms(livekit: LiveKitClient) -> list[OnboardingRoom]:
    """Every live onboarding room on the LiveKit server (other rooms are left out)."""
    response = livekit.call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest()))
    rooms = (OnboardingRoom.from_room(room) for room in response.rooms)
    return sorted((r for r in rooms if r is not None), key=lambda r: r.created_at)


def list_participants(livekit: LiveKitClient, name: str) -> list[api.ParticipantInfo]:
    """Everyone in room ``name`` right now, agents included (404 once the room is gone)."""
    request = api.ListParticipantsRequest(room=name)
    response = _room_call(livekit, name, lambda lk: lk.room.list_participants(request))
    return list(response.participants)


def update_room_metadata(livekit: LiveKitClient, name: str, metadata: str) -> api.Room:
    """Write the metadata of room ``name``; LiveKit pushes it to every connected participant."""
    request = api.UpdateRoomMetadataRequest(room=name, metadata=metadata)
    return _room_call(livekit, name, lambda lk: lk.room.update_room_metadata(request))


def delete_room(livekit: LiveKitClient, name: str) -> None:
    """Close room ``name`` on LiveKit, disconnecting everyone in it (404 if already gone)."""
    request = api.DeleteRoomRequest(room=name)
    _room_call(livekit, name, lambda lk: lk.room.delete_room(request))


def _room_call(livekit: LiveKitClient, name: str, fn: LiveKitCall[T]) -> T:
    """Call LiveKit about one room; its ``not_found`` becomes our 404."""
    try:
        return livekit.call(fn)
    except api.TwirpError:
        raise RoomNotFound(f"No onboarding room named {name!r}.") from None
