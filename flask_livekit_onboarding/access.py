"""Who may join, view, change or end an onboarding room."""

from __future__ import annotations

import logging

from .caller import Caller
from .envelope import OnboardingRoom
from .errors import ApiError, Forbidden, RoomNotFound
from .hooks import Hooks, Identity, RoomAction
from .locks import lock_bounds
from .rooms import find_room, update_room_metadata
from .state import OnboardingState

logger = logging.getLogger(__name__)


def authorize(
    hooks: Hooks,
    identity: Identity,
    room: OnboardingRoom,
    action: RoomAction,
    *,
    owner_may: bool = True,
) -> None:
    """Let the owner through (where ``owner_may``); ask the host's ``room_authorizer`` about
    anybody else, and about the owner for what only the host may do (403)."""
    if owner_may and room.owner == identity.identity:
        return
    authorizer = hooks.room_authorizer
    if authorizer is not None and authorizer(identity, room, action):
        return
    if room.owner == identity.identity:
        raise Forbidden(
            f"The onboarding context is the host's to change; {action} is not allowed. "
            "Write your own notes under 'client'."
        )
    raise Forbidden(f"This onboarding room belongs to someone else; {action} is not allowed.")


def require_room(
    state: OnboardingState,
    name: str,
    caller: Caller,
    action: RoomAction,
    *,
    resign: bool = True,
) -> OnboardingRoom:
    """The onboarding room ``name`` if ``caller`` may do ``action`` on it (404 / 403).

    The host and operators may act on any onboarding room. A room still signed with a
    previous key of a rotation is signed anew (``resign``; off for a caller that holds the
    room's lock and writes the envelope itself).
    """
    room = room_or_404(state, name)
    if not caller.trusted:
        authorize(state.hooks, caller.person, room, action)
    if resign:
        resign_if_rotated(state, room)
    return room


def room_or_404(state: OnboardingState, name: str) -> OnboardingRoom:
    """The onboarding room ``name`` of this deployment, whoever asks (404 if none)."""
    room = find_room(state.livekit, name, state.config.binding)
    if room is None:
        raise RoomNotFound(f"No onboarding room named {name!r}.")
    return room


def resign_if_rotated(state: OnboardingState, room: OnboardingRoom) -> None:
    """Sign ``room``'s envelope with the current key if a previous key of a rotation signed it,
    so it stays this deployment's once the overlap ends. A failure is only logged."""
    binding = state.config.binding
    if room.envelope is None or not binding.signed_with_previous(room.name, room.envelope):
        return
    wait, lease = lock_bounds(state.config)
    try:
        with state.locks.hold(room.name, wait=wait, lease=lease):
            current = find_room(state.livekit, room.name, binding)
            if current is None or current.envelope is None:
                return
            if binding.signed_with_previous(current.name, current.envelope):
                signed = binding.sign(current.name, current.envelope).to_metadata()
                update_room_metadata(state.livekit, current.name, signed)
                logger.info("onboarding room %r signed with the current key", room.name)
    except ApiError as error:
        logger.warning("room %r not signed anew: %s", room.name, error.error_code)
