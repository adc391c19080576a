"""Participant tokens equal the ones livekit-api's ``AccessToken.to_jwt`` makes, byte for byte."""

from __future__ import annotations

import datetime
import json
from typing import Any

import jwt
import pytest
from flask import Flask
from livekit import api

from flask_livekit_onboarding.roles import ROLE_ATTRIBUTE
from flask_livekit_onboarding.tokens import mint_participant_token

ENVELOPE = json.dumps({"onboarding": {"v": 1, "owner": "user-1", "context": {"step": "welcome"}}})

CASES: dict[str, dict[str, Any]] = {
    "join only": {},
    "metadata and attributes": {
        "metadata": '{"plan":"pro"}',
        "attributes": {"role": "customer", "empty": ""},
    },
    "onboarding room with an agent": {
        "metadata": "Ada's profile: ünïcode ✓",
        "attributes": {"role": "customer"},
        "room_config": api.RoomConfiguration(
            name="onboarding-abc",
            metadata=ENVELOPE,
            empty_timeout=300,
            departure_timeout=20,
            max_participants=4,
            agents=[
                api.RoomAgentDispatch(agent_name="onboarding-agent", metadata=ENVELOPE),
                api.RoomAgentDispatch(agent_name="notes", deployment="v2"),
            ],
        ),
    },
    "every room setting": {
        "room_config": api.RoomConfiguration(
            name="onboarding-abc",
            min_playout_delay=100,
            max_playout_delay=2000,
            sync_streams=True,
            egress=api.RoomEgress(
                room=api.RoomCompositeEgressRequest(layout="grid", audio_only=True),
            ),
        ),
    },
}


def _livekit_api_token(app: Flask, ttl: int, **fields: Any) -> str:
    config = app.extensions["livekit_onboarding"].config
    token = (
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity("user-1")
        .with_name("Ada Lovelace")
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room="onboarding-abc",
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .with_ttl(datetime.timedelta(seconds=ttl))
    )
    if fields.get("metadata"):
        token.with_metadata(fields["metadata"])
    # Every token the library mints names the participant's role (here the room's owner).
    token.with_attributes({**fields.get("attributes", {}), ROLE_ATTRIBUTE: "owner"})
    if fields.get("room_config") is not None:
        token.with_room_config(fields["room_config"])
    return token.to_jwt()


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("ttl", [None, 45])
def test_tokens_equal_livekit_api_tokens_byte_for_byte(
    app: Flask, fields: dict[str, Any], ttl: int | None
) -> None:
    config = app.extensions["livekit_onboarding"].config
    for _ in range(3):  # both tokens must be minted within the same second
        ours = mint_participant_token(
            config,
            room_name="onboarding-abc",
            identity="user-1",
            name="Ada Lovelace",
            ttl=ttl,
            **fields,
        )
        theirs = _livekit_api_token(app, ttl or config.token_ttl, **fields)
        if _claims(ours)["nbf"] == _claims(theirs)["nbf"]:
            break
    assert ours == theirs
    claims = _claims(ours)
    assert claims["exp"] - claims["nbf"] == (ttl or config.token_ttl)
    assert claims["video"] == {
        "roomJoin": True,
        "room": "onboarding-abc",
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": True,
    }


def test_a_join_token_needs_an_identity_as_with_livekit_api(app: Flask) -> None:
    config = app.extensions["livekit_onboarding"].config
    with pytest.raises(ValueError, match="identity and room must be set"):
        mint_participant_token(config, room_name="onboarding-abc", identity="", name="x")


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
