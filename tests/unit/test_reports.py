"""Reports from a session's agent, with LiveKit stubbed: credential, recording, signals, bounds."""

from __future__ import annotations

import datetime
import json
import secrets
import time
from dataclasses import replace
from typing import Any

import jwt
import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import signals
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.report_auth import sign_report
from flask_livekit_onboarding.reports import MAX_STEPS
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit, sign_webhook, webhook_body
from tests.conftest import UNIT_CONFIG
from tests.metadata import decode_metadata

ROOM = "onboarding-abc"
KEY, SECRET = UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"]
STANDARD = api.ParticipantInfo.Kind.STANDARD
AGENT = api.ParticipantInfo.Kind.AGENT


@pytest.fixture
def fake(app: Flask) -> FakeLiveKit:
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    livekit.add_room(
        ROOM,
        context={"plan": "pro"},
        participants=[("user-1", "Ada", STANDARD), ("agent-7", "Guide", AGENT)],
    )
    return livekit


def session_of(fake: FakeLiveKit, name: str = ROOM) -> str:
    envelope = Envelope.from_metadata(fake.room.rooms[name].metadata)
    assert envelope is not None
    return envelope.session_id


def reports_in(fake: FakeLiveKit, name: str = ROOM) -> dict[str, Any]:
    record = decode_metadata(fake.room.rooms[name].metadata)
    assert record is not None
    return dict(record.get("reports", {}))


def report_body(fake: FakeLiveKit, kind: str = "progress", **fields: Any) -> dict[str, Any]:
    if kind == "progress":
        fields.setdefault("step", "welcome")
        fields.setdefault("state", "done")
    return {"id": secrets.token_hex(6), "session_id": session_of(fake), "kind": kind, **fields}


