"""One trace from the token request to the agent: a real worker continues the request's trace.

The example agent exports livekit-agents' spans over OTLP (``OTEL_EXPORTER_OTLP_ENDPOINT``) to a
small collector here; the app records its own spans with the SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from examples.agent.runner import AgentWorker
from flask_livekit_onboarding import Identity, LiveKitOnboarding
from flask_livekit_onboarding.devserver import LiveKitDevServer
from tests.integration.agent_support import close_rooms, start_worker
from tests.otlp import Collector, otlp_collector
from tests.telemetry_support import Recorded, recorded

pytestmark = pytest.mark.integration

#: An agent name of its own: only this test's worker exports its spans.
AGENT_NAME = "traced-onboarding-agent"


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with otlp_collector() as running:
        yield running


@pytest.fixture(scope="module")
def traced_worker(
    livekit_server: LiveKitDevServer,
    collector: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AgentWorker]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        env.setenv("OTEL_SERVICE_NAME", "onboarding-agent")
        worker = start_worker(livekit_server, AGENT_NAME, tmp_path_factory)
    try:
        yield worker
    finally:
        worker.stop()


@pytest.mark.parametrize("mode", ["eager", "on_join"])
def test_the_agents_span_continues_the_token_requests_trace(
    traced_worker: AgentWorker,
    collector: Collector,
    livekit_server: LiveKitDevServer,
    base_config: dict[str, Any],
    mode: str,
) -> None:
    otel: Recorded = recorded()
    extension = LiveKitOnboarding()
    extension.identity_loader(lambda: Identity(identity=f"traced-user-{mode}"))
    app = Flask(f"traced_{mode}")
    app.config.update(
        base_config,
        LIVEKIT_ONBOARDING_AGENT_NAME=AGENT_NAME,
        LIVEKIT_ONBOARDING_ROOM_CREATION=mode,
    )
    extension.init_app(app, telemetry=otel.telemetry)
    room_name = ""
    try:
        body = app.test_client().post("/livekit/token", json={}).get_json()
        room_name = body["room_name"]
        token = otel.span("onboarding.token")
        if mode == "on_join":
            asyncio.run(_join_briefly(body))  # LiveKit creates the room, and dispatches, now

        joined = collector.wait_for_span("onboarding_agent.join")
        assert joined.service == "onboarding-agent"
        assert joined.trace_id == format(token.context.trace_id, "032x")
        assert joined.parent_span_id == format(token.context.span_id, "016x")
    finally:
        collector.spans.clear()
        if room_name:
            asyncio.run(close_rooms(livekit_server, [room_name]))
        app.extensions["livekit_onboarding"].close()
        otel.shutdown()


async def _join_briefly(body: dict[str, Any]) -> None:
    from livekit import rtc

    room = rtc.Room()
    await room.connect(body["server_url"], body["participant_token"])
    await asyncio.sleep(0.5)
    await room.disconnect()
