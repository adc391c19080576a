"""Who may join, view, change or end an onboarding room."""

from __future__ import annotations

from .envelope import OnboardingRoom
from .errors import Forbidden, RoomNotFound
from .hooks import Hooks, Identity, RoomAction
from .rooms import find_room
from .state import OnboardingState


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
    state: OnboardingState, name: str, identity: Identity | None, action: RoomAction
) -> OnboardingRoom:
    """The onboarding room ``name`` if ``identity`` may do ``action`` on it (404 / 403).

    ``identity`` None is the operator (the CLI), who may act on any onboarding room.
    """
    room = find_room(state.livekit, name, state.config.binding)
    if room is None:
        raise RoomNotFound(f"No onboarding room named {name!r}.")
    if identity is not None:
        authorize(state.hooks, identity, room, action)
    return room
