"""The sync-to-asyncio bridge: bounded calls, error mapping, fork safety, clean shutdown."""

from __future__ import annotations

import json
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from livekit import api

from flask_livekit_onboarding.config import DEFAULTS, load_config
from flask_livekit_onboarding.errors import LiveKitError, LiveKitTimeout, LiveKitUnavailable
from flask_livekit_onboarding.livekit_bridge import LiveKitBridge, Outage
from tests.conftest import UNIT_CONFIG


def make_bridge(url: str, timeout: float = 0.5) -> LiveKitBridge:
    config = {**DEFAULTS, **UNIT_CONFIG, "LIVEKIT_URL": url}
    config["LIVEKIT_ONBOARDING_REQUEST_TIMEOUT"] = timeout
    return LiveKitBridge(load_config(config))


def list_rooms(lk: api.LiveKitAPI):  # type: ignore[no-untyped-def]
    return lk.room.list_rooms(api.ListRoomsRequest())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TwirpErrors(BaseHTTPRequestHandler):
    """Answers every Twirp call with the status in the path's first segment."""

    status = 500
    code = "internal"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"code": self.code, "msg": "boom"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def erroring_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TwirpErrors)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers, like a frozen LiveKit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield int(listener.getsockname()[1])
    listener.close()


def test_unreachable_livekit_is_503() -> None:
    bridge = make_bridge(f"http://127.0.0.1:{closed_port()}")
    try:
        with pytest.raises(LiveKitUnavailable):
            bridge.call(list_rooms)
    finally:
        bridge.close()


def test_silent_livekit_is_504_within_the_timeout(silent_server: int) -> None:
    bridge = make_bridge(f"http://127.0.0.1:{silent_server}", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(LiveKitTimeout):
            bridge.call(list_rooms)
        assert time.monotonic() - started < 2.0
    finally:
        bridge.close()


@pytest.mark.parametrize(("status", "error"), [(500, LiveKitError), (503, LiveKitUnavailable)])
def test_livekit_server_errors_are_gateway_errors(
    erroring_server: ThreadingHTTPServer, status: int, error: type[Exception]
) -> None:
    TwirpErrors.status, TwirpErrors.code = status, "internal"
    bridge = make_bridge(f"http://127.0.0.1:{erroring_server.server_address[1]}")
    try:
        with pytest.raises(error):
            bridge.call(list_rooms)
    finally:
        bridge.close()


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [(404, "not_found", api.TwirpError), (401, "unauthenticated", LiveKitError)],
)
def test_only_not_found_reaches_the_caller_as_livekits_own_error(
    erroring_server: ThreadingHTTPServer, status: int, code: str, outcome: type[Exception]
) -> None:
    TwirpErrors.status, TwirpErrors.code = status, code
    bridge = make_bridge(f"http://127.0.0.1:{erroring_server.server_address[1]}")
    try:
        with pytest.raises(outcome):
            bridge.call(list_rooms)
    finally:
        bridge.close()


def test_one_loop_thread_serves_every_call_and_stops_on_close() -> None:
    # Threads of apps that other tests left open are not this bridge's.
    before = set(threading.enumerate())
    bridge = make_bridge(f"http://127.0.0.1:{closed_port()}")
    for _ in range(3):
        with pytest.raises(LiveKitUnavailable):
            bridge.call(list_rooms)
    loops = [t for t in set(threading.enumerate()) - before if t.name == "livekit-onboarding-loop"]
    assert len(loops) == 1
    bridge.close()
    loops[0].join(2)
    assert not loops[0].is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        bridge.call(list_rooms)
    bridge.close()


def _call_in_child(bridge: LiveKitBridge, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        bridge.call(list_rooms)
    except LiveKitUnavailable:
        results.put("unavailable")
    except Exception as error:  # noqa: BLE001 - report anything else to the parent
        results.put(repr(error))
    bridge.close()


def test_a_forked_worker_gets_its_own_loop() -> None:
    bridge = make_bridge(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(LiveKitUnavailable):
        bridge.call(list_rooms)  # the parent's loop is running before the fork
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_call_in_child, args=(bridge, results))
    child.start()
    try:
        assert results.get(timeout=10) == "unavailable"
    finally:
        child.join(10)
        bridge.close()
    assert child.exitcode == 0


def test_an_outage_logs_one_line_not_one_per_failed_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridge = make_bridge(f"http://127.0.0.1:{closed_port()}")
    try:
        with caplog.at_level(logging.DEBUG, logger="flask_livekit_onboarding.livekit_bridge"):
            for _ in range(30):
                with pytest.raises(LiveKitUnavailable):
                    bridge.call(list_rooms)
    finally:
        bridge.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "LiveKit is failing (unreachable" in warnings[0].getMessage()
    assert bridge.outage.failures == 30


def test_livekit_coming_back_is_logged_once_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = Outage(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="flask_livekit_onboarding.livekit_bridge"):
        outage.answered()
        for _ in range(3083):
            outage.failed("unreachable: ClientConnectorError")
            now[0] += 5.0 / 3083
        now[0] += 60.0
        outage.failed("unreachable: ClientConnectorError")
        outage.answered()
        outage.answered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("LiveKit is failing (unreachable: ClientConnectorError)")
    assert lines[1].startswith("LiveKit still failing") and "3084 requests failed" in lines[1]
    assert lines[2] == "LiveKit answers again after 65.0s; 3084 requests failed meanwhile"
