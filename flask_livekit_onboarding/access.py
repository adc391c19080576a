"""Who may join, view, change or end an onboarding room."""

from __future__ import annotations

from .envelope import OnboardingRoom
from .errors import Forbidden, RoomNotFound
from .hooks import Hooks, Identity, RoomAction
from .rooms import find_room
from .state import OnboardingState


def authorize(hooks: Hooks, identity: Identity, room: OnboardingRoom, action: RoomAction) -> None:
    """Let the owner through; ask the host's ``room_authorizer`` about anybody else (403)."""
    if room.owner == identity.identity:
        return
    authorizer = hooks.room_authorizer
    if authorizer is not None and authorizer(identity, room, action):
        return
    raise Forbidden(f"This onboarding room belongs to someone else; {action} is not allowed.")


def require_room(
    state: OnboardingState, name: str, identity: Identity | None, action: RoomAction
) -> OnboardingRoom:
    """The onboarding room ``name`` if ``identity`` may do ``action`` on it (404 / 403).

    ``identity`` None is the operator (the CLI), who may act on any onboarding room.
    """
    room = find_room(state.livekit, name)
    if room is None:
        raise RoomNotFound(f"No onboarding room named {name!r}.")
    if identity is not None:
        authorize(state.hooks, identity, room, action)
    return room
