"""Real servers for integration tests: livekit-server and redis-server on loopback.

When a server cannot be had (no binary, no Go to build livekit-server, a start failure) the
tests that need it are skipped locally and fail under CI, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from flask_livekit_onboarding.devserver import (
    LiveKitCluster,
    LiveKitDevServer,
    LiveKitServerError,
    ensure_livekit_server,
    free_port,
)

_SDK_QUIESCE_SECONDS = 1.0


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _quiesce_livekit_sdk() -> None:
    """Shut the ``livekit`` SDK's native runtime down while the interpreter is still whole.

    The runtime keeps closing peer connections for a moment after ``Room.disconnect()``
    returns, and its own exit-time shutdown can then abort the process (SIGABRT) after
    every test passed. Waiting a little and disposing it here avoids that.
    """
    if "livekit.rtc" not in sys.modules:
        return
    time.sleep(_SDK_QUIESCE_SECONDS)
    from livekit.rtc._ffi_client import FfiClient

    dispose = getattr(FfiClient.instance, "_dispose", None)
    if dispose is not None:
        dispose()


@pytest.fixture(scope="session")
def livekit_webhook_port() -> int:
    """Port the session's livekit-server posts webhooks to (``/livekit/webhook`` on loopback).

    Webhook tests serve the app there with pytest-flask's ``live_server`` by setting
    ``app.config["LIVESERVER_PORT"]`` to this port.
    """
    return free_port()


@pytest.fixture(scope="session")
def livekit_server(livekit_webhook_port: int) -> Iterator[LiveKitDevServer]:
    """A running livekit-server shared by the session, with its own key and secret."""
    try:
        binary = ensure_livekit_server()
    except LiveKitServerError as exc:
        _unavailable(f"no livekit-server binary: {exc}")
    server = LiveKitDevServer(
        binary,
        webhook_urls=[f"http://127.0.0.1:{livekit_webhook_port}/livekit/webhook"],
    )
    try:
        server.start()
    except LiveKitServerError as exc:
        server.close()
        _unavailable(f"livekit-server did not start: {exc}")
    try:
        yield server
    finally:
        _quiesce_livekit_sdk()
        server.close()


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (``redis://127.0.0.1:<port>/0``) of a throwaway redis-server without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (scripts/install-system-deps.sh installs it)")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    with (workdir / "redis.log").open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        while not _redis_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (workdir / "redis.log").read_text(errors="replace")[-2000:]
                _unavailable(f"redis-server did not start on port {port}:\n{log_text}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


#: App hosts of the cluster tests: "a" and "b" share Redis for webhook de-duplication,
#: "solo-a" and "solo-b" keep the in-process default.
CLUSTER_HOSTS = ("a", "b", "solo-a", "solo-b")


@pytest.fixture(scope="session")
def cluster_webhook_ports() -> dict[str, int]:
    """Loopback port of each cluster test host; every cluster node posts webhooks to all."""
    return {host: free_port() for host in CLUSTER_HOSTS}


@pytest.fixture(scope="session")
def livekit_cluster(
    redis_server: str, cluster_webhook_ports: dict[str, int]
) -> Iterator[LiveKitCluster]:
    """Two livekit-server nodes sharing the session's Redis (database 0) and one key pair."""
    try:
        binary = ensure_livekit_server()
    except LiveKitServerError as exc:
        _unavailable(f"no livekit-server binary: {exc}")
    cluster = LiveKitCluster(
        binary,
        redis_url=redis_server,
        nodes=2,
        webhook_urls=[
            f"http://127.0.0.1:{port}/livekit/webhook" for port in cluster_webhook_ports.values()
        ],
    )
    try:
        cluster.start()
    except LiveKitServerError as exc:
        cluster.close()
        _unavailable(f"the livekit-server cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        _quiesce_livekit_sdk()
        cluster.close()


@pytest.fixture
def base_config(livekit_server: LiveKitDevServer) -> dict[str, Any]:
    """Apps made by ``make_app`` in integration tests talk to the session's livekit-server."""
    return {
        "TESTING": True,
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "SECRET_KEY": "integration-test-flask-session-key",
        # Tests share one server and one signed-in user; each wants its own room unless it
        # is about resuming (tests/integration/test_resume_live.py).
        "LIVEKIT_ONBOARDING_SESSION_POLICY": "new",
    }
