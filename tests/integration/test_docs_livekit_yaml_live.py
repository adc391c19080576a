"""The command-line guide's ``livekit.yaml`` starts a dev server whose webhooks the app accepts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit import api
from werkzeug.serving import make_server

from flask_livekit_onboarding import signals
from flask_livekit_onboarding.devserver import (
    LiveKitServerError,
    ensure_livekit_server,
    free_port,
)
from tests.docs_code import code_blocks, load_quickstart, quickstart_dotenv

from .conftest import _unavailable

pytestmark = pytest.mark.integration

DOTENV = dict(line.split("=", 1) for line in quickstart_dotenv().splitlines() if "=" in line)


def _docs_config() -> dict[str, Any]:
    (block,) = code_blocks("cli", "A local LiveKit server", "yaml")
    config: dict[str, Any] = yaml.safe_load(block)
    return config


def test_the_config_has_the_quickstart_keys_and_a_signed_webhook() -> None:
    config = _docs_config()

    assert config["keys"] == {DOTENV["LIVEKIT_API_KEY"]: DOTENV["LIVEKIT_API_SECRET"]}
    assert config["webhook"]["api_key"] == DOTENV["LIVEKIT_API_KEY"]
    assert config["webhook"]["urls"] == ["http://127.0.0.1:5000/livekit/webhook"]
    assert f"ws://127.0.0.1:{config['port']}" == DOTENV["LIVEKIT_URL"]


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(log.read_text(errors="replace")[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("livekit-server did not become healthy: " + log.read_text()[-2000:])


async def _create_room(url: str, name: str) -> None:
    async with api.LiveKitAPI(url, DOTENV["LIVEKIT_API_KEY"], DOTENV["LIVEKIT_API_SECRET"]) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=name))
        await lk.room.delete_room(api.DeleteRoomRequest(room=name))


def test_a_server_started_with_it_delivers_webhooks_the_app_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        binary = ensure_livekit_server()
    except LiveKitServerError as exc:
        _unavailable(f"no livekit-server binary: {exc}")
    config = _docs_config()
    # The documented ports may be taken on this machine; everything else runs as written.
    app_port, config["port"] = free_port(), free_port()
    config["rtc"]["tcp_port"], config["rtc"]["udp_port"] = free_port(), free_port()
    config["webhook"]["urls"] = [
        url.replace(":5000/", f":{app_port}/") for url in config["webhook"]["urls"]
    ]
    (tmp_path / "livekit.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    for key in [k for k in os.environ if k.startswith(("LIVEKIT_", "FLASK_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LIVEKIT_URL", f"ws://127.0.0.1:{config['port']}")
    saved = dict(os.environ)
    app = load_quickstart(tmp_path, monkeypatch).create_app()
    os.environ.clear()
    os.environ.update(saved)

    received: queue.Queue[str] = queue.Queue()

    def on_event(sender: Any, **kwargs: Any) -> None:
        received.put(kwargs["event"].event)

    log = tmp_path / "livekit.log"
    server = make_server("127.0.0.1", app_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "--dev", "--config", str(tmp_path / "livekit.yaml")],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{config['port']}/", process, log)
        with signals.webhook_received.connected_to(on_event, sender=app):
            asyncio.run(_create_room(f"http://127.0.0.1:{config['port']}", "yaml-check"))
            events = set()
            deadline = time.monotonic() + 30
            while "room_started" not in events and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    events.add(received.get(timeout=1))
        assert "room_started" in events, log.read_text(errors="replace")[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.shutdown()
        thread.join()
        app.extensions["livekit_onboarding"].close()
