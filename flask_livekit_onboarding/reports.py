"""Reports from a session's agent: what they may say, and how the host records them.

A report is one JSON object posted by the agent (see :mod:`.agent_reports`)::

    {"id": "…", "session_id": "…", "kind": "progress", "step": "invite-team", "state": "done"}
    {"id": "…", "session_id": "…", "kind": "outcome", "outcome": "completed",
     "summary": "…"?, "data": {…}?}
    {"id": "…", "session_id": "…", "kind": "note", "data": {…}}

Progress and outcome are recorded in the ``reports`` section of the room's signed envelope,
so the user's page and the agent see them through LiveKit's metadata updates::

    "reports": {"current": "invite-team",
                "steps": [{"step": "welcome", "state": "done", "at": 1700000000}, …],
                "outcome": {"outcome": "completed", "summary": "…", "data": {…}, "at": …,
                            "id": "…"},
                "ids": ["…"]}          # the latest report ids recorded, for retries

Notes are only announced (:data:`signals.report_received`), never stored.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from flask import Flask
from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from . import signals
from .claims import ENDED_KEY
from .config import MAX_METADATA_BYTES
from .envelope import OnboardingRoom
from .errors import BadRequest, ReportConflict, RoomNotFound, ValidationFailed
from .jsondepth import too_deep
from .livekit_limits import check_json
from .locks import confirm_metadata, lock_bounds
from .rooms import live_room, update_room_metadata
from .signals import send_contained
from .state import OnboardingState
from .validation import checked, validated

logger = logging.getLogger(__name__)

ReportKind = Literal["progress", "outcome", "note"]
KINDS: tuple[ReportKind, ...] = ("progress", "outcome", "note")
#: The states of a step a progress report may give.
STEP_STATES = ("started", "done", "skipped")
#: The outcomes a session may report; a session that ends with none is ``abandoned``.
OUTCOMES = ("completed", "abandoned", "handed_off")

#: Largest report body, in bytes.
MAX_REPORT_BYTES = 16 * 1024
#: Largest ``data`` of a note or an outcome, serialised, in bytes.
MAX_DATA_BYTES = 8 * 1024
#: Deepest nesting of ``data`` (the object itself is level 1).
MAX_DATA_DEPTH = 8
#: Most distinct steps one session records.
MAX_STEPS = 32
#: Longest step name and report id.
MAX_NAME = 64
#: Longest outcome summary, in characters.
MAX_SUMMARY = 2000
#: How many of the latest report ids the envelope keeps to recognise a retry.
RECORDED_IDS = 64
_NAME = re.compile(r"[A-Za-z0-9_.:-]+\Z")
_FIELDS: dict[str, set[str]] = {
    "progress": {"step", "state"},
    "outcome": {"outcome", "summary", "data"},
    "note": {"data"},
}


@dataclass(frozen=True)
class Report:
    """A parsed, bounded report; ``payload`` holds its kind's fields."""

    id: str
    session_id: str
    kind: ReportKind
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Recorded:
    """What recording a report did: the room as written, and whether it was new there."""

    room_name: str
    report: Report
    reports: Mapping[str, Any]


def parse_report(body: bytes) -> Report:
    """The report in ``body``; 400 for what is not a JSON object, 422 naming a bad field."""
    if len(body) > MAX_REPORT_BYTES:
        raise ValidationFailed(f"A report is at most {MAX_REPORT_BYTES} bytes.", field="body")
    if too_deep(body, MAX_DATA_DEPTH + 1):
        raise ValidationFailed(f"data nests deeper than {MAX_DATA_DEPTH} levels.", field="data")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("The report is not valid JSON.") from None
    if not isinstance(document, dict):
        raise BadRequest("The report must be a JSON object.")
    kind = document.get("kind")
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}.", field="kind")
    parsed = validated(
        REPORT_MODELS[kind], document, unknown=f"Unknown field {{!r}} in a {kind} report."
    )
    payload = parsed.model_dump(exclude={"id", "session_id", "kind"})
    return Report(parsed.id, parsed.session_id, kind, payload)


