"""Delivery guarantees: at least once (default) and at most once for webhooks, contained
receiver failures on every request path, and which events are about onboarding rooms."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding import ConfigurationError, signals
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit

from .test_webhooks import ROOM, Recorder, event_body, post, signed_metadata

CONTEXT = {"plan": "pro", "locale": "en", "step": "welcome"}


class FailsOnce:
    """A required receiver whose first call fails (its database was down), then succeeds."""

    def __init__(self) -> None:
        self.calls = 0
        self.delivered: list[str] = []

    def __call__(self, sender: Any, *, event_id: str, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("database unavailable")
        self.delivered.append(event_id)


def fake(app: Flask) -> FakeLiveKit:
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    return livekit


def test_default_is_at_least_once(app: Flask) -> None:
    assert get_state(app).config.webhook_delivery == "at_least_once"


def test_unknown_delivery_mode_is_refused(make_app: Any) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOK_DELIVERY"):
        make_app(LIVEKIT_ONBOARDING_WEBHOOK_DELIVERY="exactly_once")


def test_required_receiver_failure_is_retried_until_delivered(app: Flask) -> None:
    receiver = signals.required(FailsOnce())
    bystander = Recorder()
    body = event_body("participant_left", event_id="EV_left")

    with (
        signals.participant_left.connected_to(receiver, app),
        signals.webhook_received.connected_to(bystander, app),
    ):
        failed = post(app, body)
        retried = post(app, body)
        again = post(app, body)

    assert failed.status_code == 503
    assert failed.get_json()["error"]["code"] == "webhook_not_delivered"
    assert retried.get_json() == {"status": "accepted"}
    assert again.get_json() == {"status": "duplicate"}
    assert receiver.delivered == ["EV_left"]
    # Other receivers see a retried event again: the event id lets them skip it.
    assert [kw["event_id"] for _, kw in bystander.calls] == ["EV_left", "EV_left"]


def test_optional_receiver_failure_is_only_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = FailsOnce()
    body = event_body("participant_left")

    with signals.participant_left.connected_to(receiver, app):
        first = post(app, body)
        second = post(app, body)

    assert first.get_json() == {"status": "accepted"}
    assert second.get_json() == {"status": "duplicate"}
    assert receiver.calls == 1
    assert "database unavailable" in caplog.text


def test_at_most_once_never_redelivers(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_WEBHOOK_DELIVERY="at_most_once")
    receiver = signals.required(FailsOnce())
    body = event_body("participant_left")

    with signals.participant_left.connected_to(receiver, app):
        first = post(app, body)
        second = post(app, body)

    assert first.get_json() == {"status": "accepted"}
    assert second.get_json() == {"status": "duplicate"}
    assert receiver.calls == 1 and receiver.delivered == []


@pytest.mark.parametrize("mode", ["at_least_once", "at_most_once"])
def test_a_failure_after_the_record_releases_the_event(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    app = make_app(LIVEKIT_ONBOARDING_WEBHOOK_DELIVERY=mode)
    received = Recorder()
    body = event_body("room_started", event_id="EV_crash")
    calls = {"n": 0}
    from flask_livekit_onboarding.http import webhook_view

    real_announce = webhook_view.announce

    def announce_once_broken(app: Flask, delivery: Any) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug between the record and the signals")
        return real_announce(app, delivery)

    monkeypatch.setattr(webhook_view, "announce", announce_once_broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with signals.room_started.connected_to(received, app):
        broken = post(app, body)
        retried = post(app, body)

    assert broken.status_code == 500
    assert retried.get_json() == {"status": "accepted"}
    assert [kw["event_id"] for _, kw in received.calls] == ["EV_crash"]


def test_a_retry_during_delivery_is_told_to_come_back(app: Flask) -> None:
    body = event_body("participant_joined", event_id="EV_slow")
    inside, proceed = threading.Event(), threading.Event()
    answers: list[Any] = []

    def slow(sender: Any, **kwargs: Any) -> None:
        inside.set()
        assert proceed.wait(10)

    with signals.participant_joined.connected_to(slow, app):
        first = threading.Thread(target=lambda: answers.append(post(app, body)))
        first.start()
        assert inside.wait(10)
        during = post(app, body)
        proceed.set()
        first.join(10)
    after = post(app, body)

    assert during.status_code == 503
    assert during.get_json()["error"]["code"] == "webhook_not_delivered"
    assert 1 <= int(during.headers["Retry-After"]) <= 10
    assert answers[0].get_json() == {"status": "accepted"}
    assert after.get_json() == {"status": "duplicate"}


def test_every_webhook_signal_carries_the_event_id_and_the_onboarding_flag(app: Flask) -> None:
    started = Recorder()
    with signals.room_started.connected_to(started, app):
        post(app, event_body("room_started", event_id="EV_started"))
        post(app, event_body("room_started", room_name="standup", metadata='{"team":"a"}'))

    ours, other = (kwargs for _, kwargs in started.calls)
    assert (ours["event_id"], ours["onboarding"], ours["context"]) == ("EV_started", True, CONTEXT)
    assert (other["onboarding"], other["context"]) == (False, None)


def test_forged_envelope_is_not_an_onboarding_room(app: Flask) -> None:
    started = Recorder()
    forged = signed_metadata(ROOM).replace('"welcome"', '"admin"')

    with signals.room_started.connected_to(started, app):
        post(app, event_body("room_started", metadata=forged))

    assert (started.kwargs["onboarding"], started.kwargs["context"]) == (False, None)


def track_event(event: str, room_sid: str = "RM_1") -> bytes:
    document = json.loads(event_body(event, track={"sid": "TR_1", "type": "AUDIO"}))
    document["room"] = {"sid": room_sid, "name": ROOM}  # what LiveKit sends: no metadata
    document["participant"] = {"sid": "PA_1", "identity": "user-1"}
    return json.dumps(document).encode()


def test_track_events_in_a_live_onboarding_room_are_looked_up(app: Flask) -> None:
    fake(app).add_room(ROOM, context=CONTEXT)
    room_sid = fake(app).room.rooms[ROOM].sid
    published, unpublished = Recorder(), Recorder()

    with (
        signals.track_published.connected_to(published, app),
        signals.track_unpublished.connected_to(unpublished, app),
    ):
        post(app, track_event("track_published", room_sid))
        post(app, track_event("track_unpublished", room_sid))

    for recorder in (published, unpublished):
        kwargs = recorder.kwargs
        assert (kwargs["onboarding"], kwargs["context"]) == (True, CONTEXT)
        assert kwargs["track"].sid == "TR_1"
        assert kwargs["participant"].identity == "user-1"


def test_events_after_the_room_closed_are_recalled_from_room_started(app: Flask) -> None:
    egress_ended = Recorder()
    post(app, event_body("room_started"))  # LiveKit has no such room live (any more)
    document = json.loads(event_body("egress_ended"))
    del document["room"]
    document["egressInfo"] = {"egressId": "EG_1", "roomName": ROOM, "roomId": "RM_1"}

    with signals.egress_ended.connected_to(egress_ended, app):
        assert post(app, json.dumps(document).encode()).status_code == 200

    kwargs = egress_ended.kwargs
    assert (kwargs["room_name"], kwargs["onboarding"], kwargs["context"]) == (ROOM, True, CONTEXT)
    assert kwargs["egress"].egress_id == "EG_1"


def test_unknown_room_without_metadata_is_not_onboarding(app: Flask) -> None:
    published = Recorder()
    with signals.track_published.connected_to(published, app):
        post(app, track_event("track_published"))

    assert (published.kwargs["onboarding"], published.kwargs["context"]) == (False, None)


@pytest.mark.parametrize(
    ("event", "signal"),
    [
        ("participant_connection_aborted", signals.participant_connection_aborted),
        ("egress_started", signals.egress_started),
        ("egress_updated", signals.egress_updated),
        ("ingress_started", signals.ingress_started),
        ("ingress_ended", signals.ingress_ended),
    ],
)
def test_every_livekit_event_type_has_its_signal(app: Flask, event: str, signal: Any) -> None:
    recorder = Recorder()
    with signal.connected_to(recorder, app):
        assert post(app, event_body(event)).status_code == 200

    assert recorder.kwargs["event"].event == event
    assert recorder.kwargs["onboarding"] is True


@pytest.fixture
def staff(users: Any) -> None:
    users.staff.add("user-1")


def broken(sender: Any, **kwargs: Any) -> None:
    raise RuntimeError("the host's receiver is broken")


def test_a_failing_token_receiver_does_not_fail_the_token(app: Flask) -> None:
    with (
        signals.token_issued.connected_to(broken, app),
        signals.room_created.connected_to(broken, app),
    ):
        response = app.test_client().post("/livekit/token", json={})

    assert response.status_code == 201
    assert response.get_json()["room_name"] in fake(app).room.rooms


@pytest.mark.usefixtures("staff")
def test_failing_session_receivers_do_not_fail_the_change(app: Flask) -> None:
    fake(app).add_room(ROOM, context=CONTEXT)
    client = app.test_client()

    with (
        signals.context_updated.connected_to(broken, app),
        signals.session_ended.connected_to(broken, app),
    ):
        updated = client.patch(f"/livekit/rooms/{ROOM}/context", json={"context": {"step": "2"}})
        ended = client.delete(f"/livekit/rooms/{ROOM}")

    assert updated.status_code == 200
    assert updated.get_json()["context"]["step"] == "2"
    assert ended.status_code == 204
    assert ROOM not in fake(app).room.rooms
