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
from flask_livekit_onboarding.testing import check_dedupe_store

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
        if response.status_code == 503:  # being delivered by another app: LiveKit retries
            assert response.get_json()["error"]["code"] == "webhook_not_delivered"
            assert response.headers["Retry-After"]
            statuses.append("retry later")
        else:
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

    assert statuses.count("accepted") == 1
    assert set(statuses) <= {"accepted", "duplicate", "retry later"}
    assert len(statuses) == len(apps) * 2
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
    # 503: the other process was delivering that event right then (LiveKit would retry).
    assert all(status in (200, 503) for report in reports for status in report["statuses"])
    assert first.isdisjoint(second)
    assert first | second == set(ids)
    assert len(reports[0]["emitted"]) + len(reports[1]["emitted"]) == len(ids)


def test_redis_claims_hold_complete_and_release(store: RedisDedupe) -> None:
    event_id = f"EV_{uuid.uuid4().hex}"

    claim = store.claim(event_id, 900, 5)
    busy = store.claim(event_id, 900, 5)
    store.release(event_id, busy)  # not the holder's claim: nothing happens
    still = store.claim(event_id, 900, 5)
    store.release(event_id, claim)
    again = store.claim(event_id, 900, 5)
    store.complete(event_id, 900, again)
    done = store.claim(event_id, 900, 5)

    assert claim.state == "new" and again.state == "new"
    assert busy.state == "busy" and still.state == "busy" and 1 <= busy.retry_after <= 5
    assert done.state == "done"
    assert 890 < store.client.ttl(store.key_prefix + event_id) <= 900


# A host that dies while delivering: its receiver ends the process, as a crash or a kill would,
# after the event id was claimed and before the signals were all sent.
DYING_HOST = """
import os, sys
from flask import Flask
from flask_livekit_onboarding import LiveKitOnboarding, signals

key, secret, redis_url, mode, body, token = sys.argv[1:7]
app = Flask("dying")
app.config.update(TESTING=True, LIVEKIT_URL="ws://127.0.0.1:9", LIVEKIT_API_KEY=key,
                  LIVEKIT_API_SECRET=secret, LIVEKIT_ONBOARDING_REDIS_URL=redis_url,
                  LIVEKIT_ONBOARDING_WEBHOOK_DELIVERY=mode,
                  LIVEKIT_ONBOARDING_WEBHOOK_CLAIM_TTL=2)
LiveKitOnboarding(app)
signals.webhook_received.connect(lambda sender, **kwargs: os._exit(17), app, weak=False)
app.test_client().post("/livekit/webhook", data=body.encode(), headers={"Authorization": token},
                       content_type="application/webhook+json")
sys.exit("the receiver did not run")
"""


@pytest.mark.parametrize("mode", ["at_least_once", "at_most_once"])
def test_an_event_whose_host_died_mid_delivery(make_app: Any, redis_server: str, mode: str) -> None:
    body, token = signed_event()
    died = subprocess.run(
        [sys.executable, "-c", DYING_HOST, KEY, SECRET, redis_server, mode, body.decode(), token],
        env={**os.environ, "PYTHONWARNINGS": "error"},
        timeout=60,
        check=False,
    )
    assert died.returncode == 17
    survivor = make_app(
        LIVEKIT_API_KEY=KEY,
        LIVEKIT_API_SECRET=SECRET,
        LIVEKIT_ONBOARDING_REDIS_URL=redis_server,
        LIVEKIT_ONBOARDING_WEBHOOK_DELIVERY=mode,
        LIVEKIT_ONBOARDING_WEBHOOK_CLAIM_TTL=2,
    )
    delivered: list[str] = []

    def retry() -> Any:  # what LiveKit does after the connection broke
        return survivor.test_client().post(
            "/livekit/webhook",
            data=body,
            headers={"Authorization": token},
            content_type="application/webhook+json",
        )

    with signals.webhook_received.connected_to(
        lambda sender, event_id, **kwargs: delivered.append(event_id), survivor
    ):
        first = retry()
        if mode == "at_least_once":
            # The dead host's claim is still held: come back after it (LiveKit honours this).
            assert first.status_code == 503
            assert first.get_json()["error"]["code"] == "webhook_not_delivered"
            wait = int(first.headers["Retry-After"])
            assert 1 <= wait <= 2
            time.sleep(wait + 0.1)
            taken = retry()
            assert taken.get_json() == {"status": "accepted"}
            assert delivered == [json.loads(body)["id"]]
        else:
            # At most once: the id was recorded before the signals, so the event is lost.
            assert first.get_json() == {"status": "duplicate"}
            assert delivered == []
        assert retry().get_json() == {"status": "duplicate"}


def test_the_redis_store_passes_the_published_conformance_check(store: RedisDedupe) -> None:
    check_dedupe_store(store)