def post(
    app: Flask,
    body: dict[str, Any] | bytes,
    *,
    room: str = ROOM,
    authorization: str | None = None,
    signed_room: str | None = None,
    session: str | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if authorization is None:
        claimed = session or (json.loads(raw).get("session_id") if raw.strip() else "") or "x"
        authorization = sign_report(
            KEY, SECRET, room=signed_room or room, session=claimed, body=raw
        )
    return app.test_client().post(
        f"/livekit/rooms/{room}/reports",
        data=raw,
        headers={"Authorization": authorization, "Content-Type": "application/json"},
    )


def test_progress_is_recorded_in_the_envelope_and_shown_by_the_status_route(
    app: Flask, fake: FakeLiveKit
) -> None:
    with signals.report_received.connected_to(received := _Recorder(), app):
        started = post(app, report_body(fake, step="welcome", state="started"))
        done = post(app, report_body(fake, step="welcome", state="done"))
        nxt = post(app, report_body(fake, step="invite-team", state="started"))

    assert [r.status_code for r in (started, done, nxt)] == [201, 201, 201]
    reports = reports_in(fake)
    assert reports["current"] == "invite-team"
    assert [(s["step"], s["state"]) for s in reports["steps"]] == [
        ("welcome", "done"),
        ("invite-team", "started"),
    ]
    # The envelope still verifies: the host wrote it, signed, reports included.
    status = app.test_client().get(f"/livekit/rooms/{ROOM}")
    assert status.status_code == 200
    assert status.json["reports"]["current"] == "invite-team"
    assert status.json["context"] == {"plan": "pro"}
    assert [call["kind"] for call in received.calls] == ["progress"] * 3
    assert received.calls[0]["payload"] == {"step": "welcome", "state": "started"}
    assert received.calls[0]["session_id"] == session_of(fake)


def test_a_repeated_report_id_is_acknowledged_and_changes_nothing(
    app: Flask, fake: FakeLiveKit
) -> None:
    body = report_body(fake)
    with signals.report_received.connected_to(received := _Recorder(), app):
        first = post(app, body)
        writes = len(_metadata_writes(fake))
        again = post(app, body)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json["status"] == "duplicate"
    assert len(_metadata_writes(fake)) == writes
    assert len(received.calls) == 1


def test_the_outcome_signal_fires_once_and_a_second_outcome_is_refused(
    app: Flask, fake: FakeLiveKit
) -> None:
    with signals.outcome_reported.connected_to(outcomes := _Recorder(), app):
        first = post(
            app, report_body(fake, "outcome", outcome="completed", summary="All set", data={"n": 5})
        )
        second = post(app, report_body(fake, "outcome", outcome="abandoned"))

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json["error"]["code"] == "report_conflict"
    assert len(outcomes.calls) == 1
    assert outcomes.calls[0]["outcome"] == "completed"
    assert outcomes.calls[0]["summary"] == "All set"
    assert outcomes.calls[0]["data"] == {"n": 5}
    assert reports_in(fake)["outcome"]["outcome"] == "completed"


def test_a_note_is_announced_but_not_stored(app: Flask, fake: FakeLiveKit) -> None:
    with signals.report_received.connected_to(received := _Recorder(), app):
        response = post(app, report_body(fake, "note", data={"asked_about": "pricing"}))

    assert response.status_code == 201
    assert received.calls[0]["payload"] == {"data": {"asked_about": "pricing"}}
    assert reports_in(fake) == {}


def _forged(fake: FakeLiveKit, body: bytes) -> dict[str, str]:
    """Credentials that must not pass for a report of ``body`` to ``ROOM``."""
    session = session_of(fake)
    participant = (
        api.AccessToken(KEY, SECRET)
        .with_identity("user-1")
        .with_grants(api.VideoGrants(room_join=True, room=ROOM))
        .to_jwt()
    )
    expired = sign_report(KEY, SECRET, room=ROOM, session=session, body=body, now=time.time() - 600)
    other_secret = sign_report(KEY, SECRET[::-1], room=ROOM, session=session, body=body)
    long_lived = sign_report(KEY, SECRET, room=ROOM, session=session, body=body, ttl=86_400)
    other_body = sign_report(KEY, SECRET, room=ROOM, session=session, body=body + b" ")
    return {
        "missing": "",
        "participant token": f"Bearer {participant}",
        "webhook header": sign_webhook(body, KEY, SECRET),
        "expired": expired,
        "wrong secret": other_secret,
        "long-lived": long_lived,
        "signed for another body": other_body,
    }


def test_credentials_meant_for_anything_else_are_refused_with_nothing_recorded(
    app: Flask, fake: FakeLiveKit
) -> None:
    body = json.dumps(report_body(fake)).encode()
    with signals.report_received.connected_to(received := _Recorder(), app):
        for what, header in _forged(fake, body).items():
            response = post(app, body, authorization=header)
            assert response.status_code == 401, what
            assert response.json["error"]["code"] == "unauthorized", what
            assert "Bearer" not in response.get_data(as_text=True), what
        other_room = post(app, body, signed_room="onboarding-other")
        other_session = post(app, body, session="another-session")

    assert other_room.status_code == 403
    assert "another room" in other_room.json["error"]["message"]
    assert other_session.status_code == 403
    assert received.calls == []
    assert reports_in(fake) == {}


def test_a_tampered_body_is_refused(app: Flask, fake: FakeLiveKit) -> None:
    body = json.dumps(report_body(fake, step="welcome")).encode()
    header = sign_report(KEY, SECRET, room=ROOM, session=session_of(fake), body=body)
    tampered = body.replace(b"welcome", b"done-ok")

    response = post(app, tampered, authorization=header)

    assert response.status_code == 401
    assert "does not match" in response.json["error"]["message"]
    assert reports_in(fake) == {}


def test_a_room_that_is_not_an_onboarding_room_of_this_deployment_is_404(
    app: Flask, fake: FakeLiveKit
) -> None:
    fake.add_room("onboarding-foreign", metadata=json.dumps({"onboarding": {"owner": "x"}}))
    fake.add_room("meeting-1", metadata="")
    body = report_body(fake)

    for room in ("onboarding-foreign", "meeting-1", "onboarding-gone"):
        response = post(app, body, room=room)
        assert response.status_code == 404, room
        assert response.json["error"]["code"] == "room_not_found"


def test_an_ended_or_replaced_session_is_409(app: Flask, fake: FakeLiveKit) -> None:
    old = report_body(fake)
    fake.add_room(ROOM, context={"plan": "pro"})  # a new session under the same name
    replaced = post(app, old)
    assert replaced.status_code == 409
    assert "earlier session" in replaced.json["error"]["message"]

    current = report_body(fake)
    assert app.test_client().delete(f"/livekit/rooms/{ROOM}").status_code == 204
    ended = post(app, current)
    assert ended.status_code == 409
    assert "ended" in ended.json["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"step": "a" * 65}, "step"),
        ({"step": "step one"}, "step"),
        ({"step": "../etc"}, "step"),
        ({"step": ""}, "step"),
        ({"state": "finished"}, "state"),
        ({"kind": "gossip"}, "kind"),
        ({"id": "x" * 65}, "id"),
        ({"id": "a\nb"}, "id"),
        ({"extra": 1}, "extra"),
        ({"kind": "outcome", "outcome": "won"}, "outcome"),
        ({"kind": "outcome", "outcome": "completed", "summary": "x" * 2001}, "summary"),
        ({"kind": "note"}, "data"),
        ({"kind": "note", "data": [1]}, "data"),
        ({"kind": "note", "data": {"big": "x" * 9000}}, "data"),
    ],
)
def test_bad_reports_get_a_422_naming_the_field(
    app: Flask, fake: FakeLiveKit, fields: dict[str, Any], field: str
) -> None:
    body = report_body(fake, fields.get("kind", "progress"))
    if body["kind"] != "progress":
        body.pop("step", None)
        body.pop("state", None)
    body.update(fields)

    response = post(app, body)

    assert response.status_code == 422, response.json
    assert response.json["error"]["field"] == field
    assert reports_in(fake) == {}


