"""Webhook de-duplication stores: the in-process default and the choice of store."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from flask_livekit_onboarding import ConfigurationError
from flask_livekit_onboarding.dedupe import (
    Claim,
    DedupeUnavailable,
    MemoryDedupe,
    RedisDedupe,
    WebhookDedupe,
)
from flask_livekit_onboarding.devserver import free_port
from flask_livekit_onboarding.state import get_state
from flask_livekit_onboarding.testing import check_dedupe_store


class Clock:
    """Stands in for ``time.monotonic`` in the dedupe module."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("flask_livekit_onboarding.dedupe.time.monotonic", clock)
    return clock


def test_memory_store_sees_each_id_once_within_the_window(clock: Clock) -> None:
    store = MemoryDedupe()

    assert store.first_time("EV_1", 900)
    assert store.first_time("EV_2", 900)
    clock.now += 899
    assert not store.first_time("EV_1", 900)
    assert not store.first_time("EV_2", 900)


def test_memory_store_forgets_ids_after_the_window(clock: Clock) -> None:
    store = MemoryDedupe()
    store.first_time("EV_1", 60)
    store.first_time("EV_2", 60)

    clock.now += 60
    assert store.first_time("EV_3", 60)

    assert len(store) == 1
    assert store.first_time("EV_1", 60)


def test_memory_store_a_repeat_does_not_extend_the_window(clock: Clock) -> None:
    store = MemoryDedupe()
    store.first_time("EV_1", 60)
    clock.now += 30
    store.first_time("EV_1", 60)

    clock.now += 31

    assert store.first_time("EV_1", 60)


def test_memory_store_is_bounded(clock: Clock) -> None:
    store = MemoryDedupe(max_entries=3)
    for event_id in ("EV_1", "EV_2", "EV_3", "EV_4"):
        assert store.first_time(event_id, 900)

    assert len(store) == 3
    assert not store.first_time("EV_4", 900)
    assert store.first_time("EV_1", 900)  # the oldest was forgotten first


def test_memory_store_needs_room_for_one_id() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryDedupe(max_entries=0)


def test_memory_store_admits_each_id_once_across_threads() -> None:
    store = MemoryDedupe()
    ids = [f"EV_{n}" for n in range(500)]
    admitted: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        mine = [event_id for event_id in ids if store.first_time(event_id, 900)]
        with lock:
            admitted.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(admitted) == sorted(ids)


def test_default_store_is_in_process(app: Any) -> None:
    assert isinstance(get_state(app).dedupe, MemoryDedupe)


def test_apps_do_not_share_the_in_process_store(make_app: Any) -> None:
    assert get_state(make_app()).dedupe is not get_state(make_app()).dedupe


def test_redis_url_selects_the_redis_store_without_connecting(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_REDIS_URL=f"redis://127.0.0.1:{free_port()}/3")

    store = get_state(app).dedupe

    assert isinstance(store, RedisDedupe)
    assert store.client.connection_pool.connection_kwargs["db"] == 3


def test_redis_repr_hides_the_password(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_REDIS_URL="redis://:s3cret-pass@127.0.0.1:6390/0")

    assert "s3cret-pass" not in repr(get_state(app).dedupe)


