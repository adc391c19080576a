"""Signals sent by the extension; the sender is always the Flask app.

They notify the host; a receiver's return value is ignored and never changes what the
extension does. Webhook signals carry ``event`` (the verified ``livekit.api.WebhookEvent``),
``room_name`` and ``context`` (the decoded onboarding context, or None for other rooms). They are
sent at most once per event, synchronously before LiveKit gets its answer, so receivers should be
quick; one that raises is logged and neither fails the webhook nor keeps the others from running.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A new onboarding room was created (``eager``) or reserved in a token (``on_join``).
#: Keyword arguments: ``room_name``, ``identity`` (:class:`Identity`), ``context``, ``mode``.
room_created = _signals.signal("livekit-onboarding.room-created")

#: A participant token was issued. Keyword arguments: ``room_name``, ``identity``,
#: ``participant_name``, ``expires_in`` (seconds). Never the token itself.
token_issued = _signals.signal("livekit-onboarding.token-issued")

#: Every verified, de-duplicated webhook, whatever its type; sent before the type's own signal.
#: Keyword arguments: ``event``, ``room_name`` (None for events without a room), ``context``.
webhook_received = _signals.signal("livekit-onboarding.webhook-received")

#: LiveKit started a room. Keyword arguments: ``event``, ``room_name``, ``context``.
room_started = _signals.signal("livekit-onboarding.room-started")

#: LiveKit closed a room (empty timeout or DELETE). Keyword arguments: ``event``,
#: ``room_name``, ``context``.
room_finished = _signals.signal("livekit-onboarding.room-finished")

#: A participant joined. Keyword arguments: ``event``, ``room_name``, ``context``,
#: ``participant`` (``livekit.api.ParticipantInfo``).
participant_joined = _signals.signal("livekit-onboarding.participant-joined")

#: A participant left. Keyword arguments as for :data:`participant_joined`.
participant_left = _signals.signal("livekit-onboarding.participant-left")

#: The onboarding context of a room was changed through the session routes.
#: Keyword arguments: ``room_name``, ``identity``, ``context`` (the new context).
context_updated = _signals.signal("livekit-onboarding.context-updated")

#: A session was ended through the session routes or the CLI. Keyword arguments:
#: ``room_name``, ``identity`` (None from the CLI).
session_ended = _signals.signal("livekit-onboarding.session-ended")
