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
import inspect
import json
import logging
from typing import Any

from blinker import NamedSignal
from flask import Flask
from google.protobuf.json_format import ParseDict, ParseError
from livekit.api import TokenVerifier, WebhookEvent

from . import signals
from .config import OnboardingConfig
from .envelope import decode_context
from .errors import BadRequest, Unauthorized

logger = logging.getLogger(__name__)

#: The signal sent for each LiveKit event type, besides :data:`signals.webhook_received`.
EVENT_SIGNALS: dict[str, NamedSignal] = {
    "room_started": signals.room_started,
    "room_finished": signals.room_finished,
    "participant_joined": signals.participant_joined,
    "participant_left": signals.participant_left,
}
_PARTICIPANT_EVENTS = frozenset({"participant_joined", "participant_left"})


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
    for info in ("egress_info", "ingress_info"):
        if event.HasField(info) and getattr(event, info).room_name:
            return str(getattr(event, info).room_name)
    return None


def event_context(event: WebhookEvent) -> dict[str, Any] | None:
    """The onboarding context carried by the event's room, or None for other rooms."""
    return decode_context(event.room.metadata) if event.HasField("room") else None


def announce(app: Flask, event: WebhookEvent) -> None:
    """Send :data:`signals.webhook_received`, then the signal of the event's type, if any."""
    room_name = event_room_name(event)
    context = event_context(event)
    send_contained(signals.webhook_received, app, event=event, room_name=room_name, context=context)
    signal = EVENT_SIGNALS.get(event.event)
    if signal is None:
        return
    extra: dict[str, Any] = {}
    if event.event in _PARTICIPANT_EVENTS:
        extra["participant"] = event.participant
    send_contained(signal, app, event=event, room_name=room_name, context=context, **extra)


def send_contained(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Call each receiver of ``signal`` for ``sender``; one that raises is logged and skipped.

    A receiver's failure is the host's bug, not LiveKit's: it must neither turn the webhook into
    a 500 (LiveKit would retry an event already recorded as delivered) nor starve the others.
    """
    if signal.is_muted:
        return
    for receiver in signal.receivers_for(sender):
        if inspect.iscoroutinefunction(receiver):
            logger.error("the %s signal cannot call the async receiver %r", signal.name, receiver)
            continue
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("a receiver of the %s signal failed: %r", signal.name, receiver)
