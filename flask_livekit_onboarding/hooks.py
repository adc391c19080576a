"""Who is asking, and the hooks a host app registers to answer it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .envelope import OnboardingRoom

#: What a caller wants to do with an existing onboarding room.
#: ``invite`` covers creating, listing and revoking the room's invites.
RoomAction = Literal["join", "view", "update_context", "update_client", "end", "invite"]


@dataclass(frozen=True)
class Identity:
    """A participant as the host app knows it.

    ``identity`` is the stable LiveKit participant identity; ``metadata`` and ``attributes``
    travel in the participant token and are seen by everyone in the room.
    """

    identity: str
    name: str | None = None
    metadata: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


class IdentityLoader(Protocol):
    """Return the signed-in caller of the current request, or None when nobody is signed in."""

    def __call__(self) -> Identity | str | None: ...


class ContextProvider(Protocol):
    """Return the JSON-able onboarding context stored in a new room's metadata."""

    def __call__(self, identity: Identity) -> Mapping[str, Any]: ...


class RoomAuthorizer(Protocol):
    """Decide whether ``identity`` may do ``action`` on a room it does not own."""

    def __call__(self, identity: Identity, room: OnboardingRoom, action: RoomAction) -> bool: ...


@dataclass
class Hooks:
    """The functions a host registered; shared by every app the extension is initialised on."""

    identity_loader: IdentityLoader | None = None
    context_provider: ContextProvider | None = None
    room_authorizer: RoomAuthorizer | None = None
