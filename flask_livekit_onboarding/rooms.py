"""Talking to LiveKit about rooms: create, find, list, update metadata, delete."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from livekit import api

from .envelope import OnboardingRoom, RoomBinding
from .errors import RoomNotFound
from .livekit_bridge import LiveKitCall, LiveKitClient

T = TypeVar("T")
logger = logging.getLogger(__name__)


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


def find_room(livekit: LiveKitClient, name: str, binding: RoomBinding) -> OnboardingRoom | None:
    """The onboarding room of this deployment called ``name``, or None if LiveKit has none.

    A stale room (re-created by a token kept past its session) is closed on sight.
    """
    if not name.startswith(binding.prefix):
        return None
    room = live_room(livekit, name)
    if room is not None and binding.stale(room):
        close_stale_room(livekit, name)
        return None
    return None if room is None else binding.read(room)


def close_stale_room(livekit: LiveKitClient, name: str) -> None:
    """Close a room a kept token re-created after its session; a failure is only logged."""
    logger.warning("room %r was re-created by a token kept past its session; closing it", name)
    try:
        delete_room(livekit, name)
    except Exception as error:  # noqa: BLE001 - the room is refused either way
        logger.warning("stale room %r not closed: %s", name, type(error).__name__)


def list_rooms(livekit: LiveKitClient, binding: RoomBinding) -> list[OnboardingRoom]:
    """Every live onboarding room of this deployment (other rooms are left out).

    LiveKit's ListRooms has no name filter but exact names, so this reads every live room.
    """
    response = livekit.call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest()))
    rooms = (binding.read(room) for room in response.rooms if room.name.startswith(binding.prefix))
    return sorted((r for r in rooms if r is not None), key=lambda r: r.created_at)


def list_participants(livekit: LiveKitClient, name: str) -> list[api.ParticipantInfo]:
    """Everyone in room ``name`` right now, agents included (404 once the room is gone)."""
    request = api.ListParticipantsRequest(room=name)
    response = _room_call(livekit, name, lambda lk: lk.room.list_participants(request))
    return list(response.participants)


@dataclass(frozen=True)
class Headcount:
    """Who is in a room right now: users and agents apart (egress and the like left out)."""

    users: int
    agents: int


def headcounts(
    livekit: LiveKitClient, names: Sequence[str], concurrency: int = 8
) -> dict[str, Headcount | None]:
    """Count the participants of each room in one bounded call, ``concurrency`` at a time.

    ``ListParticipants`` is exact at once, where ListRooms' ``num_participants`` lags by up
    to about ten seconds and leaves agents out. None for a room whose count failed.
    """

    async def count_all(lk: api.LiveKitAPI) -> dict[str, Headcount | None]:
        gate = asyncio.Semaphore(concurrency)

        async def count(name: str) -> Headcount | None:
            async with gate:
                try:
                    response = await lk.room.list_participants(
                        api.ListParticipantsRequest(room=name)
                    )
                except Exception:  # noqa: BLE001 - one room's failure only blanks its count
                    return None
            kinds = [p.kind for p in response.participants]
            agents = sum(kind == api.ParticipantInfo.Kind.AGENT for kind in kinds)
            users = sum(kind == api.ParticipantInfo.Kind.STANDARD for kind in kinds)
            return Headcount(users, agents)

        results = await asyncio.gather(*(count(name) for name in names))
        return dict(zip(names, results, strict=True))

    return livekit.call(count_all) if names else {}


def update_room_metadata(livekit: LiveKitClient, name: str, metadata: str) -> api.Room:
    """Write the metadata of room ``name``; LiveKit pushes it to every connected participant."""
    request = api.UpdateRoomMetadataRequest(room=name, metadata=metadata)
    return _room_call(livekit, name, lambda lk: lk.room.update_room_metadata(request))


def delete_room(livekit: LiveKitClient, name: str) -> None:
    """Close room ``name`` on LiveKit, disconnecting everyone in it (404 if already gone)."""
    request = api.DeleteRoomRequest(room=name)
    _room_call(livekit, name, lambda lk: lk.room.delete_room(request))


def cancel_dispatches(livekit: LiveKitClient, name: str) -> int:
    """Cancel every agent dispatch of room ``name`` (LiveKit's AgentDispatch API); return
    how many there were. An agent whose job is cancelled never joins, so it cannot re-create
    the room of a session that ended before it arrived."""

    async def cancel(lk: api.LiveKitAPI) -> int:
        try:
            dispatches = await lk.agent_dispatch.list_dispatch(room_name=name)
        except api.TwirpError:  # the room is gone, and its dispatches with it
            return 0
        for dispatch in dispatches:
            try:
                await lk.agent_dispatch.delete_dispatch(dispatch.id, name)
            except api.TwirpError:  # already done or gone
                continue
        return len(dispatches)

    return livekit.call(cancel)


def rooms_under_prefix(livekit: LiveKitClient, prefix: str) -> list[api.Room]:
    """Every live LiveKit room whose name starts with ``prefix``, onboarding room or not."""
    response = livekit.call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest()))
    return sorted(
        (room for room in response.rooms if room.name.startswith(prefix)),
        key=lambda room: room.creation_time,
    )


def _room_call(livekit: LiveKitClient, name: str, fn: LiveKitCall[T]) -> T:
    """Call LiveKit about one room; its ``not_found`` becomes our 404."""
    try:
        return livekit.call(fn)
    except api.TwirpError:
        raise RoomNotFound(f"No onboarding room named {name!r}.") from None
