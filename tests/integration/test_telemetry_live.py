"""Spans and metrics against a real livekit-server, read with the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.devserver import LiveKitDevServer, free_port
from flask_livekit_onboarding.envelope import trace_context
from flask_livekit_onboarding.testing import sign_webhook, webhook_body
from tests.telemetry_support import Recorded, recorded

pytestmark = pytest.mark.integration

IDENTITY = "identity-9c2e41"
CONTEXT_VALUE = "context-value-7f3a55"
AGENT = "telemetry-test-agent"
STAFF = "staff-member-5d1b"


@pytest.fixture
def otel() -> Iterator[Recorded]:
    telemetry = recorded()
    yield telemetry
    telemetry.shutdown()


@pytest.fixture
def host_app(base_config: dict[str, Any], otel: Recorded) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []
    who = {"identity": IDENTITY}

    def make(**config: Any) -> Flask:
        extension = LiveKitOnboarding()
        extension.identity_loader(lambda: Identity(identity=who["identity"]))
        extension.context_provider(lambda identity: {"plan": CONTEXT_VALUE})
        extension.room_authorizer(lambda identity, room, action: identity.identity == STAFF)
        app = Flask(f"telemetry_{len(apps)}")
        app.config.update(base_config, LIVEKIT_ONBOARDING_AGENT_NAME=AGENT, **config)
        extension.init_app(app, telemetry=otel.telemetry)
        app.extensions["who"] = who
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["livekit_onboarding"].close()


def _children(otel: Recorded, parent: Any) -> list[Any]:
    return [s for s in otel.spans() if s.parent and s.parent.span_id == parent.context.span_id]


def _no_secret_anywhere(otel: Recorded, secrets: list[str]) -> None:
    values = list(otel.attribute_values())
    assert values
    for secret in secrets:
        leaks = [v for v in values if secret in v]
        assert not leaks, f"{secret[:12]}... found in {leaks}"


def test_an_eager_token_request_nests_its_livekit_call_and_dispatches_its_trace(
    host_app: Callable[..., Flask], otel: Recorded, livekit_server: LiveKitDevServer
) -> None:
    app = host_app(LIVEKIT_ONBOARDING_ROOM_CREATION="eager")
    response = app.test_client().post("/livekit/token", json={})
    assert response.status_code == 201
    body = response.get_json()

    token = otel.span("onboarding.token")
    assert token.parent is None
    assert token.attributes is not None
    assert token.attributes["livekit.onboarding.room_creation"] == "eager"
    assert token.attributes["livekit.onboarding.session_policy"] == "new"
    assert token.attributes["livekit.onboarding.session"] == "new"
    assert token.attributes["livekit.onboarding.agents"] == 1
    assert token.attributes["livekit.onboarding.agent_names"] == (AGENT,)
    assert token.attributes["livekit.onboarding.room"] == body["room_name"]
    (create,) = _children(otel, token)
    assert create.name == "livekit.RoomService/CreateRoom"
    assert create.attributes is not None
    assert create.attributes["rpc.system"] == "twirp"
    assert create.attributes["rpc.method"] == "CreateRoom"
    assert create.attributes["livekit.onboarding.outcome"] == "ok"
    assert create.attributes["http.response.status_code"] == 200
    assert create.context.trace_id == token.context.trace_id
    assert (
        otel.value(
            "livekit.onboarding.tokens.issued",
            livekit__onboarding__room_creation="eager",
            livekit__onboarding__session="new",
        )
        == 1
    )
    assert (
        otel.value(
            "livekit.onboarding.livekit.duration",
            rpc__method="CreateRoom",
            livekit__onboarding__outcome="ok",
        )
        == 1
    )

    async def dispatches() -> list[Any]:
        async with api.LiveKitAPI(
            livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
        ) as lk:
            return list(await lk.agent_dispatch.list_dispatch(body["room_name"]))

    (dispatch,) = asyncio.run(dispatches())
    carried = trace_context(dispatch.metadata)
    version, trace_id, parent_id, _ = carried["traceparent"].split("-")
    assert trace_id == format(token.context.trace_id, "032x")
    assert parent_id == format(token.context.span_id, "016x")
    assert json.loads(dispatch.metadata)["onboarding"]["context"] == {"plan": CONTEXT_VALUE}
    _no_secret_anywhere(
        otel,
        [livekit_server.api_secret, body["participant_token"], CONTEXT_VALUE, IDENTITY],
    )


def test_without_a_recording_span_the_dispatch_carries_the_envelope_alone(
    host_app: Callable[..., Flask], livekit_server: LiveKitDevServer, base_config: dict[str, Any]
) -> None:
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: Identity(identity=IDENTITY))
    app = Flask("untraced")
    app.config.update(base_config, LIVEKIT_ONBOARDING_AGENT_NAME=AGENT)
    extension.init_app(app)  # the global providers: no SDK configured
    try:
        body = app.test_client().post("/livekit/token", json={}).get_json()

        async def dispatches() -> list[Any]:
            async with api.LiveKitAPI(
                livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
            ) as lk:
                return list(await lk.agent_dispatch.list_dispatch(body["room_name"]))

        (dispatch,) = asyncio.run(dispatches())
        assert trace_context(dispatch.metadata) == {}
        assert set(json.loads(dispatch.metadata)) == {"onboarding"}
    finally:
        app.extensions["livekit_onboarding"].close()


def test_a_livekit_outage_shows_as_error_spans_and_one_outage(
    host_app: Callable[..., Flask], otel: Recorded, livekit_server: LiveKitDevServer
) -> None:
    app = host_app(
        LIVEKIT_URL=f"ws://127.0.0.1:{free_port()}",
        LIVEKIT_ONBOARDING_ROOM_CREATION="eager",
        LIVEKIT_ONBOARDING_REQUEST_TIMEOUT=2,
    )
    client = app.test_client()
    for _ in range(2):
        response = client.post("/livekit/token", json={})
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "livekit_unavailable"

    calls = otel.spans("livekit.RoomService/CreateRoom")
    assert len(calls) == 2
    for call in calls:
        assert call.status.status_code.name == "ERROR"
        assert call.attributes is not None
        assert call.attributes["livekit.onboarding.outcome"] == "unavailable"
        assert call.attributes["error.type"] == "LiveKitUnavailable"
    tokens = otel.spans("onboarding.token")
    assert [t.status.status_code.name for t in tokens] == ["ERROR", "ERROR"]
    assert otel.value("livekit.onboarding.livekit.outages") == 1
    assert (
        otel.value(
            "livekit.onboarding.livekit.duration", livekit__onboarding__outcome="unavailable"
        )
        == 2
    )
    assert otel.value("livekit.onboarding.tokens.issued") == 0
    _no_secret_anywhere(otel, [livekit_server.api_secret, CONTEXT_VALUE, IDENTITY])


def test_webhook_duplicates_count_as_duplicates(
    host_app: Callable[..., Flask], otel: Recorded, livekit_server: LiveKitDevServer
) -> None:
    app = host_app()
    client = app.test_client()
    body = webhook_body("room_started", room=api.Room(name="not-onboarding", sid="RM_x"))
    headers = {
        "Authorization": sign_webhook(body, livekit_server.api_key, livekit_server.api_secret),
        "Content-Type": "application/webhook+json",
    }
    statuses = [
        client.post("/livekit/webhook", data=body, headers=headers).get_json()["status"]
        for _ in range(2)
    ]
    assert statuses == ["accepted", "duplicate"]
    forged = client.post(
        "/livekit/webhook", data=body, headers={**headers, "Authorization": "Bearer forged"}
    )
    assert forged.status_code == 401

    def count(outcome: str) -> float:
        return otel.value(
            "livekit.onboarding.webhook.events",
            livekit__onboarding__webhook__event="room_started",
            livekit__onboarding__outcome=outcome,
        )

    assert (count("accepted"), count("duplicate")) == (1, 1)
    assert (
        otel.value(
            "livekit.onboarding.webhook.events",
            livekit__onboarding__webhook__event="unknown",
            livekit__onboarding__outcome="invalid",
        )
        == 1
    )
    spans = otel.spans("onboarding.webhook")
    assert [s.attributes["livekit.onboarding.outcome"] for s in spans] == [  # type: ignore[index]
        "accepted",
        "duplicate",
        "invalid",
    ]
    assert spans[0].attributes["livekit.onboarding.webhook.event"] == "room_started"  # type: ignore[index]
    assert otel.value("livekit.onboarding.dedupe.duration", livekit__onboarding__outcome="ok") == 2
    _no_secret_anywhere(otel, [livekit_server.api_secret, headers["Authorization"]])


def test_a_context_update_shows_its_lock_wait_write_and_confirmation(
    host_app: Callable[..., Flask], otel: Recorded, livekit_server: LiveKitDevServer
) -> None:
    app = host_app(LIVEKIT_ONBOARDING_ROOM_CREATION="eager")
    client = app.test_client()
    name = client.post("/livekit/token", json={}).get_json()["room_name"]
    app.extensions["who"]["identity"] = STAFF
    response = client.patch(f"/livekit/rooms/{name}/context", json={"context": {"step": "x"}})
    assert response.status_code == 200, response.get_json()

    update = otel.span("onboarding.context_update")
    assert update.attributes is not None
    assert update.attributes["livekit.onboarding.room"] == name
    assert update.attributes["livekit.onboarding.context.part"] == ("context",)
    children = {s.name for s in _children(otel, update)}
    assert {"onboarding.lock", "onboarding.confirm", "livekit.RoomService/UpdateRoomMetadata"} <= (
        children
    )
    (confirm,) = otel.spans("onboarding.confirm")
    assert {s.name for s in _children(otel, confirm)} == {"livekit.RoomService/ListRooms"}
    assert otel.value("livekit.onboarding.lock.wait", livekit__onboarding__outcome="acquired") == 1
    _no_secret_anywhere(otel, [livekit_server.api_secret, CONTEXT_VALUE, IDENTITY, STAFF])
