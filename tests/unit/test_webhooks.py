"""``POST /livekit/webhook``: signature checks, parsing, at-most-once delivery and signals."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import time
import uuid
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import LiveKitOnboarding, signals
from flask_livekit_onboarding.config import DEFAULTS, load_config
from flask_livekit_onboarding.dedupe import Claim, DedupeUnavailable, MemoryDedupe, WebhookDedupe
from flask_livekit_onboarding.devserver import free_port
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.state import get_state

CONTEXT = {"plan": "pro", "locale": "en", "step": "welcome"}
ROOM = "onboarding-abc123"
WEBHOOK = "/livekit/webhook"


def signed_metadata(room_name: str = ROOM, context: dict[str, Any] | None = None) -> str:
    """Room metadata as the unit-test apps write it: an envelope signed with their binding."""
    from tests.conftest import UNIT_CONFIG

    binding = load_config({**DEFAULTS, **UNIT_CONFIG}).binding
    envelope = Envelope.new("user-1", CONTEXT if context is None else context, 1_700_000_000)
    return binding.sign(room_name, envelope).to_metadata()


class Recorder:
    """A signal receiver remembering every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append((sender, kwargs))

    @property
    def kwargs(self) -> dict[str, Any]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][1]


def event_body(
    event: str = "participant_joined",
    *,
    event_id: str | None = None,
    created_at: float | None = None,
    room_name: str = ROOM,
    metadata: str | None = None,
    **extra: Any,
) -> bytes:
    """A webhook body as LiveKit sends it (protobuf JSON, camelCase, int64 as strings)."""
    if metadata is None:
        metadata = signed_metadata(room_name)
    document: dict[str, Any] = {
        "event": event,
        "id": event_id or f"EV_{uuid.uuid4().hex[:12]}",
        "createdAt": str(int(time.time() if created_at is None else created_at)),
        "room": {"sid": "RM_1", "name": room_name, "metadata": metadata},
    }
    if event.startswith("participant_"):
        document["participant"] = {"sid": "PA_1", "identity": "user-1", "name": "Ada Lovelace"}
    document.update(extra)
    return json.dumps(document).encode()


