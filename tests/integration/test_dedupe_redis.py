"""Webhook de-duplication shared through a real redis-server by several apps and processes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding import signals
from flask_livekit_onboarding.dedupe import RedisDedupe

pytestmark = pytest.mark.integration

KEY = "redis-test-key"
SECRET = "redis-test-secret-that-is-long-enough-for-hs256"


def signed_event(event_id: str | None = None) -> tuple[bytes, str]:
    """A fresh ``room_started`` webhook body and its Authorization value."""
    body = json.dumps(
        {
            "event": "room_started",
            "id": event_id or f"EV_{uuid.uuid4().hex}",
            "createdAt": str(int(time.time())),
            "room": {"sid": "RM_1", "name": "onboarding-redis"},
        }
    ).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return body, api.AccessToken(KEY, SECRET).with_sha256(digest).to_jwt()


@pytest.fixture
def store(redis_server: str) -> Iterator[RedisDedupe]:
    store = RedisDedupe(redis_server)
    yield store
    store.close()


def test_redis_store_admits_an_id_once(store: RedisDedupe) -> None:
    event_id = f"EV_{uuid.uuid4().hex}"

    assert store.first_time(event_id, 900)
    assert not store.first_time(event_id, 900)
    assert store.first_time(f"{event_id}-other", 900)
    assert 0 < store.client.ttl(store.key_prefix + event_id) <= 900


def test_redis_store_forgets_an_id_after_the_window(store: RedisDedupe) -> None:
    event_id = f"EV_{uuid.uuid4().hex}"
    assert store.first_time(event_id, 1)

    deadline = time.monotonic() + 5
    while not store.first_time(event_id, 1):
        assert time.monotonic() < deadline, "the key never expired"
        time.sleep(0.1)


def test_apps_sharing_redis_emit_each_event_once(make_app: Any, redis_server: str) -> None:
    config = {
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "LIVEKIT_ONBOARDING_REDIS_URL": redis_server,
    }
    apps = [make_app(**config) for _ in range(4)]
    body, token = signed_event()
    emitted: list[Flask] = []
    statuses: list[str] = []
    start = threading.Barrier(len(apps) * 2)

    def deliver(app: Flask) -> None:
        client = app.test_client()
        start.wait()
        response = client.post(
            "/livekit/webhook",
            data=body,
            headers={"Authorization": token},
            content_type="application/webhook+json",
        )
        assert response.status_code == 200
        statuses.append(response.get_json()["status"])

    def record(sender: Flask, **kwargs: Any) -> None:
        emitted.append(sender)

    with signals.webhook_received.connected_to(record):
        threads = [threading.Thread(target=deliver, args=(app,)) for app in apps * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

    assert sorted(statuses) == ["accepted"] + ["duplicate"] * (len(apps) * 2 - 1)
    assert len(emitted) == 1


# One host process: its own app and its own connection to Redis. It says "ready", waits for
# "go" on stdin, delivers every webhook it was given and prints the event ids it emitted.
WORKER = """
import json, sys
from flask import Flask
from flask_livekit_onboarding import LiveKitOnboarding, signals
from flask_livekit_onboarding.state import get_state

key, secret, redis_url = sys.argv[1:4]
app = Flask("worker")
app.config.update(TESTING=True, LIVEKIT_URL="ws://127.0.0.1:9", LIVEKIT_API_KEY=key,
                  LIVEKIT_API_SECRET=secret, LIVEKIT_ONBOARDING_REDIS_URL=redis_url)
LiveKitOnboarding(app)
emitted = []
signals.webhook_received.connect(
    lambda sender, event, **kwargs: emitted.append(event.id), app, weak=False
)
deliveries = json.loads(sys.stdin.readline())
client = app.test_client()
get_state(app).dedupe.client.ping()
print("ready", flush=True)
sys.stdin.readline()
statuses = []
for body, token in deliveries:
    response = client.post("/livekit/webhook", data=body.encode(),
                           headers={"Authorization": token},
                           content_type="application/webhook+json")
    statuses.append(response.status_code)
get_state(app).close()
print(json.dumps({"statuses": statuses, "emitted": emitted}), flush=True)
"""


def test_two_processes_sharing_redis_emit_each_event_once(redis_server: str) -> None:
    events = [signed_event() for _ in range(25)]
    deliveries = json.dumps([[body.decode(), token] for body, token in events])
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, KEY, SECRET, redis_server],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(deliveries + "\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.close()
        reports = []
        for worker in workers:
            assert worker.stdout is not None
            output = worker.stdout.read()
            assert worker.wait(timeout=60) == 0
            reports.append(json.loads(output))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            for stream in (worker.stdin, worker.stdout):
                if stream is not None:
                    stream.close()

    ids = [json.loads(body)["id"] for body, _ in events]
    first, second = (set(report["emitted"]) for report in reports)
    assert all(status == 200 for report in reports for status in report["statuses"])
    assert first.isdisjoint(second)
    assert first | second == set(ids)
    assert len(reports[0]["emitted"]) + len(reports[1]["emitted"]) == len(ids)
