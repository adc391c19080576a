"""Participant roles: the server-set attribute naming each participant's role, and its grants.

Every participant the extension admits carries the attribute :data:`ROLE_ATTRIBUTE` in its
token. Tokens never grant ``can_update_own_metadata``, so a participant cannot change it, and
the token endpoint refuses a client's attempt to choose it. This module imports neither Flask
nor livekit-api, so an agent can read roles with :func:`role_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: The participant attribute naming the role; set by the server only.
ROLE_ATTRIBUTE = "onboarding.role"
#: The attribute naming who invited an invited participant (their display name).
INVITED_BY_ATTRIBUTE = "onboarding.invited_by"
#: Attributes only the server may set on a participant.
SERVER_ATTRIBUTES = frozenset({ROLE_ATTRIBUTE, INVITED_BY_ATTRIBUTE})

Role = Literal["owner", "staff", "participant", "viewer", "agent"]
#: Every role, most privileged first.
ROLES: tuple[Role, ...] = ("owner", "staff", "participant", "viewer", "agent")
#: The roles an invite may give.
InviteRole = Literal["participant", "viewer"]
INVITE_ROLES: tuple[InviteRole, ...] = ("participant", "viewer")

#: LiveKit's participant kind of agents (``ParticipantInfo.Kind.AGENT``).
_AGENT_KIND = 4


@dataclass(frozen=True)
class Grants:
    """What a role may do in the room besides joining it."""

    can_publish: bool
    can_subscribe: bool = True
    can_publish_data: bool = True


#: Least privilege per role: a viewer watches and may chat (data), but publishes no media.
GRANTS: Mapping[str, Grants] = {
    "owner": Grants(can_publish=True),
    "staff": Grants(can_publish=True),
    "participant": Grants(can_publish=True),
    "viewer": Grants(can_publish=False),
    "agent": Grants(can_publish=True),
}


def role_of(participant: Any) -> str | None:
    """The role of a LiveKit participant (``api.ParticipantInfo`` or an ``rtc`` participant).

    An agent is ``"agent"`` by its kind; anyone else has the role the server set, or None
    when the extension did not admit them.
    """
    attributes = getattr(participant, "attributes", None) or {}
    role = attributes.get(ROLE_ATTRIBUTE) if hasattr(attributes, "get") else None
    if role in ROLES:
        return str(role)
    kind = getattr(participant, "kind", None)
    if kind == _AGENT_KIND:
        return "agent"
    return None


def invited_by(participant: Any) -> str | None:
    """The display name of whoever invited ``participant``, if it joined with an invite."""
    attributes = getattr(participant, "attributes", None) or {}
    value = attributes.get(INVITED_BY_ATTRIBUTE) if hasattr(attributes, "get") else None
    return value if isinstance(value, str) and value else None