def test_deep_data_and_too_many_steps_are_refused(app: Flask, fake: FakeLiveKit) -> None:
    deep: dict[str, Any] = {}
    for _ in range(20):
        deep = {"d": deep}
    too_deep = post(app, report_body(fake, "note", data=deep))
    assert too_deep.status_code == 422
    assert too_deep.json["error"]["field"] == "data"

    for index in range(MAX_STEPS):
        assert post(app, report_body(fake, step=f"step-{index}")).status_code == 201
    over = post(app, report_body(fake, step="one-too-many"))
    assert over.status_code == 422
    assert over.json["error"]["field"] == "step"
    assert len(reports_in(fake)["steps"]) == MAX_STEPS


def test_not_json_is_a_400(app: Flask, fake: FakeLiveKit) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        response = post(app, raw, session=session_of(fake))
        assert response.status_code == 400
        assert response.json["error"]["code"] == "bad_request"


def test_a_failing_required_receiver_gets_a_503_and_the_retry_delivers_once(
    app: Flask, fake: FakeLiveKit
) -> None:
    attempts: list[str] = []

    @signals.required
    def store(sender: Flask, **kwargs: Any) -> None:
        attempts.append(kwargs["report_id"])
        if len(attempts) == 1:
            raise RuntimeError("database down")

    body = report_body(fake)
    with signals.report_received.connected_to(store, app):
        failed = post(app, body)
        retried = post(app, body)
        repeated = post(app, body)

    assert failed.status_code == 503
    assert failed.json["error"]["code"] == "report_not_delivered"
    assert failed.headers["Retry-After"] == "1"
    assert retried.status_code == 201
    assert repeated.status_code == 200
    assert attempts == [body["id"], body["id"]]
    assert len(reports_in(fake)["steps"]) == 1
    assert reports_in(fake)["ids"] == [body["id"]]


def test_ending_a_session_sends_one_summary(app: Flask, fake: FakeLiveKit) -> None:
    assert post(app, report_body(fake, step="welcome", state="done")).status_code == 201
    session = session_of(fake)
    room = fake.room.rooms[ROOM]
    with signals.session_summarized.connected_to(summaries := _Recorder(), app):
        assert app.test_client().delete(f"/livekit/rooms/{ROOM}").status_code == 204
        # LiveKit's room_finished webhook follows the DELETE: no second summary.
        body = webhook_body("room_finished", room=room)
        webhook = app.test_client().post(
            "/livekit/webhook",
            data=body,
            headers={
                "Authorization": sign_webhook(body, KEY, SECRET),
                "Content-Type": "application/webhook+json",
            },
        )

    assert webhook.status_code == 200
    assert len(summaries.calls) == 1
    summary = summaries.calls[0]["summary"]
    assert summary.session_id == session
    assert summary.owner == "user-1"
    assert summary.outcome == "abandoned"
    assert summary.users == ["user-1"]
    assert summary.agents == ["agent-7"]
    assert [s["step"] for s in summary.steps] == ["welcome"]
    assert summary.ended_by == "ended"
    assert summary.to_dict()["duration"] >= 0


def test_the_summary_names_the_role_each_participant_was_admitted_with(
    app: Flask, fake: FakeLiveKit
) -> None:
    fake.room.participants[ROOM].append(
        api.ParticipantInfo(
            identity="grace",
            name="Grace",
            kind=STANDARD,
            attributes={"onboarding.role": "viewer"},
        )
    )
    with signals.session_summarized.connected_to(summaries := _Recorder(), app):
        assert app.test_client().delete(f"/livekit/rooms/{ROOM}").status_code == 204

    summary = summaries.calls[0]["summary"]
    assert summary.users == ["user-1"] and summary.invited == ["grace"]
    assert summary.roles == {"agent-7": "agent", "grace": "viewer", "user-1": "owner"}
    assert summary.to_dict()["roles"]["grace"] == "viewer"


