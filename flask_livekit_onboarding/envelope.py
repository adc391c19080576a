"""The onboarding envelope: the versioned record the server keeps in a room's metadata.

LiveKit is the source of truth: the owner and the host's context live in the room metadata as
``{"onboarding": {"v": 1, "owner": ..., "context": {...}, "created_at": ...}}``, which every
participant (and an agent) can read. This module imports neither Flask nor the extension, so
an agent process can read the envelope with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

METADATA_KEY = "onboarding"
METADATA_VERSION = 1


class RoomLike(Protocol):
    """The fields of ``livekit.api.Room`` (or ``livekit.rtc.Room``) read here."""

    name: str
    metadata: str


@dataclass(frozen=True)
class OnboardingRoom:
    """An onboarding room as read back from LiveKit."""

    name: str
    owner: str
    context: Mapping[str, Any] = field(default_factory=dict)
    created_at: int = 0
    sid: str = ""
    num_participants: int = 0
    #: The room metadata as LiveKit returned it, envelope included.
    metadata: str = field(default="", repr=False)

    @classmethod
    def from_room(cls, room: RoomLike) -> OnboardingRoom | None:
        """Read a LiveKit room; None when it is not an onboarding room."""
        record = decode_metadata(room.metadata)
        if record is None:
            return None
        return cls(
            name=room.name,
            owner=record["owner"],
            context=record["context"],
            created_at=_int(record.get("created_at")) or _int(getattr(room, "creation_time", 0)),
            sid=str(getattr(room, "sid", "")),
            num_participants=int(getattr(room, "num_participants", 0)),
            metadata=room.metadata,
        )


def encode_metadata(owner: str, context: Mapping[str, Any], created_at: int) -> str:
    """Serialise the onboarding record for ``Room.metadata``."""
    record = {"v": METADATA_VERSION, "owner": owner, "context": dict(context)}
    record["created_at"] = created_at
    return json.dumps({METADATA_KEY: record}, separators=(",", ":"), ensure_ascii=False)


def decode_metadata(metadata: str) -> dict[str, Any] | None:
    """Return the onboarding record in ``metadata``, or None if there is none."""
    try:
        document = json.loads(metadata) if metadata else None
    except (ValueError, RecursionError):
        return None
    record = document.get(METADATA_KEY) if isinstance(document, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("owner"), str):
        return None
    if not isinstance(record.get("context"), dict):
        record["context"] = {}
    return record


def decode_context(metadata: str) -> dict[str, Any] | None:
    """The host's onboarding context in a room's metadata, or None for other rooms."""
    record = decode_metadata(metadata)
    return None if record is None else dict(record["context"])


def metadata_with_context(metadata: str, context: Mapping[str, Any]) -> str:
    """``metadata`` with its onboarding context replaced and every other field kept as it was.

    Raises ``ValueError`` for a context JSON has no spelling for (NaN, Infinity).
    """
    document = json.loads(metadata)
    document[METADATA_KEY]["context"] = dict(context)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
