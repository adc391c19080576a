"""Every session's end, summarized once: who took part, how long, which steps, what outcome.

A session ends when LiveKit closes its room (the ``room_finished`` webhook) or when it is
ended through the library (``DELETE {prefix}/rooms/<name>``, ``flask livekit end``). The
summary is claimed by session id in the webhook de-duplication store, which every app host
shares through Redis, and :data:`signals.session_summarized` is sent by whoever holds the
claim; a :func:`signals.required` receiver that fails gives the claim back, so the
``room_finished`` webhook (or LiveKit's retry of it) sends the summary again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from livekit import api

from . import signals
from .dedupe import Claim
from .envelope import OnboardingRoom
from .errors import DedupeUnavailable, WebhookNotDelivered
from .roles import role_of
from .signals import send_contained
from .state import OnboardingState
from .webhooks import Delivery

logger = logging.getLogger(__name__)

#: The outcome of a session that ended without reporting one.
NO_OUTCOME = "abandoned"
#: Prefix of summary claims in the de-duplication store, apart from webhook event ids.
CLAIM_PREFIX = "summary:"
#: Seconds a sent summary is remembered: far longer than LiveKit retries a webhook.
SUMMARY_WINDOW = 24 * 3600


@dataclass(frozen=True)
class SessionSummary:
    """One ended onboarding session, as the host gets it once."""

    session_id: str
    room_name: str
    owner: str
    #: Unix seconds.
    started_at: int
    ended_at: int
    #: How the session ended: ``"room_finished"`` (LiveKit closed the room) or ``"ended"``.
    ended_by: str
    #: The identities that took part, by role: the owner, staff the host let in, agents,
    #: and people invited into the session (participants and viewers).
    users: list[str] = field(default_factory=list)
    staff: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    invited: list[str] = field(default_factory=list)
    #: Each identity that took part and the role it was admitted with (``owner``, ``staff``,
    #: ``participant``, ``viewer``, ``agent``).
    roles: dict[str, str] = field(default_factory=dict)
    #: The steps reported, in the order they were first reported: ``{"step", "state", "at"}``.
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: The reported outcome, or ``"abandoned"`` when none was reported.
    outcome: str = NO_OUTCOME
    outcome_summary: str | None = None
    outcome_data: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> int:
        """Seconds from the start of the session to its end."""
        return max(self.ended_at - self.started_at, 0)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON, ``duration`` included."""
        return {
            "session_id": self.session_id,
            "room_name": self.room_name,
            "owner": self.owner,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "ended_by": self.ended_by,
            "users": list(self.users),
            "staff": list(self.staff),
            "agents": list(self.agents),
            "invited": list(self.invited),
            "roles": dict(self.roles),
            "steps": [dict(step) for step in self.steps],
            "outcome": self.outcome,
            "outcome_summary": self.outcome_summary,
            "outcome_data": dict(self.outcome_data),
        }


def participant_role(room: OnboardingRoom, participant: api.ParticipantInfo) -> str:
    """The role ``participant`` was admitted with (its server-set attribute); for one the
    extension did not admit: ``agent`` by its kind, ``owner`` or else ``staff``."""
    role = role_of(participant)
    if role is not None:
        return role
    return "owner" if participant.identity == room.owner else "staff"


def note_participants(
    state: OnboardingState, room: OnboardingRoom, participants: Iterable[api.ParticipantInfo]
) -> None:
    """Remember who is in ``room`` for its summary; egress, ingress and SIP are left out."""
    kinds = (api.ParticipantInfo.Kind.STANDARD, api.ParticipantInfo.Kind.AGENT)
    for participant in participants:
        if participant.kind in kinds and room.session_id:
            role = participant_role(room, participant)
            state.ledger.add_participant(room.session_id, participant.identity, role)


def begin_summary(state: OnboardingState, room: OnboardingRoom) -> Claim | None:
    """Before the library ends ``room``'s session: mark it ended and claim its summary.

    Held while the room is closed, so the ``room_finished`` webhook that follows, on any
    host, is answered 503 until the summary is sent (then it is a duplicate). None when
    another request holds the summary or the shared store cannot be reached (the webhook
    then sends it).
    """
    if not room.session_id:
        return None
    try:
        state.ledger.mark_ended(room.session_id)
        claim = _claim(state, room.session_id)
    except DedupeUnavailable:
        logger.warning("summary of session %s left to the room_finished webhook", room.session_id)
        return None
    return claim if claim.state == "new" else None


