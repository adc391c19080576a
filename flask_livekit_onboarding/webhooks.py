"""Verifying LiveKit webhooks and announcing them to the host through signals.

LiveKit signs each webhook with a JWT made from the API key and secret; its ``sha256`` claim is
the base64 SHA-256 of the body. The token is checked with livekit-api's ``TokenVerifier`` and the
hash against the body bytes exactly as received. ``WebhookReceiver.receive`` is not used as is:
it raises the same bare ``Exception`` for a forged signature and for a malformed body, which
must be told apart (401 and 400), and it hashes a re-encoded ``str`` rather than the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from blinker import NamedSignal
from flask import Flask
from google.protobuf.json_format import ParseDict, ParseError
from livekit import api
from livekit.api import TokenVerifier, WebhookEvent

from . import signals
from .config import OnboardingConfig
from .envelope import OnboardingRoom
from .errors import BadRequest, Unauthorized
from .livekit_limits import MAX_BODY_DEPTH, json_problem
from .roles import role_of
from .room_directory import RememberedRoom
from .rooms import close_stale_room, live_room
from .signals import send_contained
from .state import OnboardingState
from .telemetry import webhook_event

__all__ = [
    "EVENT_SIGNALS",
    "Delivery",
    "announce",
    "event_room_name",
    "event_room_sid",
    "onboarding_room",
    "parse_event",
    "prepare",
    "send_contained",
    "verify_webhook",
]

logger = logging.getLogger(__name__)

#: The signal sent for each LiveKit event type, besides :data:`signals.webhook_received`.
EVENT_SIGNALS: dict[str, NamedSignal] = {
    "room_started": signals.room_started,
    "room_finished": signals.room_finished,
    "participant_joined": signals.participant_joined,
    "participant_left": signals.participant_left,
    "participant_connection_aborted": signals.participant_connection_aborted,
    "track_published": signals.track_published,
    "track_unpublished": signals.track_unpublished,
    "egress_started": signals.egress_started,
    "egress_updated": signals.egress_updated,
    "egress_ended": signals.egress_ended,
    "ingress_started": signals.ingress_started,
    "ingress_ended": signals.ingress_ended,
}
#: The event fields each type's signal passes on, by keyword.
_EXTRA_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "participant_joined": (("participant", "participant"),),
    "participant_left": (("participant", "participant"),),
    "participant_connection_aborted": (("participant", "participant"),),
    "track_published": (("participant", "participant"), ("track", "track")),
    "track_unpublished": (("participant", "participant"), ("track", "track")),
    "egress_started": (("egress", "egress_info"),),
    "egress_updated": (("egress", "egress_info"),),
    "egress_ended": (("egress", "egress_info"),),
    "ingress_started": (("ingress", "ingress_info"),),
    "ingress_ended": (("ingress", "ingress_info"),),
}

#: Events whose signals also carry the participant's ``role``.
_PARTICIPANT_EVENTS = frozenset(
    ("participant_joined", "participant_left", "participant_connection_aborted")
)
#: Events whose room LiveKit sends without its metadata (a name and sid, or only a name).
_EVENTS_WITHOUT_ROOM_METADATA = frozenset(
    ("track_published", "track_unpublished", *(e for e in _EXTRA_FIELDS if "gress_" in e))
)


@dataclass(frozen=True)
class Delivery:
    """A verified event and everything its signals carry, worked out before it is recorded."""

    event: WebhookEvent
    room_name: str | None
    #: The onboarding room of this deployment the event is about, or None.
    room: OnboardingRoom | None

    def signal_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :data:`signals.webhook_received`."""
        return {
            "event": self.event,
            "event_id": self.event.id,
            "room_name": self.room_name,
            "onboarding": self.room is not None,
            "context": None if self.room is None else dict(self.room.context),
        }


@webhook_event
def verify_webhook(
    config: OnboardingConfig, authorization: str | None, body: bytes
) -> WebhookEvent:
    """The event in ``body`` if LiveKit signed it with this app's key and secret.

    Raises :class:`Unauthorized` (401) for a missing, forged or expired signature or a body that
    does not match it, and :class:`BadRequest` (400) for a signed body that is not an event.
    """
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthorized("The Authorization header with LiveKit's webhook signature is missing.")
    try:
        claims = TokenVerifier(config.api_key, config.api_secret).verify(token)
    except Exception as error:  # noqa: BLE001 - whatever the verifier rejects is unauthenticated
        logger.warning("webhook refused: invalid signature (%s)", type(error).__name__)
        raise Unauthorized("The webhook signature is invalid or expired.") from None
    try:
        signed_hash = base64.b64decode(claims.sha256 or "", validate=True)
    except (binascii.Error, ValueError):
        signed_hash = b""
    if not signed_hash or not hmac.compare_digest(signed_hash, hashlib.sha256(body).digest()):
        logger.warning("webhook refused: body does not match the signed sha256")
        raise Unauthorized("The webhook body does not match its signature.")
    return parse_event(body)


