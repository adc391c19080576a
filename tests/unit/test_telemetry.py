"""Telemetry without a LiveKit server: the no-SDK default, the identity opt-in, the trace carrier
in job metadata, and the structured fields of log lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.envelope import Envelope, job_metadata, trace_context
from flask_livekit_onboarding.testing import FakeLiveKit, sign_webhook, webhook_body
from tests.conftest import UNIT_CONFIG
from tests.telemetry_support import Recorded, recorded

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def otel() -> Iterator[Recorded]:
    telemetry = recorded()
    yield telemetry
    telemetry.shutdown()


def traced_app(telemetry: Any, **config: Any) -> Flask:
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: Identity(identity="ada-42"))
    app = Flask("traced")
    app.config.update(UNIT_CONFIG, LIVEKIT_ONBOARDING_AGENT_NAME="helper", **config)
    extension.init_app(app, livekit=FakeLiveKit(), telemetry=telemetry)
    return app


def test_without_an_sdk_nothing_is_recorded_and_dispatches_carry_no_trace() -> None:
    code = (
        "from flask_livekit_onboarding.telemetry import Telemetry\n"
        "t = Telemetry()\n"
        "with t.span('x') as span:\n"
        "    print(span.is_recording(), t.trace_headers())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False {}"


def test_identities_are_left_out_unless_the_host_opts_in(otel: Recorded) -> None:
    app = traced_app(otel.telemetry, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    assert app.test_client().post("/livekit/token", json={}).status_code == 201
    assert "enduser.id" not in (otel.span("onboarding.token").attributes or {})
    assert "ada-42" not in list(otel.attribute_values())

    opted_in = recorded(record_identities=True)
    app = traced_app(opted_in.telemetry, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    app.test_client().post("/livekit/token", json={})
    token = opted_in.span("onboarding.token")
    assert (token.attributes or {})["enduser.id"] == "ada-42"
    assert (token.attributes or {})["livekit.onboarding.session"] == "at_join"
    opted_in.shutdown()


def test_an_on_join_token_carries_the_trace_in_its_dispatch(otel: Recorded) -> None:
    app = traced_app(otel.telemetry, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    body = app.test_client().post("/livekit/token", json={}).get_json()
    claims = api.TokenVerifier(
        UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"]
    ).verify(body["participant_token"])
    assert claims.room_config is not None
    (dispatch,) = claims.room_config.agents
    token = otel.span("onboarding.token")
    assert trace_context(dispatch.metadata)["traceparent"].split("-")[1] == format(
        token.context.trace_id, "032x"
    )
    assert Envelope.from_metadata(dispatch.metadata) is not None
    assert otel.value("livekit.onboarding.tokens.issued", livekit__onboarding__session="at_join")


def test_the_trace_carrier_sits_beside_the_envelope_and_is_read_defensively() -> None:
    envelope = Envelope.new("ada", {"plan": "pro"}, 1)
    metadata = job_metadata(
        envelope, "client-note", {"traceparent": TRACEPARENT, "baggage": "user=ada"}
    )
    document = json.loads(metadata)
    assert document["trace_context"] == {"traceparent": TRACEPARENT}
    assert document["client_metadata"] == "client-note"
    assert trace_context(metadata) == {"traceparent": TRACEPARENT}
    assert Envelope.from_metadata(metadata) == envelope
    for unreadable in (None, "", "[]", "{", '{"trace_context": "x"}', '{"trace_context": [1]}'):
        assert trace_context(unreadable) == {}
    assert trace_context('{"trace_context": {"traceparent": 7, "other": "x"}}') == {}


def test_log_lines_carry_room_session_and_event_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = traced_app(None)
    caplog.set_level(logging.INFO, logger="flask_livekit_onboarding")
    body = app.test_client().post("/livekit/token", json={}).get_json()
    (created,) = [r for r in caplog.records if "created for" in r.getMessage()]
    assert created.name == "flask_livekit_onboarding.token_flow"
    assert created.room_name == body["room_name"]  # type: ignore[attr-defined]
    assert created.session_id  # type: ignore[attr-defined]

    webhook = webhook_body("room_started", room=api.Room(name="other", sid="RM_1"), id="EV_7")
    headers = {
        "Authorization": sign_webhook(
            webhook, UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"]
        ),
        "Content-Type": "application/webhook+json",
    }
    client = app.test_client()
    for _ in range(2):
        client.post("/livekit/webhook", data=webhook, headers=headers)
    (duplicate,) = [r for r in caplog.records if "duplicate" in r.getMessage()]
    assert duplicate.name == "flask_livekit_onboarding.http.webhook_view"
    assert (duplicate.event_id, duplicate.event_type, duplicate.room_name) == (  # type: ignore[attr-defined]
        "EV_7",
        "room_started",
        "other",
    )


def test_a_refused_request_records_the_error_type_but_not_its_message(otel: Recorded) -> None:
    app = traced_app(otel.telemetry, LIVEKIT_ONBOARDING_ROOM_CREATION="on_join")
    response = app.test_client().post(
        "/livekit/token", json={"room_config": {"agents": [{"agent_name": "sneaky-7d21"}]}}
    )
    assert response.status_code == 403
    assert "sneaky-7d21" in response.get_json()["error"]["message"]
    token = otel.span("onboarding.token")
    assert (token.attributes or {})["error.type"] == "Forbidden"
    assert token.status.status_code.name == "UNSET"  # a client error, not the server's
    assert not [v for v in otel.attribute_values() if "sneaky-7d21" in v]
    assert otel.value("livekit.onboarding.tokens.issued") == 0


def test_an_outage_is_counted_once_and_timed_when_livekit_is_back(otel: Recorded) -> None:
    from flask_livekit_onboarding.livekit_bridge import Outage

    now = [100.0]
    outage = Outage(
        lambda: now[0],
        on_start=otel.telemetry.outage_started,
        on_end=otel.telemetry.outage_ended,
    )
    outage.answered()
    for _ in range(3):
        outage.failed("unreachable: ClientConnectorError")
    now[0] = 112.5
    outage.answered()
    outage.answered()

    (duration,) = otel.points("livekit.onboarding.livekit.outage.duration")
    assert (duration.count, duration.sum) == (1, 12.5)
    assert otel.value("livekit.onboarding.livekit.outages") == 1


def test_a_webhook_livekit_must_send_again_counts_as_retry(otel: Recorded) -> None:
    from flask_livekit_onboarding import signals

    app = traced_app(otel.telemetry)

    @signals.required
    def fails(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("the host's database is down")

    webhook = webhook_body("room_started", room=api.Room(name="other", sid="RM_2"))
    headers = {
        "Authorization": sign_webhook(
            webhook, UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"]
        ),
        "Content-Type": "application/webhook+json",
    }
    with signals.webhook_received.connected_to(fails, sender=app):
        response = app.test_client().post("/livekit/webhook", data=webhook, headers=headers)
    assert response.status_code == 503
    span = otel.span("onboarding.webhook")
    assert (span.attributes or {})["livekit.onboarding.outcome"] == "retry"
    assert span.status.status_code.name == "ERROR"
    assert (
        otel.value(
            "livekit.onboarding.webhook.events",
            livekit__onboarding__webhook__event="room_started",
            livekit__onboarding__outcome="retry",
        )
        == 1
    )


def test_reports_and_invites_have_spans_without_codes(otel: Recorded) -> None:
    app = traced_app(otel.telemetry)
    client = app.test_client()
    room = client.post("/livekit/token", json={}).get_json()["room_name"]
    created = client.post(f"/livekit/rooms/{room}/invites", json={"role": "viewer"})
    assert created.status_code == 201
    client.get(f"/livekit/rooms/{room}/invites")
    refused = client.post(f"/livekit/rooms/{room}/reports", json={})
    assert refused.status_code == 401
    for name in ("onboarding.invite.create", "onboarding.invite.list", "onboarding.report"):
        assert (otel.span(name).attributes or {})["livekit.onboarding.room"] == room
    assert (otel.span("onboarding.report").attributes or {})["error.type"] == "Unauthorized"
    code = created.get_json()["code"]
    assert not [v for v in otel.attribute_values() if code in v]