def sign(
    app: Flask,
    body: bytes,
    *,
    secret: str | None = None,
    api_key: str | None = None,
    ttl: datetime.timedelta = datetime.timedelta(minutes=5),
) -> str:
    """The Authorization value LiveKit would send for ``body``."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return (
        api.AccessToken(
            api_key or app.config["LIVEKIT_API_KEY"], secret or app.config["LIVEKIT_API_SECRET"]
        )
        .with_ttl(ttl)
        .with_sha256(digest)
        .to_jwt()
    )


def post(app: Flask, body: bytes, authorization: str | None = "sign") -> Any:
    headers = {}
    if authorization == "sign":
        authorization = sign(app, body)
    if authorization is not None:
        headers["Authorization"] = authorization
    return app.test_client().post(
        WEBHOOK, data=body, headers=headers, content_type="application/webhook+json"
    )


@pytest.fixture
def received(app: Flask) -> Any:
    recorder = Recorder()
    with signals.webhook_received.connected_to(recorder, app):
        yield recorder


def test_signed_event_is_acknowledged_and_announced_once(app: Flask, received: Recorder) -> None:
    joined = Recorder()
    body = event_body(event_id="EV_joined")

    with signals.participant_joined.connected_to(joined, app):
        response = post(app, body)

    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted"}
    assert joined.calls[0][0] is app
    kwargs = joined.kwargs
    assert set(kwargs) == {
        "event",
        "event_id",
        "room_name",
        "onboarding",
        "context",
        "participant",
        "role",
    }
    assert kwargs["event_id"] == "EV_joined"
    assert kwargs["onboarding"] is True
    assert kwargs["event"].id == "EV_joined"
    assert kwargs["event"].event == "participant_joined"
    assert kwargs["room_name"] == ROOM
    assert kwargs["context"] == CONTEXT
    assert kwargs["participant"].identity == "user-1"
    assert set(received.kwargs) == {"event", "event_id", "room_name", "onboarding", "context"}
    assert received.kwargs["event"].id == "EV_joined"
    assert received.kwargs["context"] == CONTEXT


@pytest.mark.parametrize(
    ("event", "signal", "has_participant"),
    [
        ("room_started", signals.room_started, False),
        ("room_finished", signals.room_finished, False),
        ("participant_joined", signals.participant_joined, True),
        ("participant_left", signals.participant_left, True),
    ],
)
def test_each_lifecycle_event_has_its_signal(
    app: Flask, received: Recorder, event: str, signal: Any, has_participant: bool
) -> None:
    recorder = Recorder()
    others = Recorder()
    rest = [s for s in (signals.room_started, signals.room_finished) if s is not signal]
    rest += [s for s in (signals.participant_joined, signals.participant_left) if s is not signal]

    with signal.connected_to(recorder, app):
        for other in rest:
            other.connect(others, app)
        try:
            assert post(app, event_body(event)).status_code == 200
        finally:
            for other in rest:
                other.disconnect(others)

    assert recorder.kwargs["event"].event == event
    assert recorder.kwargs["room_name"] == ROOM
    assert recorder.kwargs["context"] == CONTEXT
    assert ("participant" in recorder.kwargs) is has_participant
    assert others.calls == []
    assert len(received.calls) == 1


def test_other_events_reach_webhook_received_only(app: Flask, received: Recorder) -> None:
    joined = Recorder()
    body = event_body("track_published", track={"sid": "TR_1", "type": "AUDIO"})

    with signals.participant_joined.connected_to(joined, app):
        assert post(app, body).status_code == 200

    assert received.kwargs["event"].track.sid == "TR_1"
    assert joined.calls == []


def test_room_without_onboarding_metadata_has_no_context(app: Flask) -> None:
    started = Recorder()

    with signals.room_started.connected_to(started, app):
        post(app, event_body("room_started", room_name="standup", metadata='{"team":"a"}'))

    assert started.kwargs["room_name"] == "standup"
    assert started.kwargs["context"] is None


def test_event_without_room_has_no_room_name(app: Flask, received: Recorder) -> None:
    document = json.loads(event_body("egress_started"))
    del document["room"]
    document["egressInfo"] = {"egressId": "EG_1", "roomName": ROOM}

    assert post(app, json.dumps(document).encode()).status_code == 200

    assert received.kwargs["room_name"] == ROOM
    assert received.kwargs["context"] is None


def test_bearer_prefix_is_accepted(app: Flask, received: Recorder) -> None:
    body = event_body()

    response = post(app, body, authorization="Bearer " + sign(app, body))

    assert response.status_code == 200
    assert len(received.calls) == 1


def _refused(response: Any, token: str | None = None) -> None:
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    if token:
        assert token not in response.get_data(as_text=True)


def test_missing_signature_is_refused(app: Flask, received: Recorder) -> None:
    _refused(post(app, event_body(), authorization=None))
    _refused(post(app, event_body(), authorization="Bearer "))
    assert received.calls == []


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda app, body: sign(app, body, secret="x" * 48), id="wrong-secret"),
        pytest.param(lambda app, body: sign(app, body, api_key="other-key"), id="wrong-key"),
        pytest.param(
            lambda app, body: sign(app, body, ttl=datetime.timedelta(minutes=-5)), id="expired"
        ),
        pytest.param(lambda app, body: sign(app, body + b" "), id="body-hash-mismatch"),
        pytest.param(lambda app, body: "not-a-jwt", id="garbage"),
        pytest.param(
            lambda app, body: api.AccessToken(
                app.config["LIVEKIT_API_KEY"], app.config["LIVEKIT_API_SECRET"]
            ).to_jwt(),
            id="no-sha256-claim",
        ),
    ],
)
def test_forged_signature_is_refused(
    app: Flask, received: Recorder, caplog: pytest.LogCaptureFixture, forge: Any
) -> None:
    body = event_body()
    token = forge(app, body)

    with caplog.at_level(logging.DEBUG):
        response = post(app, body, authorization=token)

    _refused(response, token)
    assert token not in caplog.text
    assert app.config["LIVEKIT_API_SECRET"] not in caplog.text
    assert received.calls == []


def test_tampered_body_is_refused(app: Flask, received: Recorder) -> None:
    body = event_body()
    token = sign(app, body)
    tampered = body.replace(b"user-1", b"user-2")

    _refused(post(app, tampered, authorization=token), token)
    assert received.calls == []


def test_a_participant_token_is_no_webhook_signature(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    token = app.test_client().post("/livekit/token", json={}).get_json()["participant_token"]

    _refused(post(app, event_body(), authorization=token), token)


def test_webhook_signed_for_another_app_is_refused(make_app: Any) -> None:
    first = make_app()
    second = make_app(LIVEKIT_API_SECRET="another-secret-that-is-long-enough-for-hs256")
    recorder = Recorder()
    body = event_body()

    with signals.webhook_received.connected_to(recorder):
        _refused(post(second, body, authorization=sign(first, body)))
        assert post(first, body, authorization=sign(first, body)).status_code == 200

    assert [sender for sender, _ in recorder.calls] == [first]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"{not json", None, id="not-json"),
        pytest.param(b'{"event": "room_started", "id": "\xff\xfe"}', None, id="not-utf8"),
        pytest.param(b"\xef\xbb\xbf{}", None, id="utf8-bom"),
        pytest.param(b"[]", None, id="array"),
        pytest.param(b'"room_started"', None, id="string"),
        pytest.param(b'{"event": 5, "id": "EV_1", "createdAt": "1"}', None, id="wrong-type"),
        pytest.param(
            b'{"event": "room_started", "id": "EV_1", "createdAt": "1", "room": {"name": 3}}',
            None,
            id="bad-room",
        ),
        pytest.param(b'{"event": "room_started", "createdAt": "1"}', "id", id="no-id"),
        pytest.param(b'{"id": "EV_1", "createdAt": "1"}', "event", id="no-event"),
        pytest.param(b'{"event": "room_started", "id": "EV_1"}', "createdAt", id="no-time"),
        pytest.param(b"[" * 5000 + b"]" * 5000, None, id="deeply-nested"),
    ],
)
def test_malformed_signed_body_is_a_bad_request(
    app: Flask, received: Recorder, body: bytes, field: str | None
) -> None:
    response = post(app, body)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_request"
    assert error.get("field") == field
    assert received.calls == []


def test_oversized_body_is_refused(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_MAX_BODY_BYTES=1024)
    body = event_body(padding="x" * 2048)

    response = post(app, body)

    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_duplicate_event_is_acknowledged_and_emits_nothing(app: Flask, received: Recorder) -> None:
    body = event_body(event_id="EV_twice")
    token = sign(app, body)

    first = post(app, body, authorization=token)
    replayed = post(app, body, authorization=token)
    retried = post(app, body, authorization=sign(app, body, ttl=datetime.timedelta(minutes=9)))

    assert first.get_json() == {"status": "accepted"}
    assert (retried.status_code, retried.get_json()) == (200, {"status": "duplicate"})
    assert (replayed.status_code, replayed.get_json()) == (200, {"status": "duplicate"})
    assert len(received.calls) == 1


def test_same_event_in_another_app_is_delivered_there(make_app: Any) -> None:
    first, second = make_app(), make_app()
    recorder = Recorder()
    body = event_body(event_id="EV_both")

    with signals.webhook_received.connected_to(recorder):
        post(first, body)
        post(second, body)

    assert [sender for sender, _ in recorder.calls] == [first, second]


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_event_outside_max_age_is_dropped(app: Flask, received: Recorder, offset: int) -> None:
    response = post(app, event_body(created_at=time.time() + offset))

    assert (response.status_code, response.get_json()) == (200, {"status": "stale"})
    assert received.calls == []


def test_max_age_is_configurable(make_app: Any) -> None:
    app = make_app(
        LIVEKIT_ONBOARDING_WEBHOOK_MAX_AGE=3600, LIVEKIT_ONBOARDING_WEBHOOK_DEDUPE_WINDOW=3600
    )
    recorder = Recorder()

    with signals.webhook_received.connected_to(recorder, app):
        assert post(app, event_body(created_at=time.time() - 1800)).get_json() == {
            "status": "accepted"
        }
        assert post(app, event_body(created_at=time.time() - 4000)).get_json() == {
            "status": "stale"
        }

    assert len(recorder.calls) == 1


def test_stale_event_does_not_use_up_its_id(app: Flask, received: Recorder) -> None:
    post(app, event_body(event_id="EV_late", created_at=time.time() - 1000))

    assert post(app, event_body(event_id="EV_late")).get_json() == {"status": "accepted"}
    assert len(received.calls) == 1


def test_failing_receiver_is_logged_and_others_still_run(
    app: Flask, received: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    joined = Recorder()

    def broken(sender: Flask, **kwargs: Any) -> None:
        raise RuntimeError("host bug")

    with (
        signals.participant_joined.connected_to(broken, app),
        signals.participant_joined.connected_to(joined, app),
        signals.webhook_received.connected_to(broken, app),
        caplog.at_level(logging.ERROR, logger="flask_livekit_onboarding"),
    ):
        response = post(app, event_body())

    assert (response.status_code, response.get_json()) == (200, {"status": "accepted"})
    assert len(joined.calls) == 1
    assert len(received.calls) == 1
    failures = [r for r in caplog.records if "receiver" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)


def test_async_receiver_is_skipped_with_an_error(
    app: Flask, received: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    async def coroutine_receiver(sender: Flask, **kwargs: Any) -> None:
        raise AssertionError("never awaited")

    with (
        signals.webhook_received.connected_to(coroutine_receiver, app),
        caplog.at_level(logging.ERROR, logger="flask_livekit_onboarding"),
    ):
        assert post(app, event_body()).status_code == 200

    assert len(received.calls) == 1
    assert "async receiver" in caplog.text


def test_muted_signal_sends_nothing(app: Flask, received: Recorder) -> None:
    with signals.webhook_received.muted():
        assert post(app, event_body()).status_code == 200

    assert received.calls == []


class BrokenStore(WebhookDedupe):
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def claim(self, event_id: str, window: int, hold: int) -> Claim:
        raise self.error

    def complete(self, event_id: str, window: int, claim: Claim) -> None:
        raise self.error

    def release(self, event_id: str, claim: Claim | None = None) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("error", [DedupeUnavailable(), RuntimeError("store bug")])
def test_unavailable_dedupe_store_is_a_503_and_emits_nothing(
    onboarding: LiveKitOnboarding, base_config: dict[str, Any], error: Exception
) -> None:
    app = Flask("host_app")
    app.config.update(base_config)
    store = BrokenStore(error)
    onboarding.init_app(app, dedupe_store=store)
    recorder = Recorder()
    try:
        with signals.webhook_received.connected_to(recorder, app):
            response = post(app, event_body())
    finally:
        get_state(app).close()

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "dedupe_unavailable"
    assert recorder.calls == []
    assert store.closed


def test_unreachable_redis_is_a_503(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(LIVEKIT_ONBOARDING_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    recorder = Recorder()

    with signals.webhook_received.connected_to(recorder, app):
        started = time.monotonic()
        response = post(app, event_body())

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "dedupe_unavailable"
    assert time.monotonic() - started < 5
    assert recorder.calls == []
    assert "ConnectionError" in caplog.text


def test_dedupe_window_is_passed_to_the_store(
    onboarding: LiveKitOnboarding, base_config: dict[str, Any]
) -> None:
    windows: list[tuple[str, int]] = []

    class Spy(MemoryDedupe):
        def first_time(self, event_id: str, window: int) -> bool:
            windows.append((event_id, window))
            return super().first_time(event_id, window)

        def complete(self, event_id: str, window: int, claim: Claim) -> None:
            windows.append((event_id, window))
            super().complete(event_id, window, claim)

    app = Flask("host_app")
    app.config.update(
        base_config,
        LIVEKIT_ONBOARDING_WEBHOOK_DEDUPE_WINDOW=60,
        LIVEKIT_ONBOARDING_WEBHOOK_MAX_AGE=60,
    )
    onboarding.init_app(app, dedupe_store=Spy())
    try:
        post(app, event_body(event_id="EV_window"))
    finally:
        get_state(app).close()

    assert windows == [("EV_window", 60)]
