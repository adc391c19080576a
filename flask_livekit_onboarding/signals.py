"""Signals sent by the extension; the sender is always the Flask app.

They notify the host; a receiver's return value is ignored and never changes what the
extension does. A receiver that raises is logged and never fails a request whose change is
already made on LiveKit, nor keeps the other receivers from running.

Webhook signals carry ``event`` (the verified ``livekit.api.WebhookEvent``), ``event_id``
(LiveKit's id of the event, the key for idempotent receivers), ``room_name``, ``onboarding``
(True for an onboarding room of this deployment) and ``context`` (its onboarding context, or
None for other rooms). They are sent synchronously before LiveKit gets its answer. With
at-least-once delivery (the default) an event whose :func:`required` receiver fails, or whose
process dies while delivering it, is sent again on LiveKit's retry.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from blinker import NamedSignal, Namespace
from flask import Flask, current_app, has_app_context

logger = logging.getLogger(__name__)
_signals = Namespace()

R = TypeVar("R")
_REQUIRED = "_livekit_onboarding_required"


def required(receiver: R) -> R:
    """Mark a webhook signal receiver whose failure must make LiveKit deliver the event again.

    With ``LIVEKIT_ONBOARDING_WEBHOOK_DELIVERY = "at_least_once"`` (the default), a required
    receiver that raises releases the event and the webhook answers 503, so LiveKit retries it;
    every receiver then sees the event again, so make them idempotent on ``event_id``. Other
    receivers' failures are only logged. Returns ``receiver`` unchanged::

        @signals.participant_left.connect_via(app)
        @signals.required
        def save_progress(app, *, event_id, room_name, context, **extra): ...
    """
    setattr(receiver, _REQUIRED, True)
    return receiver


def is_required(receiver: object) -> bool:
    """True for a receiver marked with :func:`required`."""
    return bool(getattr(receiver, _REQUIRED, False))


def send_contained(signal: NamedSignal, sender: Flask, **kwargs: Any) -> list[Any]:
    """Call each receiver of ``signal`` for the app ``sender``; one that raises is logged and
    skipped.

    A receiver's failure is the host's bug, not the caller's: it must neither turn a request
    whose change is already made into a 500 nor starve the other receivers. Receivers run in
    the app's context, also when the host's own code acts outside a request. Returns the
    :func:`required` receivers that failed (the webhook view has LiveKit retry for them).
    """
    failed: list[Any] = []
    receivers = [] if signal.is_muted else list(signal.receivers_for(sender))
    if not receivers:
        return failed
    with _app_context(sender):
        for receiver in receivers:
            if not _called(signal, sender, receiver, kwargs) and is_required(receiver):
                failed.append(receiver)
    return failed


def _called(signal: NamedSignal, sender: Flask, receiver: Any, kwargs: dict[str, Any]) -> bool:
    """Call ``receiver``; False when it could not be called or raised (which is logged)."""
    if inspect.iscoroutinefunction(receiver):
        logger.error("the %s signal cannot call the async receiver %r", signal.name, receiver)
        return False
    try:
        receiver(sender, **kwargs)
    except Exception:
        logger.exception("a receiver of the %s signal failed: %r", signal.name, receiver)
        return False
    return True


@contextmanager
def _app_context(app: Flask) -> Iterator[None]:
    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        yield
        return
    with app.app_context():
        yield


#: A new onboarding room was created (``eager``) or reserved in a token (``on_join``).
#: Keyword arguments: ``room_name``, ``identity`` (:class:`Identity`), ``context``, ``mode``,
#: ``session_id`` (the new session's id, as reports and summaries name it).
room_created = _signals.signal("livekit-onboarding.room-created")

#: A live session was resumed: a request without ``room_name`` from a user who already has a
#: live onboarding room (``eager`` mode with the ``resume`` policy). Keyword arguments:
#: ``room_name``, ``identity``, ``session_id``, ``room_sid``.
session_resumed = _signals.signal("livekit-onboarding.session-resumed")

#: A participant token was issued. Keyword arguments: ``room_name``, ``identity``,
#: ``participant_name``, ``expires_in`` (seconds), ``role`` (the participant's role: ``owner``,
#: ``staff``, ``participant`` or ``viewer``). Never the token itself.
token_issued = _signals.signal("livekit-onboarding.token-issued")

# Webhook signals. Keyword arguments of each: ``event``, ``event_id``, ``room_name`` (None for
# events without a room), ``onboarding``, ``context``; participant and track events add
# ``participant`` (``livekit.api.ParticipantInfo``), track events ``track``
# (``livekit.api.TrackInfo``), egress events ``egress`` (``livekit.api.EgressInfo``), ingress
# events ``ingress`` (``livekit.api.IngressInfo``).

#: Every verified, de-duplicated webhook, whatever its type; sent before the type's own signal.
webhook_received = _signals.signal("livekit-onboarding.webhook-received")

#: LiveKit started a room.
room_started = _signals.signal("livekit-onboarding.room-started")

#: LiveKit closed a room (empty timeout or DELETE).
room_finished = _signals.signal("livekit-onboarding.room-finished")

#: A participant joined. Adds ``participant`` and ``role`` (the role the server gave it:
#: ``owner``, ``staff``, ``participant``, ``viewer``, ``agent``; None for one it did not admit).
participant_joined = _signals.signal("livekit-onboarding.participant-joined")

#: A participant left. Adds ``participant`` and ``role``.
participant_left = _signals.signal("livekit-onboarding.participant-left")

#: A participant's connection failed before it fully joined. Adds ``participant`` and ``role``.
participant_connection_aborted = _signals.signal(
    "livekit-onboarding.participant-connection-aborted"
)

#: A participant published a track. Adds ``participant`` (sid and identity only) and ``track``.
track_published = _signals.signal("livekit-onboarding.track-published")

#: A participant unpublished a track. Adds ``participant`` and ``track``.
track_unpublished = _signals.signal("livekit-onboarding.track-unpublished")

#: An egress (recording, stream) started, changed or ended. Adds ``egress``.
egress_started = _signals.signal("livekit-onboarding.egress-started")
egress_updated = _signals.signal("livekit-onboarding.egress-updated")
egress_ended = _signals.signal("livekit-onboarding.egress-ended")

#: An ingress started or ended. Adds ``ingress``.
ingress_started = _signals.signal("livekit-onboarding.ingress-started")
ingress_ended = _signals.signal("livekit-onboarding.ingress-ended")

#: The onboarding context of a room was changed through the session routes.
#: Keyword arguments: ``room_name``, ``identity``, ``context`` (the new context), ``client``
#: (the owner's notes after the change), ``session_id``.
context_updated = _signals.signal("livekit-onboarding.context-updated")

#: A session was ended through the session routes or the CLI. Keyword arguments:
#: ``room_name``, ``identity`` (None from the CLI), ``session_id``.
session_ended = _signals.signal("livekit-onboarding.session-ended")

# Reports from a session's agent (``POST {prefix}/rooms/<room_name>/reports``), sent after the
# report is recorded and before the agent gets its answer. A :func:`required` receiver that
# fails answers the agent 503, and the agent's retry sends the report's signals again.

#: A new report was accepted (a repeated report id sends nothing). Keyword arguments:
#: ``room_name``, ``session_id``, ``report_id``, ``kind`` (``"progress"``, ``"outcome"`` or
#: ``"note"``) and ``payload`` (``{"step", "state"}``, ``{"outcome", "summary", "data"}`` or
#: ``{"data"}``).
report_received = _signals.signal("livekit-onboarding.report-received")

#: The session's outcome was reported; once per session. Keyword arguments: ``room_name``,
#: ``session_id``, ``report_id``, ``outcome`` (``"completed"``, ``"abandoned"`` or
#: ``"handed_off"``), ``summary`` (str or None), ``data`` (dict).
outcome_reported = _signals.signal("livekit-onboarding.outcome-reported")

#: A session ended (LiveKit closed its room, or it was ended through the library); once per
#: session across every app host sharing the store. Keyword arguments: ``room_name``,
#: ``session_id``, ``summary`` (:class:`~flask_livekit_onboarding.summaries.SessionSummary`).
#: A :func:`required` receiver that fails has the ``room_finished`` webhook delivered again.
session_summarized = _signals.signal("livekit-onboarding.session-summarized")
#: An invite was created. Keyword arguments: ``room_name``, ``identity`` (who created it; None
#: for the host), ``invite_id``, ``role``, ``max_uses``, ``expires_at``. Never the code.
invite_created = _signals.signal("livekit-onboarding.invite-created")

#: An invite admitted somebody. Keyword arguments: ``room_name``, ``identity`` (the invitee),
#: ``invite_id``, ``role``, ``first_use`` (False when the same invitee came back).
invite_redeemed = _signals.signal("livekit-onboarding.invite-redeemed")

#: An invite was revoked. Keyword arguments: ``room_name``, ``identity`` (None for the host),
#: ``invite_id``.
invite_revoked = _signals.signal("livekit-onboarding.invite-revoked")
