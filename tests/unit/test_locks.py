"""Per-room locks of context updates: in process by default, Redis when configured."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from flask_livekit_onboarding.errors import ContextBusy
from flask_livekit_onboarding.locks import MemoryRoomLocks, RedisRoomLocks, make_room_locks
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import FakeLiveKit


def test_memory_locks_serialize_one_room_and_not_others() -> None:
    locks = MemoryRoomLocks()
    with locks.hold("room-a", wait=1, lease=5):
        assert locks.acquire("room-a", 0.05, 5) is None
        other = locks.acquire("room-b", 0.05, 5)
        assert other is not None
        locks.release("room-b", other)
    assert len(locks) == 0  # nothing kept for rooms nobody is updating


def test_a_busy_room_is_a_503_after_the_wait() -> None:
    locks = MemoryRoomLocks()
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with locks.hold("room-a", wait=1, lease=5):
            held.set()
            done.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(5)
    with pytest.raises(ContextBusy) as raised, locks.hold("room-a", wait=0.05, lease=5):
        pass
    done.set()
    thread.join(5)
    assert raised.value.code == 503
    assert raised.value.error_code == "context_busy"


def test_the_store_follows_the_redis_setting(make_app: Any) -> None:
    plain = make_app()
    shared = make_app(LIVEKIT_ONBOARDING_REDIS_URL="redis://127.0.0.1:9/0")

    assert isinstance(get_state(plain).locks, MemoryRoomLocks)
    assert isinstance(get_state(shared).locks, RedisRoomLocks)
    assert isinstance(make_room_locks(get_state(plain).config), MemoryRoomLocks)


def test_update_of_a_room_whose_lock_is_held_answers_503(app: Flask, users: Any) -> None:
    users.staff.add("user-1")
    livekit = get_state(app).livekit
    assert isinstance(livekit, FakeLiveKit)
    livekit.add_room("onboarding-abc")
    state = get_state(app)
    handle = state.locks.acquire("onboarding-abc", 1, 5)
    try:
        state.config = type(state.config)(**{**vars(state.config), "request_timeout": 0.05})
        response = app.test_client().patch(
            "/livekit/rooms/onboarding-abc/context", json={"context": {"step": "2"}}
        )
    finally:
        state.locks.release("onboarding-abc", handle)

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "context_busy"
    assert not any(type(r).__name__ == "UpdateRoomMetadataRequest" for r in livekit.room.requests)