def record_report(state: OnboardingState, room_name: str, report: Report) -> Recorded:
    """Write ``report`` into the envelope of ``room_name`` (a note is only checked).

    Holds the room's lock like a context update, so concurrent reports lose none. A report
    id the envelope already holds changes nothing (a retry). 404 for a room that is not an
    onboarding room of this deployment, 409 for a session that has ended or was replaced, or
    for a second, different outcome.
    """
    wait, lease = lock_bounds(state.config)
    with state.locks.hold(room_name, wait=wait, lease=lease):
        room = _session_room(state, room_name, report.session_id)
        assert room.envelope is not None
        reports = dict(room.reports)
        if report.kind == "note" or report.id in reports.get("ids", ()):
            return Recorded(room.name, report, reports)
        updated = apply_report(reports, report, int(time.time()))
        envelope = state.config.binding.sign(room.name, replace(room.envelope, reports=updated))
        metadata = envelope.to_metadata()
        if len(metadata.encode()) > MAX_METADATA_BYTES:
            field = "data" if report.kind == "outcome" else "step"
            raise ValidationFailed(
                "The report makes the room metadata larger than 64 KiB.", field=field
            )
        update_room_metadata(state.livekit, room.name, metadata)
        confirm_metadata(state.livekit, room.name, metadata, state.config.request_timeout)
    logger.info("onboarding room %r: %s report recorded", room.name, report.kind)
    return Recorded(room.name, report, updated)


def apply_report(reports: Mapping[str, Any], report: Report, now: int) -> dict[str, Any]:
    """The ``reports`` section with ``report`` recorded (a pure function)."""
    updated = dict(reports)
    if report.kind == "progress":
        step, step_state = report.payload["step"], report.payload["state"]
        steps = [dict(s) for s in updated.get("steps", []) if isinstance(s, dict)]
        entry = next((s for s in steps if s.get("step") == step), None)
        if entry is None:
            if len(steps) >= MAX_STEPS:
                raise ValidationFailed(
                    f"A session records at most {MAX_STEPS} steps.", field="step"
                )
            steps.append({"step": step, "state": step_state, "at": now})
        else:
            entry.update(state=step_state, at=now)
        updated["steps"] = steps
        updated["current"] = step
    elif report.kind == "outcome":
        if isinstance(updated.get("outcome"), dict):
            raise ReportConflict("This session's outcome was already reported.")
        updated["outcome"] = {**report.payload, "at": now, "id": report.id}
    updated["ids"] = [*updated.get("ids", []), report.id][-RECORDED_IDS:]
    return updated


def announce_report(app: Flask, recorded: Recorded) -> list[Any]:
    """Send :data:`signals.report_received`, and for an outcome :data:`signals.outcome_reported`.

    Returns the :func:`signals.required` receivers that failed.
    """
    report = recorded.report
    failed = send_contained(
        signals.report_received,
        app,
        room_name=recorded.room_name,
        session_id=report.session_id,
        report_id=report.id,
        kind=report.kind,
        payload=dict(report.payload),
    )
    if report.kind == "outcome":
        failed += send_contained(
            signals.outcome_reported,
            app,
            room_name=recorded.room_name,
            session_id=report.session_id,
            report_id=report.id,
            outcome=report.payload["outcome"],
            summary=report.payload["summary"],
            data=dict(report.payload["data"]),
        )
    return failed


def _session_room(state: OnboardingState, room_name: str, session_id: str) -> OnboardingRoom:
    """The live onboarding room ``room_name`` if it still holds session ``session_id``."""
    binding = state.config.binding
    info = live_room(state.livekit, room_name) if room_name.startswith(binding.prefix) else None
    room = None if info is None else binding.read(info)
    if room is None:
        if _ended_here(info, session_id) or state.ledger.ended(session_id):
            raise ReportConflict("This onboarding session has ended.")
        raise RoomNotFound(f"No onboarding room named {room_name!r}.")
    if room.session_id != session_id:
        raise ReportConflict("This report is for an earlier session of the room.")
    return room


