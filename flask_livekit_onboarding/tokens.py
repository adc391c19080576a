"""Minting least-privilege participant tokens with livekit-api."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from livekit import api

from .config import OnboardingConfig

#: Seconds past a token's expiry during which LiveKit still accepts it (its JWT leeway is one
#: minute), plus a little for clocks: the join deadline of an ``on_join`` envelope.
JOIN_GRACE = 65


def mint_participant_token(
    config: OnboardingConfig,
    *,
    room_name: str,
    identity: str,
    name: str,
    metadata: str | None = None,
    attributes: Mapping[str, str] | None = None,
    room_config: api.RoomConfiguration | None = None,
    ttl: int | None = None,
) -> str:
    """Return a JWT that lets ``identity`` join ``room_name`` and nothing more.

    Publish, subscribe and data are granted; room admin, list, create and record are not.
    """
    grants = api.VideoGrants(
        room_join=True,
        room=room_name,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
    )
    token = (
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants)
        .with_ttl(datetime.timedelta(seconds=ttl or config.token_ttl))
    )
    if metadata:
        token.with_metadata(metadata)
    if attributes:
        token.with_attributes(dict(attributes))
    if room_config is not None:
        token.with_room_config(room_config)
    return token.to_jwt()