def parse_event(body: bytes) -> WebhookEvent:
    """Parse a webhook body (UTF-8 JSON of a ``WebhookEvent``); :class:`BadRequest` if it is not."""
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("The webhook body is not UTF-8.") from None
    except (ValueError, RecursionError):
        raise BadRequest("The webhook body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise BadRequest("The webhook body must be a JSON object.")
    if json_problem(document, MAX_BODY_DEPTH) is not None:
        # protobuf's parser fails with a SystemError on a key it cannot encode.
        raise BadRequest("The webhook body is not a LiveKit webhook event.")
    try:
        event = ParseDict(document, WebhookEvent(), ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError, RecursionError):
        raise BadRequest("The webhook body is not a LiveKit webhook event.") from None
    required = {"id": event.id, "event": event.event, "createdAt": event.created_at}
    for field, present in required.items():
        if not present:
            raise BadRequest(f"The webhook event has no {field}.", field=field)
    return event


def event_room_name(event: WebhookEvent) -> str | None:
    """The name of the room ``event`` is about, if any."""
    if event.HasField("room") and event.room.name:
        return event.room.name
    if event.HasField("egress_info") and event.egress_info.room_name:
        return str(event.egress_info.room_name)
    if event.HasField("ingress_info") and event.ingress_info.room_name:
        return str(event.ingress_info.room_name)
    return None


def event_room_sid(event: WebhookEvent) -> str:
    """The sid of the room ``event`` is about, or "" when the event does not say."""
    if event.HasField("room") and event.room.sid:
        return str(event.room.sid)
    if event.HasField("egress_info"):
        return str(event.egress_info.room_id)
    if event.HasField("ingress_info") and event.ingress_info.HasField("state"):
        return str(event.ingress_info.state.room_id)
    return ""


def prepare(state: OnboardingState, event: WebhookEvent) -> Delivery:
    """Work out what the event's signals carry, calling LiveKit if the event does not say.

    Runs before the event is recorded as seen, so a failure here (LiveKit or the shared store
    unreachable: 503) leaves LiveKit's retry to be taken.
    """
    name = event_room_name(event)
    return Delivery(event, name, None if name is None else onboarding_room(state, event, name))


def onboarding_room(
    state: OnboardingState, event: WebhookEvent, name: str
) -> OnboardingRoom | None:
    """The onboarding room of this deployment that ``event`` is about, or None.

    Room events carry the room's metadata; track events carry only its name and sid, egress
    and ingress events only its name. For those the room is looked up on LiveKit while it is
    live, and else recalled from the store, which remembers every onboarding room an event
    showed with its metadata.
    """
    binding = state.config.binding
    if not name.startswith(binding.prefix):
        return None
    if event.HasField("room") and event.room.metadata:
        if event.event == "room_started" and binding.stale(event.room):
            close_stale_room(state.livekit, name)
            return None
        room = binding.read(event.room)
        if room is not None:
            state.rooms.remember(name, _remembered(event.room.sid, room))
        return room
    if event.event not in _EVENTS_WITHOUT_ROOM_METADATA:
        return None  # the whole room, with no metadata: not an onboarding room
    sid = event_room_sid(event)
    live = live_room(state.livekit, name)
    if live is not None and (not sid or live.sid == sid):
        room = binding.read(live)
        if room is not None:
            state.rooms.remember(name, _remembered(live.sid, room))
            return room
    remembered = state.rooms.recall(name)
    if remembered is None or (sid and remembered.sid and remembered.sid != sid):
        return None
    return binding.read(api.Room(name=name, sid=remembered.sid, metadata=remembered.metadata))


def _remembered(sid: str, room: OnboardingRoom) -> RememberedRoom:
    """What the store keeps of a room: its signed envelope without the users' notes, which
    are not the host's word and would let a user decide how much every worker holds."""
    assert room.envelope is not None
    return RememberedRoom(sid, replace(room.envelope, client={}).to_metadata())


def announce(app: Flask, delivery: Delivery) -> list[Any]:
    """Send :data:`signals.webhook_received`, then the signal of the event's type, if any.

    Every receiver runs even when one fails; returns the :func:`signals.required` receivers
    that failed.
    """
    kwargs = delivery.signal_kwargs()
    failed = send_contained(signals.webhook_received, app, **kwargs)
    event = delivery.event
    signal = EVENT_SIGNALS.get(event.event)
    if signal is not None:
        for keyword, attribute in _EXTRA_FIELDS.get(event.event, ()):
            kwargs[keyword] = getattr(event, attribute)
        if event.event in _PARTICIPANT_EVENTS:
            kwargs["role"] = role_of(event.participant)
        failed += send_contained(signal, app, **kwargs)
    return failed
