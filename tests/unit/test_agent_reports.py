"""The agent's report helper against a local HTTP server: order, retries, final failures."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from flask_livekit_onboarding.agent_reports import Reporter
from flask_livekit_onboarding.envelope import Envelope
from flask_livekit_onboarding.report_auth import verify_report

KEY, SECRET = "agent-key", "agent-secret-that-is-long-enough-for-hs256"
ROOM = "onboarding-abc"


async def serve(answers: list[tuple[int, dict[str, str]]], seen: list[dict[str, Any]]) -> Any:
    """A host that answers each report with the next ``(status, headers)`` (then 201)."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        claims = verify_report(KEY, SECRET, request.headers.get("Authorization"), body)
        seen.append({"path": request.path, "claims": claims, **json.loads(body)})
        status, headers = answers.pop(0) if answers else (201, {})
        error = {"error": {"code": "x", "message": "no"}}
        return web.json_response(error if status >= 400 else {}, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/livekit/rooms/{room}/reports", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/livekit"


def reporter_for(url: str, **options: Any) -> Reporter:
    return Reporter(url, ROOM, "session-1", api_key=KEY, api_secret=SECRET, **options)


def test_reports_arrive_in_order_signed_for_their_room_and_session() -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> list[bool]:
        runner, url = await serve([], seen)
        reporter = reporter_for(url)
        tasks = [
            reporter.report_progress("welcome", "done"),
            reporter.report_progress("invite-team"),
            reporter.report_outcome("completed", summary="done", data={"steps": 2}),
            reporter.report_note({"asked": "pricing"}),
        ]
        results = await asyncio.gather(*tasks)
        await reporter.aclose()
        await runner.cleanup()
        return results

    assert asyncio.run(scenario()) == [True] * 4
    assert [r["kind"] for r in seen] == ["progress", "progress", "outcome", "note"]
    assert seen[1] | {"id": ""} == {
        "path": f"/livekit/rooms/{ROOM}/reports",
        "claims": seen[1]["claims"],
        "id": "",
        "session_id": "session-1",
        "kind": "progress",
        "step": "invite-team",
        "state": "started",
    }
    assert seen[1]["claims"].room == ROOM and seen[1]["claims"].session == "session-1"
    assert seen[2]["summary"] == "done" and seen[2]["data"] == {"steps": 2}
    assert len({r["id"] for r in seen}) == 4


def test_a_report_the_host_could_not_take_is_sent_again_under_the_same_id() -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> bool:
        runner, url = await serve([(503, {"Retry-After": "0"}), (502, {})], seen)
        reporter = reporter_for(url, backoff=0.01)
        delivered = await reporter.report_progress("welcome")
        await reporter.aclose()
        await runner.cleanup()
        return delivered

    assert asyncio.run(scenario()) is True
    assert len(seen) == 3
    assert len({r["id"] for r in seen}) == 1


def test_what_cannot_be_delivered_is_logged_without_the_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> tuple[bool, bool]:
        runner, url = await serve([(422, {})], seen)
        reporter = reporter_for(url)
        refused = await reporter.report_progress("welcome")
        await reporter.aclose()
        await runner.cleanup()
        # Nobody listens any more: bounded retries, then given up.
        unreachable = reporter_for(url, attempts=3, backoff=0.01)
        lost = await unreachable.report_note({"a": 1})
        await unreachable.aclose()
        return refused, lost

    with caplog.at_level(logging.ERROR, "flask_livekit_onboarding.agent_reports"):
        assert asyncio.run(scenario()) == (False, False)

    assert len(seen) == 1  # a 422 is final: not sent again
    messages = [r.getMessage() for r in caplog.records]
    assert "progress report" in messages[0] and "HTTP 422" in messages[0]
    assert "note report" in messages[1] and "not delivered" in messages[1]
    assert not any("Bearer" in m or SECRET in m for m in messages)


def test_from_job_reads_the_session_from_the_room_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_ONBOARDING_HOST_URL", "http://app.example/livekit/")
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    envelope = Envelope("ada", "session-9", {"plan": "pro"}, created_at=1)
    ctx = SimpleNamespace(
        room=SimpleNamespace(name=ROOM, metadata=envelope.to_metadata()),
        job=SimpleNamespace(metadata="", room=SimpleNamespace(name=ROOM)),
    )

    reporter = Reporter.from_job(ctx)

    assert reporter.url == f"http://app.example/livekit/rooms/{ROOM}/reports"
    assert reporter.session_id == "session-9"
    assert SECRET not in repr(reporter)
    ctx.room.metadata = "{}"
    with pytest.raises(ValueError, match="not an onboarding room"):
        Reporter.from_job(ctx)


def test_the_agent_helper_imports_without_flask() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('flask', 'werkzeug', 'blinker'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from flask_livekit_onboarding.agent_reports import Reporter\n"
        "print(Reporter.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Reporter"
