"""The onboarding envelope: the versioned record the server keeps in a room's metadata.

LiveKit is the source of truth. The server writes, in the room metadata and in the job
metadata of every agent dispatch it makes, one JSON document (contract version 2)::

    {"onboarding": {
        "v": 2,
        "session_id": "…",        # new for every session, even when a room name repeats
        "owner": "user-1",        # the identity from the host's login hook
        "context": {…},           # the host's word: written by the server only
        "client": {…},            # notes the room's users may write: never trusted
        "created_at": 1700000000, # unix seconds
        "join_by": 1700000125,    # on_join only: a room LiveKit creates after this is stale
        "reports": {…},           # progress and outcome the agent reported (when any)
        "sig": "…"                # HMAC binding room name, session, owner, times, context
    }}                            # and reports

A token's room configuration outlives the session (LiveKit copies it into every refresh token
it pushes), so an envelope that travels in a token names the latest time a room may be created
from it; a room created later is not a session: :meth:`Envelope.stale_for` tells an agent.

A client-requested agent whose own metadata the deployment allows gets, beside the envelope,
``"client_metadata": "<what the client sent>"``. This module imports neither Flask nor the
extension, so an agent process can read the envelope with :meth:`Envelope.from_metadata`.

When the token request was traced, the job metadata also carries its W3C trace context,
``"trace_context": {"traceparent": "…"}``, which :func:`trace_context` reads for the agent to
continue the trace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .jsondepth import too_deep

METADATA_KEY = "onboarding"
METADATA_VERSION = 2
CLIENT_METADATA_KEY = "client_metadata"
TRACE_CONTEXT_KEY = "trace_context"
#: The W3C Trace Context headers carried in job metadata.
TRACE_HEADERS = ("traceparent", "tracestate")
#: Nesting deeper than this is never read back: such metadata is not an onboarding envelope.
MAX_READ_DEPTH = 64


class RoomLike(Protocol):
    """The fields of ``livekit.api.Room`` (or ``livekit.rtc.Room``) read here."""

    @property
    def name(self) -> str: ...

    @property
    def metadata(self) -> str: ...


@dataclass(frozen=True)
class Envelope:
    """The onboarding record of one session, as the server wrote it."""

    owner: str
    session_id: str
    context: Mapping[str, Any] = field(default_factory=dict)
    client: Mapping[str, Any] = field(default_factory=dict)
    created_at: int = 0
    version: int = METADATA_VERSION
    signature: str = ""
    #: Unix seconds after which a room created with this envelope is stale; 0: no deadline.
    join_by: int = 0
    #: Progress and outcome reported back by the session's agent, recorded by the host only.
    reports: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, owner: str, context: Mapping[str, Any], created_at: int) -> Envelope:
        """A fresh session's envelope, not yet signed."""
        return cls(owner, secrets.token_urlsafe(12), dict(context), {}, created_at)

    @classmethod
    def from_metadata(cls, metadata: str | None) -> Envelope | None:
        """Read room metadata or job metadata; None when it holds no onboarding envelope.

        Never raises: anything unreadable (invalid or too deeply nested JSON, wrong types) is
        simply not an envelope.
        """
        record = _record(metadata)
        if record is None:
            return None
        return cls(
            owner=record["owner"],
            session_id=_text(record.get("session_id")),
            context=_mapping(record.get("context")),
            client=_mapping(record.get("client")),
            created_at=_int(record.get("created_at")),
            version=_int(record.get("v")),
            signature=_text(record.get("sig")),
            join_by=_int(record.get("join_by")),
            reports=_mapping(record.get("reports")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The envelope as the document stored in metadata."""
        record: dict[str, Any] = {
            "v": self.version,
            "session_id": self.session_id,
            "owner": self.owner,
            "context": dict(self.context),
            "client": dict(self.client),
            "created_at": self.created_at,
        }
        if self.join_by:
            record["join_by"] = self.join_by
        if self.reports:
            record["reports"] = dict(self.reports)
        if self.signature:
            record["sig"] = self.signature
        return {METADATA_KEY: record}

    def stale_for(self, room: RoomLike) -> bool:
        """True when ``room`` was created after this envelope's join deadline.

        Such a room was re-created by a token kept past its session (LiveKit copies a token's
        room configuration into every refresh): it is not a session, and an agent dispatched
        into it should refuse the job. ``room`` is ``livekit.api.Room`` (an agent's
        ``ctx.job.room``) or anything with ``creation_time`` in unix seconds.
        """
        return bool(self.join_by) and _created_at(room) > self.join_by

    def to_metadata(self) -> str:
        """Serialise for ``Room.metadata`` or a dispatch's job metadata.

        Raises ``ValueError`` for values JSON has no spelling for (NaN, Infinity).
        """
        return _dumps(self.to_dict())


def client_metadata(job_metadata: str | None) -> str | None:
    """The metadata a client asked its agent to get, if the deployment let it; else None."""
    document = _load(job_metadata)
    value = document.get(CLIENT_METADATA_KEY) if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def job_metadata(
    envelope: Envelope, client: str | None = None, trace: Mapping[str, str] | None = None
) -> str:
    """The job metadata of a dispatch: the envelope, and the client's own metadata and the
    request's W3C trace context (``traceparent``, ``tracestate``) apart."""
    document = envelope.to_dict()
    if client:
        document[CLIENT_METADATA_KEY] = client
    if trace:
        document[TRACE_CONTEXT_KEY] = {k: trace[k] for k in TRACE_HEADERS if k in trace}
    return _dumps(document)


def trace_context(job_metadata: str | None) -> dict[str, str]:
    """The W3C trace context headers in job metadata ({} if none), for an agent to continue
    the token request's trace: ``opentelemetry.propagate.extract(trace_context(metadata))``."""
    document = _load(job_metadata)
    carrier = document.get(TRACE_CONTEXT_KEY) if isinstance(document, dict) else None
    if not isinstance(carrier, dict):
        return {}
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS and isinstance(v, str)}


@dataclass(frozen=True)
class RoomBinding:
    """What makes a room this deployment's: its name prefix and the key signing its envelope."""

    prefix: str
    key: bytes = field(repr=False)
    #: Keys of a rotation: still accepted (never used to sign) until ``previous_until``.
    previous: tuple[bytes, ...] = field(default=(), repr=False)
    #: Unix time the previous keys stop counting.
    previous_until: float = 0.0

    def sign(self, room_name: str, envelope: Envelope) -> Envelope:
        """``envelope`` with the signature binding it to ``room_name`` and this deployment."""
        return replace(envelope, version=METADATA_VERSION, signature=self._mac(room_name, envelope))

    def verify(self, room_name: str, envelope: Envelope) -> bool:
        """True when ``room_name`` has this deployment's prefix and ``envelope`` its signature
        (by the current key, or a previous one during the rotation's overlap)."""
        return any(
            self._signed_with(key, room_name, envelope) for key in (self.key, *self.accepted())
        )

    def signed_with_previous(self, room_name: str, envelope: Envelope) -> bool:
        """True when only a previous key of a rotation signed ``envelope``: sign it anew."""
        return not self._signed_with(self.key, room_name, envelope) and self.verify(
            room_name, envelope
        )

    def accepted(self) -> tuple[bytes, ...]:
        """The previous keys still accepted now."""
        return self.previous if time.time() < self.previous_until else ()

    def room_name_for(self, identity: str, key: bytes | None = None) -> str:
        """The room name of ``identity``'s session: stable, and unguessable without the key."""
        digest = hmac.new(key or self.key, b"room\0" + identity.encode(), hashlib.sha256).digest()
        return self.prefix + base64.urlsafe_b64encode(digest[:18]).decode()

    def _signed_with(self, key: bytes, room_name: str, envelope: Envelope) -> bool:
        if not room_name.startswith(self.prefix) or envelope.version != METADATA_VERSION:
            return False
        try:
            expected = self._mac(room_name, envelope, key)
        except ValueError:
            return False
        return hmac.compare_digest(expected, envelope.signature)

    def read(self, room: RoomLike) -> OnboardingRoom | None:
        """``room`` as a live onboarding session of this deployment, or None (foreign, forged,
        or :meth:`stale`)."""
        envelope = Envelope.from_metadata(room.metadata)
        if envelope is None or not self.verify(room.name, envelope) or envelope.stale_for(room):
            return None
        return OnboardingRoom.from_envelope(room, envelope)

    def stale(self, room: RoomLike) -> bool:
        """True for a room carrying this deployment's envelope but created after its join
        deadline: a token kept past its session re-created it, and it should be closed."""
        envelope = Envelope.from_metadata(room.metadata)
        return (
            envelope is not None and self.verify(room.name, envelope) and envelope.stale_for(room)
        )

    def _mac(self, room_name: str, envelope: Envelope, key: bytes | None = None) -> str:
        signed: list[Any] = [room_name, envelope.session_id, envelope.owner, envelope.created_at]
        if envelope.join_by:
            signed.append({"join_by": envelope.join_by})
        document: list[Any] = [*signed, dict(envelope.context)]
        if envelope.reports:  # only when present, so envelopes signed before reports still verify
            document.append(dict(envelope.reports))
        payload = _dumps(document).encode()
        digest = hmac.new(key or self.key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class OnboardingRoom:
    """An onboarding room as read back from LiveKit."""

    name: str
    owner: str
    context: Mapping[str, Any] = field(default_factory=dict)
    created_at: int = 0
    sid: str = ""
    num_participants: int = 0
    session_id: str = ""
    client: Mapping[str, Any] = field(default_factory=dict)
    #: The envelope as stored, signature included.
    envelope: Envelope | None = field(default=None, repr=False)
    #: Progress and outcome the session's agent reported (see :mod:`.reports`).
    reports: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_envelope(cls, room: RoomLike, envelope: Envelope) -> OnboardingRoom:
        return cls(
            name=room.name,
            owner=envelope.owner,
            context=dict(envelope.context),
            created_at=envelope.created_at or _int(getattr(room, "creation_time", 0)),
            sid=str(getattr(room, "sid", "")),
            num_participants=_int(getattr(room, "num_participants", 0)),
            session_id=envelope.session_id,
            client=dict(envelope.client),
            envelope=envelope,
            reports=dict(envelope.reports),
        )


def decode_context(metadata: str | None) -> dict[str, Any] | None:
    """The host's onboarding context in a room's metadata, or None for other rooms.

    This reads without checking the signature; the extension's own routes and signals only
    trust rooms whose envelope this deployment signed.
    """
    envelope = Envelope.from_metadata(metadata)
    return None if envelope is None else dict(envelope.context)


def _record(metadata: str | None) -> dict[str, Any] | None:
    document = _load(metadata)
    record = document.get(METADATA_KEY) if isinstance(document, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("owner"), str):
        return None
    return record


def _load(text: str | None) -> Any:
    if not text or not isinstance(text, str) or too_deep(text, MAX_READ_DEPTH):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _created_at(room: RoomLike) -> int:
    created = getattr(room, "creation_time", 0)
    if hasattr(created, "timestamp"):  # livekit.rtc.Room gives a datetime
        return int(created.timestamp())
    return _int(created)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    # json.loads reads "1e999" as infinity and "NaN" as NaN, which int() refuses.
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