def test_the_room_finished_webhook_summarizes_a_session_with_its_outcome(
    app: Flask, fake: FakeLiveKit
) -> None:
    post(app, report_body(fake, "outcome", outcome="handed_off", summary="Wants a human"))
    room = fake.room.rooms.pop(ROOM)
    joined = webhook_body(
        "participant_joined",
        room=room,
        participant={"identity": "staff-9", "kind": "STANDARD", "sid": "PA_1"},
    )
    finished = webhook_body("room_finished", room=room)
    with signals.session_summarized.connected_to(summaries := _Recorder(), app):
        for body in (joined, finished, finished):
            response = app.test_client().post(
                "/livekit/webhook",
                data=body,
                headers={"Authorization": sign_webhook(body, KEY, SECRET)},
            )
            assert response.status_code == 200

    assert len(summaries.calls) == 1
    summary = summaries.calls[0]["summary"]
    assert summary.outcome == "handed_off"
    assert summary.outcome_summary == "Wants a human"
    assert summary.staff == ["staff-9"]
    assert summary.ended_by == "room_finished"


def test_the_rooms_command_shows_the_current_step_and_outcome(
    app: Flask, fake: FakeLiveKit
) -> None:
    post(app, report_body(fake, step="invite-team", state="started"))
    post(app, report_body(fake, "outcome", outcome="completed"))

    table = app.test_cli_runner().invoke(args=["livekit", "rooms"])
    rows = app.test_cli_runner().invoke(args=["livekit", "rooms", "--json"])

    assert table.exit_code == 0, table.output
    header, line = table.output.splitlines()[:2]
    assert "STEP" in header and "OUTCOME" in header
    assert "invite-team" in line and "completed" in line
    assert json.loads(rows.output)[0]["step"] == "invite-team"
    assert json.loads(rows.output)[0]["outcome"] == "completed"


def _metadata_writes(fake: FakeLiveKit) -> list[Any]:
    return [r for r in fake.room.requests if isinstance(r, api.UpdateRoomMetadataRequest)]


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Flask, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_credentials_expire_quickly() -> None:
    header = sign_report(KEY, SECRET, room=ROOM, session="s", body=b"{}")
    claims = jwt.decode(header[7:], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 60
    assert claims["aud"] == "livekit-onboarding:report"
    assert datetime.datetime.fromtimestamp(claims["exp"]) > datetime.datetime.now()


def test_a_report_that_is_not_json_by_its_content_type_is_a_415(
    app: Flask, fake: FakeLiveKit
) -> None:
    raw = json.dumps(report_body(fake)).encode()
    header = sign_report(KEY, SECRET, room=ROOM, session=session_of(fake), body=raw)

    response = app.test_client().post(
        f"/livekit/rooms/{ROOM}/reports",
        data=raw,
        headers={"Authorization": header, "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert reports_in(fake) == {}


def test_the_envelope_signature_covers_the_reports(app: Flask) -> None:
    binding = get_state(app).config.binding
    envelope = Envelope.new("user-1", {"plan": "pro"}, 1_700_000_000)
    unsigned_before_reports = binding.sign(ROOM, envelope)
    with_reports = binding.sign(ROOM, replace(envelope, reports={"current": "welcome"}))
    forged = replace(with_reports, reports={"current": "done"})

    assert binding.verify(ROOM, unsigned_before_reports)
    assert binding.verify(ROOM, with_reports)
    assert not binding.verify(ROOM, forged)
    assert Envelope.from_metadata(with_reports.to_metadata()) == with_reports


def _finish(app: Flask, room: api.Room) -> Any:
    body = webhook_body("room_finished", room=room)
    return app.test_client().post(
        "/livekit/webhook", data=body, headers={"Authorization": sign_webhook(body, KEY, SECRET)}
    )


def test_a_summary_whose_required_receiver_failed_is_sent_again_by_room_finished(
    app: Flask, fake: FakeLiveKit
) -> None:
    sent: list[str] = []

    @signals.required
    def store(sender: Flask, *, summary: Any, **extra: Any) -> None:
        sent.append(summary.ended_by)
        if len(sent) == 1:
            raise RuntimeError("database down")

    room = fake.room.rooms[ROOM]
    with signals.session_summarized.connected_to(store, app):
        assert app.test_client().delete(f"/livekit/rooms/{ROOM}").status_code == 204
        assert _finish(app, room).status_code == 200
        assert _finish(app, room).status_code == 200

    assert sent == ["ended", "room_finished"]


def test_room_finished_waits_while_another_request_sends_the_summary(
    app: Flask, fake: FakeLiveKit
) -> None:
    room = fake.room.rooms.pop(ROOM)
    state = get_state(app)
    held = state.dedupe.claim(f"summary:{session_of_room(room)}", 60, 10)
    with signals.session_summarized.connected_to(summaries := _Recorder(), app):
        busy = _finish(app, room)
        state.dedupe.release(f"summary:{session_of_room(room)}", held)
        retried = _finish(app, room)

    assert busy.status_code == 503
    assert int(busy.headers["Retry-After"]) >= 1
    assert retried.status_code == 200
    assert len(summaries.calls) == 1


def session_of_room(room: api.Room) -> str:
    envelope = Envelope.from_metadata(room.metadata)
    assert envelope is not None
    return envelope.session_id
