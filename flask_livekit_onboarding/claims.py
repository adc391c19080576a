"""Room names a session needs, and the rooms that squat them.

A room can be live under an onboarding room's name without this deployment's live session in
it: the marker an ended ``on_join`` session leaves, a stale copy a kept token re-created, or
an empty room an agent or a participant re-created after the session ended (LiveKit creates
a room at the first join). Such a room is cleared when the name is needed again, unless
people other than the room's own user are in it: then the caller learns what it is and when
it clears, and staff can end it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass

from livekit import api

from .errors import RoomNotFound, RoomOccupied
from .jsondepth import too_deep
from .rooms import cancel_dispatches, create_room, delete_room, list_participants, live_room
from .state import OnboardingState

logger = logging.getLogger(__name__)

#: The metadata key of the marker room left where an ``on_join`` session ended.
ENDED_KEY = "onboarding_ended"
#: Times a start clears a squatting room and creates its own before it gives up (a late
#: agent may re-create the name between the two calls).
CLAIM_ATTEMPTS = 3
#: Deepest metadata read when looking for a marker (a marker is two levels deep).
MARKER_DEPTH = 8


@dataclass(frozen=True)
class Squatter:
    """A live room under an onboarding name that carries no live session of this deployment."""

    room: api.Room
    #: ``ended-marker``, ``stale`` (re-created past its join deadline) or ``not-onboarding``.
    kind: str
    #: Identities of the people (not agents) in it.
    people: tuple[str, ...]
    agents: int

    def describe(self) -> str:
        """What the room is, in words for an error message or the CLI."""
        return {
            "ended-marker": "the marker of an ended session",
            "stale": "a copy of an ended session re-created by a kept token",
        }.get(self.kind, "a room without an onboarding session of this deployment")


def squatter(state: OnboardingState, room: api.Room) -> Squatter | None:
    """``room`` as a squatter, or None when it is a live onboarding session of this deployment
    or not under this deployment's prefix. Its participants are counted (one LiveKit call)."""
    binding = state.config.binding
    if not room.name.startswith(binding.prefix) or binding.read(room) is not None:
        return None
    kind = "stale" if binding.stale(room) else "not-onboarding"
    if _is_marker(room.metadata):
        kind = "ended-marker"
    try:
        participants = list_participants(state.livekit, room.name)
    except RoomNotFound:
        participants = []
    agents = sum(p.kind == api.ParticipantInfo.Kind.AGENT for p in participants)
    people = tuple(p.identity for p in participants if p.kind == api.ParticipantInfo.Kind.STANDARD)
    return Squatter(room, kind, people, agents)


def find_squatter(state: OnboardingState, name: str) -> Squatter | None:
    """The squatter live under ``name``, if any."""
    room = live_room(state.livekit, name)
    return None if room is None else squatter(state, room)


def clear(state: OnboardingState, found: Squatter, *, owner: str | None, force: bool) -> None:
    """Close the squatting room ``found``, cancelling its agent dispatches first.

    Without ``force`` a room that holds people other than ``owner`` is left alone (409 naming
    what it is and when it clears); a marker or a stale copy is the library's own and always
    closed.
    """
    others = [identity for identity in found.people if identity != owner]
    if others and not force and found.kind == "not-onboarding":
        raise RoomOccupied(occupied_message(found, len(others)))
    name = found.room.name
    logger.info(
        "clearing room %r (%s, %d people, %d agents)",
        name,
        found.kind,
        len(found.people),
        found.agents,
        extra={"room_name": name},
    )
    cancel_dispatches(state.livekit, name)
    with contextlib.suppress(RoomNotFound):
        delete_room(state.livekit, name)


def claim_room(state: OnboardingState, settings: api.RoomConfiguration, owner: str) -> api.Room:
    """Create the room of ``settings`` for ``owner``'s session, clearing a squatter in the way.

    Returns the room LiveKit has under the name: the new one, or a live session of this
    deployment already there (LiveKit's CreateRoom returns a live room unchanged).
    """
    binding = state.config.binding
    for _ in range(CLAIM_ATTEMPTS):
        room = create_room(state.livekit, settings)
        if binding.read(room) is not None:
            return room
        found = squatter(state, room)
        if found is not None:
            clear(state, found, owner=owner, force=False)
    raise RoomOccupied(
        f"The room {settings.name!r} is re-created by somebody each time it is cleared; "
        "retry in a few seconds."
    )


def occupied_message(found: Squatter, others: int) -> str:
    room = found.room
    people = "1 person is" if others == 1 else f"{others} people are"
    return (
        f"The room {room.name!r} is live but holds {found.describe()}, and {people} in it. "
        f"It clears when they leave: LiveKit closes it {room.departure_timeout or 20}s after "
        "the last one leaves. Staff can end it now (flask livekit end --force)."
    )


def _is_marker(metadata: str) -> bool:
    if not metadata or too_deep(metadata, MARKER_DEPTH):
        return False
    try:
        document = json.loads(metadata)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and ENDED_KEY in document