def _ended_here(info: Any, session_id: str) -> bool:
    """Whether ``info`` is the marker left where ``session_id`` was ended."""
    if info is None:
        return False
    try:
        marker = json.loads(info.metadata).get(ENDED_KEY)
    except (ValueError, AttributeError, RecursionError):
        return False
    return isinstance(marker, dict) and marker.get("session_id") == session_id


def _name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{key} must be a non-empty string.", field=key)
    if len(value) > MAX_NAME:
        raise ValidationFailed(f"{key} is longer than {MAX_NAME} characters.", field=key)
    if not _NAME.match(value):
        raise ValidationFailed(
            f"{key} may hold only ASCII letters, digits and . _ : -",
            field=key,
        )
    return value


def _summary(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed("summary must be a string.", field="summary")
    if len(value) > MAX_SUMMARY:
        raise ValidationFailed(f"summary is longer than {MAX_SUMMARY} characters.", field="summary")
    check_json(value, "summary", 1)
    return value


def _data(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed("data must be a JSON object.", field="data")
    check_json(value, "data", MAX_DATA_DEPTH)
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_DATA_BYTES:
        raise ValidationFailed(f"data is larger than {MAX_DATA_BYTES} bytes.", field="data")
    return value


def _state(value: Any, key: str) -> str:
    if value not in STEP_STATES:
        raise ValidationFailed(f"state must be one of {', '.join(STEP_STATES)}.", field="state")
    return str(value)


def _outcome(value: Any, key: str) -> str:
    if value not in OUTCOMES:
        raise ValidationFailed(f"outcome must be one of {', '.join(OUTCOMES)}.", field="outcome")
    return str(value)


#: The default of a note's ``data``: told apart from an explicit null.
_NO_DATA = object()


def _note_data(value: Any, key: str) -> dict[str, Any]:
    if value is _NO_DATA:
        raise ValidationFailed("A note carries data (a JSON object).", field="data")
    return _data(value)


ReportName = Annotated[
    str,
    checked(_name, none=False),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": "^[A-Za-z0-9_.:-]+$"}
    ),
    Field(default=None, validate_default=True),
]
#: What a note or an outcome carries.
DATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        f"At most {MAX_DATA_BYTES} bytes as JSON, nested at most {MAX_DATA_DEPTH} levels deep."
    ),
}


class _ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ReportName
    session_id: ReportName


class ProgressReport(_ReportBody):
    """A step of the session started, was done or was skipped."""

    kind: Literal["progress"]
    state: Annotated[
        str, checked(_state, none=False), WithJsonSchema({"enum": list(STEP_STATES)})
    ] = "started"
    step: ReportName


class OutcomeReport(_ReportBody):
    """How the session ended, once."""

    kind: Literal["outcome"]
    outcome: Annotated[
        str,
        checked(_outcome, none=False),
        WithJsonSchema({"enum": list(OUTCOMES)}),
        Field(default=None, validate_default=True),
    ]
    summary: Annotated[
        str | None,
        checked(lambda v, k: _summary(v)),
        WithJsonSchema({"type": ["string", "null"], "maxLength": MAX_SUMMARY}),
    ] = None
    data: Annotated[
        dict[str, Any], checked(lambda v, k: _data(v), none=False), WithJsonSchema(DATA_SCHEMA)
    ] = Field(default_factory=dict)


class NoteReport(_ReportBody):
    """Anything else the agent wants the host to hear of."""

    kind: Literal["note"]
    data: Annotated[
        dict[str, Any],
        checked(_note_data, none=False),
        WithJsonSchema(DATA_SCHEMA),
        Field(default=_NO_DATA, validate_default=True),
    ]


REPORT_MODELS: dict[str, type[ProgressReport | OutcomeReport | NoteReport]] = {
    "progress": ProgressReport,
    "outcome": OutcomeReport,
    "note": NoteReport,
}


# The OpenAPI document's Report schema. parse_report validates with the kind's own model, so
# that an unknown field is refused naming the kind.
class ReportBody(
    RootModel[Annotated[ProgressReport | OutcomeReport | NoteReport, Field(discriminator="kind")]]
):
    """A report: progress through a step, the session's outcome, or a note, told apart by kind."""