def abandon_summary(state: OnboardingState, room: OnboardingRoom, claim: Claim | None) -> None:
    """The session was not ended after all: give its summary's claim back."""
    if claim is not None:
        _release(state, room.session_id, claim)


def finish_summary(
    app: Flask, state: OnboardingState, room: OnboardingRoom, claim: Claim | None
) -> None:
    """Send the summary claimed by :func:`begin_summary`, once the room is closed.

    When a required receiver fails, the claim is given back and the ``room_finished``
    webhook's delivery (or LiveKit's retry of it) sends the summary again.
    """
    if claim is not None:
        _send(app, state, room, claim, ended_by="ended", ended_at=int(time.time()))


def _send(
    app: Flask,
    state: OnboardingState,
    room: OnboardingRoom,
    claim: Claim,
    *,
    ended_by: str,
    ended_at: int,
) -> list[Any]:
    """Send the summary under ``claim``; mark it done, or give it back if a required
    receiver failed (returned)."""
    summary = build_summary(
        room, state.ledger.participants(room.session_id), ended_by=ended_by, ended_at=ended_at
    )
    logger.info("onboarding session %s ended: %s", summary.session_id, summary.outcome)
    failed = send_contained(
        signals.session_summarized,
        app,
        room_name=room.name,
        session_id=room.session_id,
        summary=summary,
    )
    if failed:
        _release(state, room.session_id, claim)
        return failed
    try:
        state.dedupe.complete(CLAIM_PREFIX + room.session_id, SUMMARY_WINDOW, claim)
    except Exception:
        logger.exception("summary of session %s sent but not recorded as sent", room.session_id)
    return failed


def _claim(state: OnboardingState, session_id: str) -> Claim:
    try:
        return state.dedupe.claim(
            CLAIM_PREFIX + session_id, SUMMARY_WINDOW, state.config.webhook_claim_ttl
        )
    except DedupeUnavailable:
        raise
    except Exception:
        logger.exception("summary of session %s not claimed: the store failed", session_id)
        raise DedupeUnavailable() from None


def _release(state: OnboardingState, session_id: str, claim: Claim) -> None:
    try:
        state.dedupe.release(CLAIM_PREFIX + session_id, claim)
    except Exception:
        logger.exception("summary of session %s could not be released", session_id)


def build_summary(
    room: OnboardingRoom, people: Mapping[str, str], *, ended_by: str, ended_at: int
) -> SessionSummary:
    """The summary of ``room``'s session from its envelope and who took part."""
    reports = room.reports
    reported = reports.get("outcome")
    outcome: Mapping[str, Any] = reported if isinstance(reported, dict) else {}
    steps = [dict(s) for s in reports.get("steps", []) if isinstance(s, dict)]
    return SessionSummary(
        session_id=room.session_id,
        room_name=room.name,
        owner=room.owner,
        started_at=room.created_at,
        ended_at=ended_at,
        ended_by=ended_by,
        users=sorted(i for i, role in people.items() if role in ("owner", "user")),
        staff=sorted(i for i, role in people.items() if role == "staff"),
        agents=sorted(i for i, role in people.items() if role == "agent"),
        invited=sorted(i for i, role in people.items() if role in ("participant", "viewer")),
        roles={i: "owner" if role == "user" else role for i, role in sorted(people.items())},
        steps=steps,
        outcome=str(outcome.get("outcome") or NO_OUTCOME),
        outcome_summary=outcome.get("summary"),
        outcome_data=dict(outcome.get("data") or {}),
    )


def follow_webhook(app: Flask, state: OnboardingState, delivery: Delivery) -> list[Any]:
    """Note who joins an onboarding room, and summarize its session when LiveKit closes it.

    Returns the :func:`signals.required` summary receivers that failed (LiveKit retries);
    :class:`WebhookNotDelivered` (503) while another request is sending the summary.
    """
    room, event = delivery.room, delivery.event
    if room is None or not room.session_id:
        return []
    if event.event == "participant_joined":
        note_participants(state, room, [event.participant])
    elif event.event == "room_finished":
        state.ledger.mark_ended(room.session_id)
        claim = _claim(state, room.session_id)
        if claim.state == "busy":
            raise WebhookNotDelivered(
                "This session's summary is being sent by another request; retry later.",
                retry_after=claim.retry_after,
            )
        if claim.state == "new":
            return _send(
                app, state, room, claim, ended_by="room_finished", ended_at=int(event.created_at)
            )
    return []