def test_redis_url_without_the_redis_package_names_the_extra(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(ConfigurationError, match=r"flask-livekit-onboarding\[redis\]"):
        make_app(LIVEKIT_ONBOARDING_REDIS_URL="redis://127.0.0.1:6379/0")


def test_unusable_redis_url_names_the_key(make_app: Any) -> None:
    with pytest.raises(ConfigurationError, match="LIVEKIT_ONBOARDING_REDIS_URL"):
        make_app(LIVEKIT_ONBOARDING_REDIS_URL="http://127.0.0.1:6379/0")


def test_unreachable_redis_raises_dedupe_unavailable() -> None:
    store = RedisDedupe(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    try:
        with pytest.raises(DedupeUnavailable) as raised:
            store.first_time("EV_1", 900)
    finally:
        store.close()

    assert raised.value.code == 503


def test_memory_claims_hold_complete_and_release(clock: Clock) -> None:
    store = MemoryDedupe()

    claim = store.claim("EV_1", 900, 10)
    clock.now += 4
    busy = store.claim("EV_1", 900, 10)
    store.release("EV_1", busy)  # not the holder's claim: nothing happens
    still = store.claim("EV_1", 900, 10)
    store.release("EV_1", claim)
    again = store.claim("EV_1", 900, 10)
    store.complete("EV_1", 900, again)
    done = store.claim("EV_1", 900, 10)

    assert (claim.state, again.state, done.state) == ("new", "new", "done")
    assert (busy.state, busy.retry_after, still.state) == ("busy", 6, "busy")


def test_memory_claim_of_a_dead_delivery_expires(clock: Clock) -> None:
    store = MemoryDedupe()
    store.claim("EV_1", 900, 10)

    clock.now += 10

    assert store.claim("EV_1", 900, 10).state == "new"


def test_release_without_a_claim_forgets_a_recorded_id(clock: Clock) -> None:
    store = MemoryDedupe()
    assert store.first_time("EV_1", 900)

    store.release("EV_1")

    assert store.first_time("EV_1", 900)


def test_the_room_directory_remembers_rooms_for_a_while(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_livekit_onboarding.room_directory import (
        ROOM_MEMORY_SECONDS,
        MemoryRoomDirectory,
        RememberedRoom,
    )

    monkeypatch.setattr("flask_livekit_onboarding.room_directory.time.monotonic", clock)
    rooms = MemoryRoomDirectory()
    rooms.remember("onboarding-a", RememberedRoom("RM_1", "{}"))

    assert rooms.recall("onboarding-a") == RememberedRoom("RM_1", "{}")
    assert rooms.recall("onboarding-b") is None
    clock.now += ROOM_MEMORY_SECONDS
    assert rooms.recall("onboarding-a") is None


def test_a_store_missing_part_of_the_contract_fails_when_it_is_built() -> None:
    # Once, a store with first_time alone was accepted, and its failed deliveries were
    # answered "duplicate" on LiveKit's retry: the event was lost.
    class FirstTimeOnly(WebhookDedupe):
        def first_time(self, event_id: str, window: int) -> bool:
            return True

    with pytest.raises(TypeError, match="abstract"):
        FirstTimeOnly()  # type: ignore[abstract]


def test_the_in_process_store_passes_the_published_conformance_check() -> None:
    check_dedupe_store(MemoryDedupe())


def test_the_conformance_check_catches_a_store_that_loses_retries() -> None:
    class ForgetsNothing(MemoryDedupe):
        def release(self, event_id: str, claim: Claim | None = None) -> None:
            pass  # LiveKit's retry would then be answered "busy" until the hold ran out

    with pytest.raises(AssertionError, match="after release"):
        check_dedupe_store(ForgetsNothing())


def test_one_redis_client_serves_every_store_of_an_app(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    state = get_state(app)
    assert state.redis is not None
    stores = (state.dedupe, state.rooms, state.locks, state.ledger, state.invites)
    assert {id(store.client) for store in stores} == {id(state.redis)}  # type: ignore[attr-defined]


def test_room_locks_can_be_passed_to_init_app(base_config: dict[str, Any]) -> None:
    from flask import Flask

    from flask_livekit_onboarding import LiveKitOnboarding
    from flask_livekit_onboarding.locks import MemoryRoomLocks
    from flask_livekit_onboarding.testing import FakeLiveKit

    app = Flask("host_app")
    app.config.update(base_config)
    locks = MemoryRoomLocks()
    LiveKitOnboarding().init_app(app, livekit=FakeLiveKit(), room_locks=locks)
    try:
        assert get_state(app).locks is locks
    finally:
        get_state(app).close()
