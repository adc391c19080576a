"""Unit checks of the rules the security review asked for (the live tests show them end to end)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from livekit import api

from flask_livekit_onboarding.config import DEFAULTS, load_config
from flask_livekit_onboarding.envelope import Envelope, RoomBinding
from flask_livekit_onboarding.errors import ConfigurationError, ValidationFailed
from flask_livekit_onboarding.livekit_limits import check_client_notes, check_name
from tests.conftest import UNIT_CONFIG

ROOM = "onboarding-abc"
KEY = b"k" * 32


def config(**overrides: Any) -> Any:
    return load_config({**DEFAULTS, **UNIT_CONFIG, **overrides})


def signed(join_by: int = 0, key: bytes = KEY) -> Envelope:
    envelope = replace(Envelope.new("user-1", {"plan": "pro"}, 1_700_000_000), join_by=join_by)
    return RoomBinding("onboarding-", key).sign(ROOM, envelope)


def test_a_room_created_after_the_join_deadline_is_stale_and_not_a_session() -> None:
    binding = RoomBinding("onboarding-", KEY)
    envelope = signed(join_by=1_700_000_100)
    on_time = api.Room(name=ROOM, metadata=envelope.to_metadata(), creation_time=1_700_000_100)
    late = api.Room(name=ROOM, metadata=envelope.to_metadata(), creation_time=1_700_000_101)

    assert not envelope.stale_for(on_time) and binding.read(on_time) is not None
    assert envelope.stale_for(late) and binding.read(late) is None and binding.stale(late)
    # The deadline is signed: moving or dropping it breaks the signature.
    for forged in (replace(envelope, join_by=1_800_000_000), replace(envelope, join_by=0)):
        assert not binding.verify(ROOM, forged)
    # An envelope without a deadline (eager rooms) is never stale.
    assert not signed().stale_for(late)


def test_previous_signing_keys_count_only_until_the_end_of_the_overlap() -> None:
    old = signed(key=b"o" * 32)
    during = RoomBinding("onboarding-", KEY, (b"o" * 32,), time.time() + 60)
    after = RoomBinding("onboarding-", KEY, (b"o" * 32,), time.time() - 1)

    assert during.verify(ROOM, old) and during.signed_with_previous(ROOM, old)
    assert not after.verify(ROOM, old)
    assert not during.signed_with_previous(ROOM, during.sign(ROOM, old))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS": "p" * 32}, "PREVIOUS_SIGNING_KEYS_UNTIL"),
        (
            {
                "LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS": "short",
                "LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS_UNTIL": 1,
            },
            "PREVIOUS_SIGNING_KEYS",
        ),
        ({"LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS_UNTIL": "next week"}, "KEYS_UNTIL"),
        ({"LIVEKIT_ONBOARDING_NAMESPACE": "two words"}, "NAMESPACE"),
        ({"LIVEKIT_ONBOARDING_MAX_CLIENT_BYTES": 40_000}, "MAX_CLIENT_BYTES"),
    ],
)
def test_bad_security_settings_fail_fast_naming_the_key(
    overrides: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigurationError, match=key):
        config(**overrides)


def test_the_derived_key_can_be_the_previous_one_of_a_rotation() -> None:
    derived = config().signing_key
    rotated = config(
        LIVEKIT_ONBOARDING_SIGNING_KEY="n" * 32,
        LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS="default",
        LIVEKIT_ONBOARDING_PREVIOUS_SIGNING_KEYS_UNTIL="2999-01-01T00:00:00",
    )
    assert rotated.previous_signing_keys == (derived,)
    assert config().signing_key_derived and not rotated.signing_key_derived


def test_namespaces_keep_redis_keys_apart() -> None:
    a = config(LIVEKIT_ONBOARDING_NAMESPACE="shop-a").redis_key_prefix("webhook")
    b = config(LIVEKIT_ONBOARDING_NAMESPACE="shop-b").redis_key_prefix("webhook")
    assert a == "livekit-onboarding:shop-a:webhook:" and a != b
    assert config().redis_key_prefix("webhook") == "livekit-onboarding:webhook:"


def test_names_are_limited_in_bytes_as_livekit_counts_them() -> None:
    assert check_name("é" * 128, "participant_identity")
    with pytest.raises(ValidationFailed, match="258 bytes") as refused:
        check_name("é" * 129, "participant_identity")
    assert refused.value.field == "participant_identity"


def test_client_notes_over_their_bound_name_the_notes() -> None:
    check_client_notes({"notes": "n" * 100}, 8192)
    with pytest.raises(ValidationFailed, match="client notes") as refused:
        check_client_notes({"notes": "n" * 8192}, 8192)
    assert refused.value.field == "client"


def test_only_an_on_join_token_that_starts_a_session_carries_the_room(make_app: Any) -> None:
    app = make_app(LIVEKIT_ONBOARDING_ROOM_CREATION="on_join", LIVEKIT_ONBOARDING_TOKEN_TTL=30)
    verifier = api.TokenVerifier(UNIT_CONFIG["LIVEKIT_API_KEY"], UNIT_CONFIG["LIVEKIT_API_SECRET"])
    before = int(time.time())
    body = app.test_client().post("/livekit/token", json={}).get_json()
    room_config = verifier.verify(body["participant_token"]).room_config
    assert room_config is not None
    envelope = Envelope.from_metadata(room_config.metadata)
    assert envelope is not None
    assert before + 30 + 65 <= envelope.join_by <= int(time.time()) + 30 + 65


def test_marks_expire_and_can_be_cleared() -> None:
    from flask_livekit_onboarding.marks import Marks

    marks = Marks(config())
    marks.mark("ended-room", "onboarding-a", 60)
    marks.mark("guest-revoked", "guest-1", 0)
    assert marks.marked("ended-room", "onboarding-a")
    assert not marks.marked("guest-revoked", "onboarding-a")
    assert not marks.marked("guest-revoked", "guest-1")  # expired at once
    marks.clear("ended-room", "onboarding-a")
    assert not marks.marked("ended-room", "onboarding-a")
